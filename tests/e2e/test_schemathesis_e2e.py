"""Property-based fuzzing of the HTTPS API from its own OpenAPI document (schemathesis),
against the offline stack: no 5xx, and every rejection is a JSON error naming the field.
(Every request here carries a valid key; API Gateway's own 401/403 bodies are checked in
test_tenants_e2e.py.)

Each operation gets valid and invalid generated requests (schemathesis strategies driven
by hypothesis, derandomized so a run is repeatable); OPSPAWN_FUZZ_EXAMPLES sets how many.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from opspawn.offline.stack import StackOutputs

MAX_EXAMPLES = int(os.environ.get("OPSPAWN_FUZZ_EXAMPLES", "8"))


def _problems(response: Any) -> list[str]:
    if response.status_code >= 500:
        return ["a server error"]
    if response.status_code < 400:
        return []
    try:
        body = response.json()
    except ValueError:
        return ["a rejection that is not JSON"]
    if not isinstance(body, dict) or not body.get("error"):
        return ["a rejection without an `error` code"]
    if response.status_code == 400:
        fields = body.get("fields") or []
        if not fields or not all(f.get("field") and f.get("problem") for f in fields):
            return ["a 400 that names no field"]
    return []


def test_the_api_never_answers_5xx_and_names_what_it_rejects(
    offline_stack: StackOutputs,
) -> None:
    assert offline_stack.api_url
    document = httpx.get(f"{offline_stack.api_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {os.environ['OPSPAWN_API_KEY']}"}
    failures: list[str] = []
    exercised: set[str] = set()
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # the document has an operation schemathesis cannot read
            raise result.err()
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                      database=None, suppress_health_check=list(HealthCheck))
            def fuzz(case: Any) -> None:
                # Always our key: the authorizer has its own tests (test_tenants_e2e);
                # this fuzzes what the handlers accept and reject.
                case.headers = {**(case.headers or {}), **headers}
                response = case.call(base_url=offline_stack.api_url, timeout=60)
                exercised.add(f"{case.method.upper()} {case.path}")
                for problem in _problems(response):
                    failures.append(f"{problem}: {case.method} {case.formatted_path} "
                                    f"-> {response.status_code} {response.text[:200]}")

            fuzz()
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items()
                  for method in item if method in {"get", "post", "put", "patch", "delete"}}
    assert exercised == documented  # every operation was fuzzed, none skipped
    assert not failures, "\n".join(dict.fromkeys(failures))
