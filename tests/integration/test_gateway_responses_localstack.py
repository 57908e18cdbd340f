"""The gateway-response hook against LocalStack 4.8.1's own classes (its OpenAPI import behind
PutRestApi, its gateway exception handler), run on the offline install's LocalStack venv
without starting LocalStack: guards the private API the hook wraps."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from opspawn.offline.paths import PLUGIN_DIR, Layout

SCRIPT = r"""
import io, json, sys
sys.path.insert(0, sys.argv[1])  # this checkout's plugin, whatever the venv has installed
from types import SimpleNamespace

from localstack.aws.api import RequestContext
from localstack.aws.api.apigateway import BadRequestException
from localstack.http import Request, Response
from localstack.services.apigateway.helpers import get_apigateway_store
from localstack.services.apigateway.legacy import provider as legacy_provider
from localstack.services.apigateway.models import RestApiContainer
from localstack.services.apigateway.next_gen.execute_api import gateway_response as gw
from localstack.services.apigateway.next_gen.execute_api.context import RestApiInvocationContext
from localstack.services.apigateway.next_gen.execute_api.handlers import gateway_exception_handler
from moto.apigateway.models import apigateway_backends
from werkzeug.datastructures import Headers

from opspawn_localstack.gateway_responses import opspawn_gateway_responses

opspawn_gateway_responses()
out = {}
ctx = RequestContext(request=Request("PUT", "/restapis/x"))
ctx.account_id, ctx.region = "000000000000", "us-east-1"
api = apigateway_backends[ctx.account_id][ctx.region].create_rest_api(name="t", description="")
store = get_apigateway_store(context=ctx)
store.rest_apis[api.id] = RestApiContainer(rest_api=api.to_dict())
KEY = "x-amazon-apigateway-gateway-responses"
JSON_HEADER = {"gatewayresponse.header.Content-Type": "'application/json'"}


def put(responses, mode=None):
    doc = {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}, KEY: responses}
    request = {"restApiId": api.id, "body": io.BytesIO(json.dumps(doc).encode())}
    if mode:
        request["mode"] = mode
    _, warnings = legacy_provider.import_api_from_openapi_spec(api, context=ctx, request=request)
    return warnings, dict(store.rest_apis[api.id].gateway_responses)


out["merge_warnings"], merged = put({
    "UNAUTHORIZED": {"statusCode": "401", "responseParameters": {
        **JSON_HEADER, "gatewayresponse.header.X-Trace": "method.request.header.X-Trace"},
        "responseTemplates": {
            "application/json": '{"error": "unauthorized", "message": $context.error.messageString}'
        }},
    "DEFAULT_4XX": {"responseParameters": JSON_HEADER, "responseTemplates": {"application/json":
        '{"error": "$context.error.responseType", "message": $context.error.messageString}'}},
    "NOT_A_TYPE": {},
})
out["merged"] = merged
try:
    put({"UNAUTHORIZED": {"statusCode": "nope"}})
except BadRequestException as exc:
    out["malformed"] = str(exc)


def answer(exception, responses):
    context = RestApiInvocationContext(Request("GET", "/tasks"))
    context.deployment = SimpleNamespace(rest_api=SimpleNamespace(gateway_responses=responses))
    context.context_variables = {"requestId": "req-1"}
    context.stage_variables = {}
    context.invocation_request = {"headers": Headers({"X-Trace": "t-9"})}
    response = Response()
    gateway_exception_handler(None, exception, context, response)
    return {"status": response.status_code, "headers": dict(response.headers),
            "body": response.get_data(as_text=True)}


out["unauthorized"] = answer(gw.UnauthorizedError('no "key"'), merged)
out["missing_token"] = answer(gw.MissingAuthTokenError("Missing Authentication Token"), merged)
out["denied_by_default"] = answer(gw.AccessDeniedError("User is not authorized"), merged)
out["denied_stock"] = answer(gw.AccessDeniedError("User is not authorized"), {})
out["overwrite_warnings"], out["overwritten"] = put(
    {"ACCESS_DENIED": {"statusCode": "403", "responseTemplates": {"application/json": "{}"}}},
    mode="overwrite")
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcome() -> dict[str, Any]:
    python = Layout.current().venv_python
    if not python.exists():
        pytest.fail(f"no LocalStack venv at {python}: run `make setup`", pytrace=False)
    run = subprocess.run(
        [str(python), "-c", SCRIPT, str(PLUGIN_DIR)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_the_openapi_import_stores_the_documents_gateway_responses(
    outcome: dict[str, Any],
) -> None:
    merged = outcome["merged"]
    assert set(merged) == {"UNAUTHORIZED", "DEFAULT_4XX"}
    assert merged["UNAUTHORIZED"]["statusCode"] == "401"
    assert merged["UNAUTHORIZED"]["defaultResponse"] is False
    assert outcome["merge_warnings"] == ["Invalid gateway response type 'NOT_A_TYPE': skipped"]
    assert "UNAUTHORIZED.statusCode" in outcome["malformed"]


def test_overwrite_mode_replaces_the_gateway_responses(outcome: dict[str, Any]) -> None:
    assert outcome["overwrite_warnings"] == []
    assert set(outcome["overwritten"]) == {"ACCESS_DENIED"}


def test_a_configured_response_is_rendered_with_its_headers(outcome: dict[str, Any]) -> None:
    unauthorized = outcome["unauthorized"]
    assert unauthorized["status"] == 401
    assert json.loads(unauthorized["body"]) == {"error": "unauthorized", "message": 'no "key"'}
    assert unauthorized["headers"]["Content-Type"] == "application/json"
    assert unauthorized["headers"]["X-Trace"] == "t-9"
    assert unauthorized["headers"]["x-amzn-ErrorType"] == "UnauthorizedException"


def test_default_4xx_renders_the_refusals_it_covers(outcome: dict[str, Any]) -> None:
    missing = outcome["missing_token"]
    assert missing["status"] == 403
    assert json.loads(missing["body"]) == {
        "error": "MISSING_AUTHENTICATION_TOKEN",
        "message": "Missing Authentication Token",
    }


def test_default_4xx_covers_the_4xx_types_not_configured_themselves(
    outcome: dict[str, Any],
) -> None:
    denied = outcome["denied_by_default"]
    assert denied["status"] == 403
    assert json.loads(denied["body"]) == {
        "error": "ACCESS_DENIED", "message": "User is not authorized"
    }


def test_an_api_without_gateway_responses_keeps_localstacks_answer(
    outcome: dict[str, Any],
) -> None:
    # (API Gateway's stock ACCESS_DENIED body spells the key "Message")
    denied = outcome["denied_stock"]
    assert denied["status"] == 403
    assert json.loads(denied["body"]) == {"Message": "User is not authorized"}
