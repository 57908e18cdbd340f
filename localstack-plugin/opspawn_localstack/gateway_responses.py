"""REST API gateway responses on LocalStack 4.8.1 as AWS applies them.

Registered under ``localstack.hooks.on_infra_start``. LocalStack community stores gateway
responses (PutGatewayResponse, ``AWS::ApiGateway::GatewayResponse``) but:

1. its OpenAPI import (``helpers.import_api_from_openapi_spec``, behind PutRestApi and so behind
   CloudFormation's ``AWS::ApiGateway::RestApi`` ``Body``) never reads
   ``x-amazon-apigateway-gateway-responses``, where the SAM transform puts an
   ``AWS::Serverless::Api``'s ``GatewayResponses``: the API ends up with none. The import is
   wrapped to store them as PutGatewayResponse does (``overwrite`` mode replaces the set,
   ``merge`` adds to it);
2. its invocation error handler (``GatewayExceptionHandler``) takes only the status code from a
   configured response and answers ``{"message": ...}`` whatever its templates and headers say.
   ``create_exception_response`` is wrapped to render the configured response's template and
   ``gatewayresponse.header.*`` parameters (``gateway_templates.py``); a response type the API
   does not customize (itself or through DEFAULT_4XX/DEFAULT_5XX) keeps LocalStack's answer.

Private API of LocalStack 4.8.1: on an import failure the hook logs a warning and LocalStack
answers its own error bodies, as before.
"""

from __future__ import annotations

import functools
import io
import logging
from typing import Any

from localstack.runtime import hooks

from opspawn_localstack.gateway_templates import (
    GatewayResponseError,
    pick_template,
    render_body,
    response_headers,
    responses_from_openapi,
)

LOG = logging.getLogger(__name__)


def _patched(fn: Any) -> bool:
    return bool(getattr(fn, "_opspawn_patched", False))


def _mark(fn: Any) -> Any:
    fn._opspawn_patched = True
    return fn


@hooks.on_infra_start()
def opspawn_gateway_responses() -> None:
    try:
        _import_gateway_responses()
        _render_gateway_responses()
    except (ImportError, AttributeError) as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: gateway responses keep LocalStack's bodies: %s", exc)
        return
    LOG.info("opspawn: REST API gateway responses imported from OpenAPI and rendered")


def store_gateway_responses(
    container: Any, document: dict[str, Any], mode: str, known_types: Any
) -> list[str]:
    """Put the document's gateway responses on the REST API's LocalStack container; returns a
    warning per response type API Gateway does not have (skipped, as AWS's import warns)."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
        build_gateway_response,
    )

    declared = responses_from_openapi(document)
    if mode == "overwrite":
        container.gateway_responses.clear()
    warnings = []
    for response_type, spec in declared.items():
        if response_type not in known_types:
            warnings.append(f"Invalid gateway response type {response_type!r}: skipped")
            continue
        container.gateway_responses[response_type] = build_gateway_response(
            response_type=response_type,
            status_code=spec.get("statusCode"),
            response_parameters=spec["responseParameters"],
            response_templates=spec["responseTemplates"],
            default_response=False,
        )
    return warnings


def _import_gateway_responses() -> None:
    from localstack.aws.api.apigateway import BadRequestException
    from localstack.services.apigateway import helpers
    from localstack.services.apigateway.helpers import get_apigateway_store
    from localstack.services.apigateway.legacy import provider as legacy_provider
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
        DEFAULT_GATEWAY_RESPONSES,
    )
    from localstack.utils.json import parse_json_or_yaml
    from localstack.utils.strings import to_str

    original = legacy_provider.import_api_from_openapi_spec
    if _patched(original):
        return

    @functools.wraps(original)
    def import_api_from_openapi_spec(rest_api: Any, context: Any, request: Any) -> Any:
        data = request["body"].read()
        request["body"] = io.BytesIO(data)  # the import reads the stream again
        rest_api, warnings = original(rest_api, context=context, request=request)
        document = parse_json_or_yaml(to_str(data))
        if isinstance(document, dict):
            container = get_apigateway_store(context=context).rest_apis[rest_api.id]
            try:
                warnings = [
                    *warnings,
                    *store_gateway_responses(
                        container,
                        document,
                        request.get("mode") or "merge",
                        DEFAULT_GATEWAY_RESPONSES,
                    ),
                ]
            except GatewayResponseError as exc:
                raise BadRequestException(str(exc)) from exc
        return rest_api, warnings

    legacy_provider.import_api_from_openapi_spec = _mark(import_api_from_openapi_spec)
    helpers.import_api_from_openapi_spec = legacy_provider.import_api_from_openapi_spec


def _render_gateway_responses() -> None:
    from localstack.services.apigateway.next_gen.execute_api import gateway_response as gw
    from localstack.services.apigateway.next_gen.execute_api.handlers.gateway_exception import (
        GatewayExceptionHandler,
    )

    original = GatewayExceptionHandler.create_exception_response
    if _patched(original):
        return

    @functools.wraps(original)
    def create_exception_response(self: Any, exception: Any, context: Any) -> Any:
        response = original(self, exception, context)
        configured = context.deployment.rest_api.gateway_responses or {}
        config = gw.get_gateway_response_or_default(exception.type, configured)
        if config is gw.DEFAULT_GATEWAY_RESPONSES.get(exception.type):
            return response  # not customized: LocalStack's (and AWS's) stock answer
        request = context.invocation_request or {}
        variables = context.context_variables or {}
        stage_variables = context.stage_variables or {}
        chosen = pick_template(config.get("responseTemplates"))
        if chosen:
            content_type, template = chosen
            response.set_data(render_body(template, variables, stage_variables))
            response.headers["Content-Type"] = content_type
        for name, value in response_headers(
            config.get("responseParameters"),
            request_headers=request.get("headers"),
            query=request.get("query_string_parameters"),
            path=request.get("path_parameters"),
            context_variables=variables,
            stage_variables=stage_variables,
        ).items():
            response.headers[name] = value
        return response

    GatewayExceptionHandler.create_exception_response = _mark(create_exception_response)
