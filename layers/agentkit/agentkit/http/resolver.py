"""The Powertools resolver every API function uses: validation on, every refusal in the one
error shape (agentkit.http.errors), the tenant the API-key authorizer resolved."""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from agentkit.errors import InputError
from agentkit.http.errors import describe_request_errors, error_response, raw_error_response
from agentkit.store import TaskNotFoundError

MAX_BODY_BYTES = 64 * 1024

logger = Logger(child=True)


class MissingTenantError(RuntimeError):
    """The request reached a handler without a tenant: the authorizer is not in front of it."""


def current_tenant(app: APIGatewayRestResolver | Router) -> str:
    """The tenant the Lambda authorizer resolved for this request (`context.tenant_id`)."""
    event = app.current_event
    # A Router types its event as the base class; these resolvers serve REST API events.
    if not isinstance(event, APIGatewayProxyEvent):
        raise MissingTenantError(f"not a REST API event: {type(event).__name__}")
    context: Any = event.request_context.authorizer or {}
    tenant = context.get("tenant_id") if hasattr(context, "get") else None
    if not tenant:
        raise MissingTenantError("no tenant in the request's authorizer context")
    return str(tenant)


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Route an API Gateway event, refusing bodies nothing should parse: oversized, or
    (base64-delivered) bytes that are not UTF-8 text.

    (Powertools runs body validation ahead of any middleware, so these checks sit here.)
    """
    body = event.get("body") or ""
    if len(body.encode()) > MAX_BODY_BYTES:
        return raw_error_response(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"the request body is over {MAX_BODY_BYTES} bytes",
            [{"field": "body", "problem": f"larger than {MAX_BODY_BYTES} bytes"}],
        )
    if event.get("isBase64Encoded") and body:
        try:
            base64.b64decode(body.encode(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return raw_error_response(
                HTTPStatus.BAD_REQUEST, "validation_error", "body: not UTF-8 encoded JSON",
                [{"field": "body", "problem": "not UTF-8 encoded JSON"}],
            )
    return app.resolve(event, context)


def create_resolver(*routers: Router) -> APIGatewayRestResolver:
    """A resolver serving `routers` (each API function's routes, agentkit.http.<function>)."""
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

    # A router's exception handlers join these; the most specific class of an error wins.
    for router in routers:
        app.include_router(router)
    return app
