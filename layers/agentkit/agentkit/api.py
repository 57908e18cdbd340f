"""HTTP shaping shared by the API functions: one JSON error format for every rejection.

Errors look like:
  {"error": "validation_error", "message": "goal: Field required",
   "fields": [{"field": "goal", "problem": "Field required"}]}
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from agentkit.errors import InputError
from agentkit.store import TaskNotFoundError

MAX_BODY_BYTES = 64 * 1024

logger = Logger(child=True)


def error_response(
    status: HTTPStatus, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response(
        status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body
    )


class MissingTenantError(RuntimeError):
    """The request reached a handler without a tenant: the authorizer is not in front of it."""


def current_tenant(app: APIGatewayRestResolver) -> str:
    """The tenant the Lambda authorizer resolved for this request (`context.tenant_id`)."""
    context = app.current_event.request_context.authorizer or {}
    tenant = context.get("tenant_id") if hasattr(context, "get") else None
    if not tenant:
        raise MissingTenantError("no tenant in the request's authorizer context")
    return str(tenant)


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


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Route an API Gateway event, refusing bodies nothing should parse: oversized, or
    (base64-delivered) bytes that are not UTF-8 text.

    (Powertools runs body validation ahead of any middleware, so these checks sit here.)
    """
    body = event.get("body") or ""
    if len(body.encode()) > MAX_BODY_BYTES:
        return _raw_error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"the request body is over {MAX_BODY_BYTES} bytes",
            f"larger than {MAX_BODY_BYTES} bytes",
        )
    if event.get("isBase64Encoded") and body:
        try:
            base64.b64decode(body.encode(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return _raw_error(HTTPStatus.BAD_REQUEST, "validation_error",
                              "body: not UTF-8 encoded JSON", "not UTF-8 encoded JSON")
    return app.resolve(event, context)


def _raw_error(status: HTTPStatus, code: str, message: str, problem: str) -> dict[str, Any]:
    """An error answered before routing, in the API's JSON error shape."""
    response = error_response(status, code, message, [{"field": "body", "problem": problem}])
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }


def create_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[dict[str, Any]]:
        fields = describe_request_errors(error.errors())
        message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
        return error_response(HTTPStatus.BAD_REQUEST, "validation_error", message, fields)

    @app.exception_handler(InputError)
    def _bad_input(error: InputError) -> Response[dict[str, Any]]:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "validation_error",
            str(error),
            [{"field": error.field, "problem": error.problem}],
        )

    @app.exception_handler(MissingTenantError)
    def _no_tenant(error: MissingTenantError) -> Response[dict[str, Any]]:
        # A deployment mistake, not the caller's: refuse rather than guess a tenant.
        logger.error("refused a request without a tenant", extra={"reason": str(error)})
        request_id = getattr(app.lambda_context, "aws_request_id", "unknown")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "internal_error",
            f"the request carries no tenant; quote request id {request_id} when reporting it",
        )

    @app.exception_handler(TaskNotFoundError)
    def _task_not_found(error: TaskNotFoundError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", str(error))

    @app.not_found
    def _no_route(_: NotFoundError) -> Response[dict[str, Any]]:
        event = app.current_event
        return error_response(
            HTTPStatus.NOT_FOUND, "not_found", f"no route {event.http_method} {event.path}"
        )

    @app.exception_handler(Exception)
    def _unexpected(_: Exception) -> Response[dict[str, Any]]:
        # Details go to the log only: they can hold internals a caller must not see.
        logger.exception("unhandled error")
        request_id = getattr(app.lambda_context, "aws_request_id", "unknown")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "internal_error",
            f"internal error; quote request id {request_id} when reporting it",
        )

    return app
