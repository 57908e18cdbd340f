"""The offline stack's gateway responses (opspawn_localstack/gateway_templates.py in
localstack-plugin/): template.yaml's GatewayResponses, through the real SAM transform, answer
in the API's error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from agentkit.http.errors import GATEWAY_ERROR_CODES, ErrorBody
from opspawn_localstack.gateway_templates import (
    GatewayResponseError,
    pick_template,
    render_body,
    response_headers,
    responses_from_openapi,
)
from tests.support.aws import load_template

#: a message as hard to embed in JSON as it gets: quotes, backslash, control, non-ASCII
AWKWARD = 'User "x" \\ not\nauthorized: é ✓'


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def openapi_body() -> dict[str, Any]:
    """The REST API body the SAM transform makes of template.yaml's GatewayResponses."""
    declared = load_template()["Resources"]["AgentApi"]["Properties"]["GatewayResponses"]
    sam = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "AgentApi": {
                "Type": "AWS::Serverless::Api",
                "Properties": {"StageName": "v1", "GatewayResponses": declared},
            },
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "s3://bucket/key",
                    "Handler": "app.handler",
                    "Runtime": "python3.12",
                    "Events": {"Get": {"Type": "Api", "Properties": {
                        "RestApiId": {"Ref": "AgentApi"}, "Path": "/x", "Method": "get"}}},
                },
            },
        },
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        out = transform(sam, {}, _NoManagedPolicies())
    body: dict[str, Any] = out["Resources"]["AgentApi"]["Properties"]["Body"]
    return body


def _answer(response: dict[str, Any], message: str | None, response_type: str) -> Any:
    content_type, template = pick_template(response["responseTemplates"]) or ("", "")
    assert content_type == "application/json"
    variables = {"error": {"message": message, "messageString": message,
                           "responseType": response_type}}
    return json.loads(render_body(template, variables))


def test_sam_puts_the_templates_gateway_responses_in_the_openapi_body(
    openapi_body: dict[str, Any],
) -> None:
    responses = responses_from_openapi(openapi_body)
    assert set(responses) == {"UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"}
    assert responses["UNAUTHORIZED"]["statusCode"] == "401"
    assert responses["ACCESS_DENIED"]["statusCode"] == "403"
    assert "statusCode" not in responses["DEFAULT_4XX"]  # the refusal's own status stays
    for response in responses.values():
        assert response_headers(response["responseParameters"]) == {
            "Content-Type": "application/json"
        }


@pytest.mark.parametrize("response_type", sorted(GATEWAY_ERROR_CODES))
def test_401_and_403_render_as_the_error_shape(
    openapi_body: dict[str, Any], response_type: str
) -> None:
    response = responses_from_openapi(openapi_body)[response_type]
    body = _answer(response, AWKWARD, response_type)
    ErrorBody.model_validate(body)
    assert body == {"error": GATEWAY_ERROR_CODES[response_type], "message": AWKWARD}


@pytest.mark.parametrize("default", ["DEFAULT_4XX", "DEFAULT_5XX"])
def test_other_refusals_name_their_response_type(
    openapi_body: dict[str, Any], default: str
) -> None:
    response = responses_from_openapi(openapi_body)[default]
    body = _answer(response, "Missing Authentication Token", "MISSING_AUTHENTICATION_TOKEN")
    assert body == {"error": "MISSING_AUTHENTICATION_TOKEN",
                    "message": "Missing Authentication Token"}


def test_render_substitutes_context_and_stage_variables_only() -> None:
    variables = {"requestId": "req-1", "error": {"message": None}, "authorizer": {"n": 3}}
    template = (
        '{"id": "${context.requestId}", "m": $context.error.messageString, "n": $context.'
        'authorizer.n, "team": "$stageVariables.team", "gone": "$context.nothing.here", '
        '"input": "$input.body"} Request $context.requestId.'
    )
    assert render_body(template, variables, {"team": "ops"}) == (
        '{"id": "req-1", "m": null, "n": 3, "team": "ops", "gone": "", '
        '"input": "$input.body"} Request req-1.'
    )


def test_response_headers_map_static_values_and_request_parts() -> None:
    parameters = {
        "gatewayresponse.header.Content-Type": "'application/json'",
        "gatewayresponse.header.X-Trace": "method.request.header.X-Trace",
        "gatewayresponse.header.X-Page": "method.request.querystring.page",
        "gatewayresponse.header.X-Task": "method.request.path.task_id",
        "gatewayresponse.header.X-Team": "stageVariables.team",
        "gatewayresponse.header.X-Request": "context.requestId",
        "gatewayresponse.header.X-Absent": "method.request.header.X-Absent",
        "gatewayresponse.querystring.ignored": "'x'",
    }
    assert response_headers(
        parameters,
        request_headers={"X-Trace": "t-9"},
        query={"page": "2"},
        path={"task_id": "tsk_1"},
        context_variables={"requestId": "req-1"},
        stage_variables={"team": "ops"},
    ) == {
        "Content-Type": "application/json",
        "X-Trace": "t-9",
        "X-Page": "2",
        "X-Task": "tsk_1",
        "X-Team": "ops",
        "X-Request": "req-1",
    }


def test_pick_template_prefers_json() -> None:
    assert pick_template({"text/plain": "a", "application/json": "b"}) == ("application/json", "b")
    assert pick_template({"text/plain": "a"}) == ("text/plain", "a")
    assert pick_template({}) is None


def test_a_document_without_gateway_responses_declares_none() -> None:
    assert responses_from_openapi({"swagger": "2.0", "paths": {}}) == {}


def test_status_codes_become_strings() -> None:
    document = {"x-amazon-apigateway-gateway-responses": {"THROTTLED": {"statusCode": 429}}}
    assert responses_from_openapi(document) == {
        "THROTTLED": {"statusCode": "429", "responseParameters": {}, "responseTemplates": {}}
    }


@pytest.mark.parametrize(
    ("declared", "named"),
    [
        ([], "x-amazon-apigateway-gateway-responses: expected a map"),
        ({"UNAUTHORIZED": "401"}, "UNAUTHORIZED: expected a map"),
        ({"UNAUTHORIZED": {"statusCode": "4o1"}}, "UNAUTHORIZED.statusCode"),
        ({"UNAUTHORIZED": {"responseTemplates": {"application/json": 1}}},
         "UNAUTHORIZED.responseTemplates"),
        ({"UNAUTHORIZED": {"responseParameters": ["x"]}}, "UNAUTHORIZED.responseParameters"),
    ],
)
def test_a_malformed_gateway_response_names_its_field(declared: Any, named: str) -> None:
    with pytest.raises(GatewayResponseError, match=named.replace(".", r"\.")):
        responses_from_openapi({"x-amazon-apigateway-gateway-responses": declared})
