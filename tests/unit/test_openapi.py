"""The OpenAPI document (agentkit/openapi.py): complete, true to every function's handlers,
matching the template's routes, and written to docs/openapi.json."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentkit.openapi import assemble_resolver, build_document, document_text, schema_of
from opspawn.openapi import DEFAULT_PATH, main
from tests.support import load_handler, load_template

API_FUNCTIONS = ["submit", "tasks", "approvals", "schedules"]


def test_docs_openapi_json_is_up_to_date() -> None:
    assert DEFAULT_PATH.read_text() == document_text(), (
        "docs/openapi.json is out of date: run `python -m opspawn.openapi`"
    )
    assert main(["--check"]) == 0


def test_check_mode_spots_a_stale_file(tmp_path: Any) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--output", str(stale)]) == 0 and main(["--check", "--output", str(stale)]) == 0


@pytest.mark.parametrize("function", API_FUNCTIONS)
def test_each_function_serves_exactly_the_documented_operations(
    function: str, aws_env: None
) -> None:
    """A handler whose signature (parameters, body, return type) or docs drift from the
    stub in agentkit/openapi.py fails here."""
    own = schema_of(load_handler(function).app)
    assembled = schema_of(assemble_resolver())
    assert own["paths"], function
    for path, operations in own["paths"].items():
        for method, operation in operations.items():
            assert assembled["paths"].get(path, {}).get(method) == operation, (
                f"{function}: {method.upper()} {path} differs from agentkit/openapi.py"
            )
    for name, schema in own.get("components", {}).get("schemas", {}).items():
        assert assembled["components"]["schemas"][name] == schema, name


def _template_routes() -> dict[tuple[str, str], dict[str, Any]]:
    routes = {}
    for resource in load_template()["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                routes[(props["Method"].lower(), props["Path"])] = props
    return routes


def test_the_document_covers_exactly_the_templates_routes() -> None:
    document = build_document()
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    routes = _template_routes()
    assert documented | {("get", "/openapi.json")} == set(routes)
    # only the document itself is public
    public = {key for key, props in routes.items()
              if props.get("Auth", {}).get("Authorizer") == "NONE"}
    assert public == {("get", "/openapi.json")}


def test_the_document_speaks_this_apis_errors_and_auth() -> None:
    document = build_document()
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and '"422"' not in text
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["security"] == [{"apiKey": []}]
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids)
    listing = document["paths"]["/tasks"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"status", "limit", "cursor"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskPage"}
    cancel = document["paths"]["/tasks/{task_id}/cancel"]["post"]
    assert {"200", "404", "409"} <= set(cancel["responses"])
    submit = document["paths"]["/tasks"]["post"]
    assert {"202", "400", "409", "413"} <= set(submit["responses"])
    assert [p["name"] for p in submit["parameters"]] == ["idempotency-key"]
