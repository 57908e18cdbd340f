"""The API's one error shape, for every refusal: the handlers', and API Gateway's own 401/403
(template.yaml's GatewayResponses render the same fields).

  {"error": "validation_error", "message": "goal: Field required",
   "fields": [{"field": "goal", "problem": "Field required"}]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field


class ErrorField(BaseModel):
    field: str = Field(description="The field at fault, as a dotted path (`task.model`).")
    problem: str


class ErrorBody(BaseModel):
    """Every refusal: a code, a readable message and, for bad input, the fields at fault."""

    error: str = Field(
        description=(
            "What went wrong, for programs: validation_error, not_found, conflict, "
            "payload_too_large, unauthorized, forbidden, internal_error, ..."
        )
    )
    message: str = Field(description="What went wrong, for people.")
    fields: list[ErrorField] | None = None


def error_body(code: str, message: str, fields: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """An ErrorBody as JSON-ready data (`fields` only when there are some)."""
    body = ErrorBody(error=code, message=message,
                     fields=[ErrorField(**f) for f in fields] or None)
    return body.model_dump(mode="json", exclude_none=True)


def error_response(
    status: HTTPStatus, code: str, message: str, fields: Sequence[dict[str, str]] = ()
) -> Response[dict[str, Any]]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(code, message, fields),
    )


def raw_error_response(
    status: HTTPStatus, code: str, message: str, fields: Sequence[dict[str, str]] = ()
) -> dict[str, Any]:
    """An error as the Lambda proxy answer itself (for refusals made before routing)."""
    return {
        "statusCode": status.value,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(error_body(code, message, fields)),
        "isBase64Encoded": False,
    }


def describe_request_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic/Powertools error entries → [{field, problem}], the field as a dotted path."""
    fields = []
    for item in errors:
        # "body" / "query" / "path" / "header" say where; the field's own name is what counts.
        location = [str(part) for part in item.get("loc", ())]
        if location and location[0] in {"body", "query", "path", "header"}:
            location = location[1:]
        error_type = item.get("type", "")
        if error_type == "json_invalid":
            detail = item.get("ctx", {}).get("error", "")
            fields.append(
                {"field": "body", "problem": f"not valid JSON ({detail})".replace(" ()", "")}
            )
            continue
        if error_type == "missing" and not location:
            fields.append({"field": "body", "problem": "a JSON object body is required"})
            continue
        problem = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append({"field": ".".join(location) or "body", "problem": problem})
    return fields


# --- how routes document their refusals (OpenAPI responses)

def error_doc(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}


BAD_REQUEST_DESCRIPTION = "Bad input; `fields` names each field at fault."
BAD_REQUEST: dict[int, OpenAPIResponse] = {400: error_doc(BAD_REQUEST_DESCRIPTION)}
TASK_NOT_FOUND: dict[int, OpenAPIResponse] = {
    404: error_doc("No such task for this tenant (another tenant's task: the same).")
}
#: API Gateway's own answers before any handler runs (template.yaml GatewayResponses:
#: UNAUTHORIZED, ACCESS_DENIED), on every route that needs an API key.
AUTH_REFUSALS: dict[int, OpenAPIResponse] = {
    401: error_doc(
        "No API key (`Authorization: Bearer ops_...`): `error` is `unauthorized`. "
        "Answered by API Gateway."
    ),
    403: error_doc(
        "An unknown or revoked API key: `error` is `forbidden`. Answered by API Gateway."
    ),
}
#: The `error` codes the gateway responses of template.yaml put in their bodies.
GATEWAY_ERROR_CODES = {"UNAUTHORIZED": "unauthorized", "ACCESS_DENIED": "forbidden"}
