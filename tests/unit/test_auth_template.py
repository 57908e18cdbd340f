"""template.yaml's API-key authorizer: on every route, least privilege, a modest cache TTL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.aws import load_template

#: routes that may be public (no key): the OpenAPI document and the web console's files
#: (they hold no data; the page calls the API with the user's key)
PUBLIC_ROUTES = {("/openapi.json", "get"), ("/console", "get"), ("/console/{asset}", "get")}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_the_api_has_the_key_authorizer_as_default(template: dict[str, Any]) -> None:
    auth = template["Resources"]["AgentApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "ApiKeyAuthorizer"
    authorizer = auth["Authorizers"]["ApiKeyAuthorizer"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["ApiKeyAuthorizerFunction", "Arn"]}
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"]["Headers"] == ["Authorization"]
    assert authorizer["Identity"]["ReauthorizeEvery"] == {"Ref": "AuthorizerCacheTtlSeconds"}
    ttl = template["Parameters"]["AuthorizerCacheTtlSeconds"]
    assert ttl["Type"] == "Number" and ttl["Default"] == 60 and ttl["MaxValue"] <= 3600


def test_every_api_route_is_behind_the_authorizer(template: dict[str, Any]) -> None:
    routes = 0
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            routes += 1
            props = event["Properties"]
            authorizer = (props.get("Auth") or {}).get("Authorizer", "ApiKeyAuthorizer")
            route = (props["Path"], props["Method"].lower())
            if route in PUBLIC_ROUTES:
                continue
            assert authorizer == "ApiKeyAuthorizer", f"{name} {route} is not behind the key"
    assert routes >= 2


def test_the_authorizer_may_only_read_one_item(template: dict[str, Any]) -> None:
    function = template["Resources"]["ApiKeyAuthorizerFunction"]["Properties"]
    assert function["CodeUri"] == "functions/api_key_authorizer/"
    [policy] = function["Policies"]
    [statement] = policy["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": {"Fn::GetAtt": ["TasksTable", "Arn"]},
    }
    assert "Events" not in function  # invoked by API Gateway only
