"""API Gateway gateway responses as AWS applies them, in plain Python (no LocalStack import, so
the rules are unit-tested on their own; ``gateway_responses.py`` wires them into LocalStack).

* ``responses_from_openapi``: the ``x-amazon-apigateway-gateway-responses`` of an OpenAPI
  document (where the SAM transform puts an ``AWS::Serverless::Api``'s ``GatewayResponses``) as
  PutGatewayResponse would store them.
* ``render_body``: a response template. API Gateway does not run VTL on these; it substitutes
  ``$context.*`` and ``$stageVariables.*`` only, ``$context.error.messageString`` being the
  message as a quoted JSON string (so ``{"message": $context.error.messageString}`` is JSON).
* ``response_headers``: the ``gatewayresponse.header.*`` parameters: a quoted static value or a
  ``method.request.*``, ``stageVariables.*`` or ``context.*`` mapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

OPENAPI_KEY = "x-amazon-apigateway-gateway-responses"
JSON = "application/json"
_HEADER = "gatewayresponse.header."
# $context.a.b or ${context.a.b}; a name part never ends in a dot (a sentence's full stop)
_VARIABLE = re.compile(
    r"\$\{(context|stageVariables)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\}"
    r"|\$(context|stageVariables)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)"
)


class GatewayResponseError(ValueError):
    """A gateway response in an OpenAPI document is malformed (names the response type)."""


def responses_from_openapi(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{response type: {statusCode?, responseParameters, responseTemplates}}`` of the
    document (empty when it declares none)."""
    declared = document.get(OPENAPI_KEY)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise GatewayResponseError(f"{OPENAPI_KEY}: expected a map of response types")
    responses: dict[str, dict[str, Any]] = {}
    for response_type, spec in declared.items():
        if not isinstance(spec, Mapping):
            raise GatewayResponseError(f"{OPENAPI_KEY}.{response_type}: expected a map")
        response: dict[str, Any] = {
            "responseParameters": _strings(spec, "responseParameters", response_type),
            "responseTemplates": _strings(spec, "responseTemplates", response_type),
        }
        status = spec.get("statusCode")
        if status is not None:
            if not re.fullmatch(r"[1-5][0-9][0-9]", str(status)):
                raise GatewayResponseError(
                    f"{OPENAPI_KEY}.{response_type}.statusCode: {status!r} is not an HTTP status"
                )
            response["statusCode"] = str(status)
        responses[str(response_type)] = response
    return responses


def _strings(spec: Mapping[str, Any], field: str, response_type: str) -> dict[str, str]:
    value = spec.get(field) or {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise GatewayResponseError(
            f"{OPENAPI_KEY}.{response_type}.{field}: expected a map of strings"
        )
    return {str(k): v for k, v in value.items()}


def _lookup(variables: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = variables or {}
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return str(value)


def render_body(
    template: str,
    context_variables: Mapping[str, Any] | None,
    stage_variables: Mapping[str, Any] | None = None,
) -> str:
    """The template with its variables substituted (an unknown one becomes empty)."""

    def substitute(match: re.Match[str]) -> str:
        scope = match.group(1) or match.group(3)
        path = match.group(2) or match.group(4)
        if scope == "context" and path == "error.messageString":
            return json.dumps(_lookup(context_variables, "error.message"))
        variables = context_variables if scope == "context" else stage_variables
        return _text(_lookup(variables, path)) or ""

    return _VARIABLE.sub(substitute, template)


def pick_template(templates: Mapping[str, str] | None) -> tuple[str, str] | None:
    """(content type, template): the JSON one, else the first one declared."""
    if not templates:
        return None
    if JSON in templates:
        return JSON, templates[JSON]
    content_type = next(iter(templates))
    return content_type, templates[content_type]


def response_headers(
    parameters: Mapping[str, str] | None,
    request_headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    path: Mapping[str, str] | None = None,
    context_variables: Mapping[str, Any] | None = None,
    stage_variables: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The headers the parameters set (a mapping to a value the request lacks sets none)."""
    sources: dict[str, Mapping[str, Any] | None] = {
        "method.request.header.": request_headers,
        "method.request.querystring.": query,
        "method.request.path.": path,
        "stageVariables.": stage_variables,
    }
    headers: dict[str, str] = {}
    for name, mapping in (parameters or {}).items():
        if not name.startswith(_HEADER):
            continue  # (SAM also allows path/querystring parameters; responses have neither)
        header = name.removeprefix(_HEADER)
        value: str | None = None
        mapping = mapping.strip()
        if len(mapping) >= 2 and mapping[0] == mapping[-1] == "'":
            value = mapping[1:-1]
        elif mapping.startswith("context."):
            value = _text(_lookup(context_variables, mapping.removeprefix("context.")))
        else:
            for prefix, source in sources.items():
                if mapping.startswith(prefix):
                    value = _text((source or {}).get(mapping.removeprefix(prefix)))
                    break
        if value is not None:
            headers[header] = value
    return headers
