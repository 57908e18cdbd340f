"""The OpenAPI document (agentkit/http/openapi.py): generated from the routes the functions
really serve, complete, matching the template's routes and gateway responses, and written to
docs/openapi.json."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentkit.http.errors import GATEWAY_ERROR_CODES, ErrorBody
from agentkit.http.openapi import build_document, document_text, schema_of
from opspawn.openapi import DEFAULT_PATH, main
from tests.support.aws import load_handler, load_template

API_FUNCTIONS = ["submit", "tasks", "approvals", "schedules", "memories"]
#: The public routes, deliberately left out of the document: the document itself and the
#: web console's files (agentkit.http.console), which are no API operations.
PUBLIC_UNDOCUMENTED = {("get", "/openapi.json"), ("get", "/console"), ("get", "/console/{asset}")}


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


def test_the_functions_together_serve_exactly_the_documented_operations(aws_env: None) -> None:
    """Each function's own resolver (the one that answers requests) generates exactly the
    document's operations for its paths, and together they serve every documented one."""
    document = build_document()
    served: set[tuple[str, str]] = set()
    for function in API_FUNCTIONS:
        own = schema_of(load_handler(function).app)
        assert own["paths"], function
        for path, operations in own["paths"].items():
            for method, operation in operations.items():
                assert document["paths"][path][method] == operation, (function, method, path)
                assert (method, path) not in served, f"{method} {path} served twice"
                served.add((method, path))
        for name, schema in own.get("components", {}).get("schemas", {}).items():
            assert document["components"]["schemas"][name] == schema, name
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert served == documented


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
    assert documented | PUBLIC_UNDOCUMENTED == set(routes)
    assert not documented & PUBLIC_UNDOCUMENTED
    # only the document itself and the console's files are public
    public = {key for key, props in routes.items()
              if props.get("Auth", {}).get("Authorizer") == "NONE"}
    assert public == PUBLIC_UNDOCUMENTED


def test_the_document_speaks_this_apis_errors_and_auth() -> None:
    document = build_document()
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and '"422"' not in text
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["security"] == [{"apiKey": []}]
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids)
    listing = document["paths"]["/tasks"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"status", "limit", "cursor", "parent_id"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskPage"}
    cancel = document["paths"]["/tasks/{task_id}/cancel"]["post"]
    assert {"200", "404", "409"} <= set(cancel["responses"])
    submit = document["paths"]["/tasks"]["post"]
    assert {"202", "400", "409", "413"} <= set(submit["responses"])
    assert [p["name"] for p in submit["parameters"]] == ["idempotency-key"]


def test_every_keyed_operation_documents_401_and_403_in_the_error_shape() -> None:
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in build_document()["paths"].items():
        for method, operation in operations.items():
            for status in ("401", "403"):
                answer = operation["responses"].get(status)
                assert answer, f"{method.upper()} {path}: no {status}"
                assert answer["content"]["application/json"]["schema"] == error


def test_submit_declares_its_location_header() -> None:
    accepted = build_document()["paths"]["/tasks"]["post"]["responses"]["202"]
    assert accepted["headers"]["Location"]["schema"] == {"type": "string"}


def test_list_schedules_declares_the_items_object_it_sends() -> None:
    document = build_document()
    listing = document["paths"]["/schedules"]["get"]["responses"]["200"]
    ref = listing["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["items"]
    assert schema["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Schedule"}


def test_list_pages_say_they_may_be_short_or_empty_while_next_cursor_is_set() -> None:
    listing = build_document()["paths"]["/tasks"]["get"]
    status = next(p for p in listing["parameters"] if p["name"] == "status")
    for text in (listing["responses"]["200"]["description"], status["description"]):
        assert "`next_cursor` is set" in text and "none" in text


def _render_gateway_template(template: str, message: str) -> Any:
    """What API Gateway makes of a gateway response template: `$context` variables
    substituted, `messageString` as a quoted JSON string."""
    text = template.replace("$context.error.messageString", json.dumps(message))
    return json.loads(text.replace("$context.error.responseType", "THROTTLED"))


@pytest.mark.parametrize("response_type", ["UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX",
                                           "DEFAULT_5XX"])
def test_gateway_responses_answer_in_the_error_shape(response_type: str) -> None:
    responses = load_template()["Resources"]["AgentApi"]["Properties"]["GatewayResponses"]
    response = responses[response_type]
    assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/json'"
    body = _render_gateway_template(
        response["ResponseTemplates"]["application/json"], 'quote " and \\ backslash'
    )
    parsed = ErrorBody.model_validate(body)
    assert parsed.message == 'quote " and \\ backslash'
    if response_type in GATEWAY_ERROR_CODES:
        assert parsed.error == GATEWAY_ERROR_CODES[response_type]
        assert response["StatusCode"] == {"UNAUTHORIZED": "401", "ACCESS_DENIED": "403"}[
            response_type]
