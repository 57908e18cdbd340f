"""Lambda authorizers for REST APIs on LocalStack 4.8.1 community (which skips them).

Registered under ``localstack.hooks.on_infra_start``: appends a handler to the REST API
gateway's ``preprocess_request`` chain (after routing, before the integration). For a method
whose ``authorizationType`` is ``CUSTOM`` it does what API Gateway does:

* reads the method's TOKEN or REQUEST authorizer from the deployment (LocalStack imports
  them from the template's OpenAPI body);
* a missing identity source (or a TOKEN that fails ``identityValidationExpression``) → 401
  without calling the function;
* invokes the function through LocalStack's Lambda service (the project's executor) with
  API Gateway's TOKEN/REQUEST event;
* the function raising ``Unauthorized`` → 401; any other error or a malformed answer → 500
  (AUTHORIZER_CONFIGURATION_ERROR); a policy without an Allow on the request's method ARN,
  or with an explicit Deny → 403;
* caches the answer per authorizer and identity-source values for
  ``authorizerResultTtlInSeconds`` (API Gateway's default, 300, when unset; 0 = no cache;
  no identity source = no cache), re-evaluating the cached policy for each method ARN;
* puts ``principalId``, the returned ``context`` (values as strings, as a REST API does) and
  ``integrationLatency`` into ``requestContext.authorizer``.

Refusals are raised as LocalStack's gateway errors (UNAUTHORIZED, ACCESS_DENIED,
AUTHORIZER_CONFIGURATION_ERROR), so its error handler answers them from the API's gateway
responses (rendered as AWS does by ``gateway_responses.py``).

Private API of LocalStack 4.8.1: on an import failure the hook logs a warning and the API
runs without authorizers, as before (handlers then refuse requests without a tenant).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

from localstack.runtime import hooks

from opspawn_localstack.tracing import call_with_trace, child_header

LOG = logging.getLogger(__name__)
DEFAULT_TTL_SECONDS = 300
MAX_CACHE_ENTRIES = 1024


class Refusal(Exception):
    """The gateway answers instead of the integration (401/403/500)."""

    def __init__(self, kind: str, message: str | None) -> None:
        super().__init__(message or kind)
        self.kind = kind  # "unauthorized" | "denied" | "configuration"
        self.message = message


@hooks.on_infra_start()
def opspawn_lambda_authorizers() -> None:
    try:
        from localstack.services.apigateway.next_gen.execute_api import handlers
    except ImportError as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: cannot run Lambda authorizers: %s", exc)
        return
    if any(isinstance(h, LambdaAuthorizerHandler) for h in handlers.preprocess_request.handlers):
        return
    handlers.preprocess_request.append(LambdaAuthorizerHandler())
    LOG.info("opspawn: REST API Lambda authorizers (TOKEN/REQUEST) enabled")


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str) -> re.Pattern[str]:
    """An IAM wildcard pattern (``*`` any run, ``?`` one character) as a regex."""
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def policy_effect(policy: Any, method_arn: str) -> str | None:
    """The policy's verdict for the ARN: Allow, Deny (an explicit Deny wins) or None."""
    if not isinstance(policy, dict):
        raise Refusal("configuration", None)
    allowed = False
    for statement in _listify(policy.get("Statement")):
        if not isinstance(statement, dict):
            raise Refusal("configuration", None)
        actions = [str(a) for a in _listify(statement.get("Action"))]
        if not any(_glob(a.lower()).fullmatch("execute-api:invoke") for a in actions):
            continue
        resources = [str(r) for r in _listify(statement.get("Resource"))]
        if not any(_glob(r).fullmatch(method_arn) for r in resources):
            continue
        effect = str(statement.get("Effect", "")).capitalize()
        if effect == "Deny":
            return "Deny"
        if effect == "Allow":
            allowed = True
    return "Allow" if allowed else None


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class LambdaAuthorizerHandler:
    """A ``RestApiGatewayHandler`` (see the module docstring)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __call__(self, chain: Any, context: Any, response: Any) -> None:
        method = context.resource_method or {}
        if method.get("authorizationType") != "CUSTOM":
            return
        authorizer = context.deployment.rest_api.authorizers.get(method.get("authorizerId") or "")
        try:
            if not authorizer or authorizer.get("type") not in ("TOKEN", "REQUEST"):
                LOG.warning("opspawn: method has no usable Lambda authorizer: %s", authorizer)
                raise Refusal("configuration", None)
            context.context_variables["authorizer"] = self._authorize(context, authorizer)
        except Refusal as refusal:
            # LocalStack's chain hands it to its gateway exception handler
            raise self._gateway_error(refusal) from None

    # ---- the decision ------------------------------------------------------------------------
    def _authorize(self, context: Any, authorizer: dict[str, Any]) -> dict[str, Any]:
        request = context.invocation_request
        method_arn = (
            f"arn:aws:execute-api:{context.region}:{context.account_id}:{context.api_id}"
            f"/{context.stage}/{request['http_method']}{request['path']}"
        )
        identity = self._identity_values(context, authorizer)
        ttl = authorizer.get("authorizerResultTtlInSeconds")
        ttl = DEFAULT_TTL_SECONDS if ttl is None else int(ttl)
        cache_key = (context.api_id, authorizer.get("id"), tuple(identity))
        result = self._cached(cache_key) if ttl > 0 and identity else None
        latency_ms = 0
        if result is None:
            started = time.monotonic()
            result = self._invoke(context, authorizer, method_arn, identity)
            latency_ms = int((time.monotonic() - started) * 1000)
            if ttl > 0 and identity:
                self._store(cache_key, result, ttl)
        effect = policy_effect(result.get("policyDocument"), method_arn)
        if effect == "Deny":
            raise Refusal(
                "denied", "User is not authorized to access this resource with an explicit deny"
            )
        if effect != "Allow":
            raise Refusal("denied", "User is not authorized to access this resource")
        granted = {key: _stringify(value) for key, value in (result.get("context") or {}).items()}
        return {
            **granted,
            "principalId": str(result["principalId"]),
            "integrationLatency": latency_ms,
        }

    @staticmethod
    def _identity_values(context: Any, authorizer: dict[str, Any]) -> list[str]:
        """The identity-source values; a missing or empty one is API Gateway's 401."""
        request = context.invocation_request
        sources = [s.strip() for s in (authorizer.get("identitySource") or "").split(",")]
        values: list[str] = []
        for source in filter(None, sources):
            value: Any = None
            if source.startswith("method.request.header."):
                value = request["headers"].get(source.removeprefix("method.request.header."))
            elif source.startswith("method.request.querystring."):
                name = source.removeprefix("method.request.querystring.")
                value = (request.get("query_string_parameters") or {}).get(name)
            elif source.startswith("stageVariables."):
                value = (context.stage_variables or {}).get(source.removeprefix("stageVariables."))
            elif source.startswith("context."):
                value = context.context_variables
                for part in source.removeprefix("context.").split("."):
                    value = value.get(part) if isinstance(value, dict) else None
            if value is None or str(value) == "":
                raise Refusal("unauthorized", "Unauthorized")
            values.append(str(value))
        if authorizer.get("type") == "TOKEN":
            if len(values) != 1:
                raise Refusal("unauthorized", "Unauthorized")
            expression = authorizer.get("identityValidationExpression")
            if expression and not re.fullmatch(expression, values[0]):
                raise Refusal("unauthorized", "Unauthorized")
        return values

    def _invoke(
        self, context: Any, authorizer: dict[str, Any], method_arn: str, identity: list[str]
    ) -> dict[str, Any]:
        from localstack.services.apigateway.next_gen.execute_api.helpers import (
            get_lambda_function_arn_from_invocation_uri,
        )
        from localstack.services.apigateway.next_gen.execute_api.integrations.aws import (
            RestApiAwsProxyIntegration,
        )

        if authorizer["type"] == "TOKEN":
            event: dict[str, Any] = {
                "type": "TOKEN",
                "authorizationToken": identity[0],
                "methodArn": method_arn,
            }
        else:
            event = self._request_event(context, method_arn)
        function_arn = get_lambda_function_arn_from_invocation_uri(authorizer["authorizerUri"])
        source_arn = (
            f"arn:aws:execute-api:{context.region}:{context.account_id}:{context.api_id}"
            f"/authorizers/{authorizer.get('id')}"
        )
        try:
            trace = getattr(context, "trace_id", None)  # in the request's trace, as on AWS
            payload = call_with_trace(
                child_header(trace) if trace else None,
                RestApiAwsProxyIntegration.call_lambda,
                function_arn=function_arn,
                event=json.dumps(event).encode(),
                source_arn=source_arn,
                credentials=authorizer.get("authorizerCredentials"),
            )
            result = json.loads(payload or b"null")
        except Exception as exc:
            LOG.warning("opspawn: authorizer %s failed: %s", function_arn, exc)
            raise Refusal("configuration", None) from exc
        if isinstance(result, dict) and "errorMessage" in result and "policyDocument" not in result:
            if result.get("errorMessage") == "Unauthorized":
                raise Refusal("unauthorized", "Unauthorized")
            LOG.warning(
                "opspawn: authorizer %s raised %s: %s",
                function_arn,
                result.get("errorType"),
                result.get("errorMessage"),
            )
            raise Refusal("configuration", None)
        if (
            not isinstance(result, dict)
            or not result.get("principalId")
            or not isinstance(result.get("policyDocument"), dict)
            or not isinstance(result.get("context") or {}, dict)
            or any(isinstance(v, (dict, list)) for v in (result.get("context") or {}).values())
        ):
            LOG.warning("opspawn: authorizer %s answered a malformed response", function_arn)
            raise Refusal("configuration", None)
        return result

    @staticmethod
    def _request_event(context: Any, method_arn: str) -> dict[str, Any]:
        request = context.invocation_request
        headers = request["headers"]
        query = request.get("query_string_parameters") or {}
        multi_query = request.get("multi_value_query_string_parameters") or {}
        return {
            "type": "REQUEST",
            "methodArn": method_arn,
            "resource": (context.resource or {}).get("path"),
            "path": request["path"],
            "httpMethod": request["http_method"],
            "headers": dict(headers.items()),
            # (iterating werkzeug Headers yields (name, value) pairs)
            "multiValueHeaders": {name: headers.getlist(name) for name, _ in headers.items()},
            "queryStringParameters": dict(query),
            "multiValueQueryStringParameters": dict(multi_query),
            "pathParameters": dict(request.get("path_parameters") or {}),
            "stageVariables": dict(context.stage_variables or {}),
            "requestContext": dict(context.context_variables),
        }

    # ---- cache -------------------------------------------------------------------------------
    def _cached(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._cache[key]
                return None
            return entry[1]

    def _store(self, key: tuple[Any, ...], result: dict[str, Any], ttl: int) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                    del self._cache[stale]
                if len(self._cache) >= MAX_CACHE_ENTRIES:
                    self._cache.clear()
            self._cache[key] = (now + ttl, result)

    # ---- refusals ----------------------------------------------------------------------------
    @staticmethod
    def _gateway_error(refusal: Refusal) -> Exception:
        from localstack.services.apigateway.next_gen.execute_api import gateway_response as gw

        error_class = {
            "unauthorized": gw.UnauthorizedError,
            "denied": gw.AccessDeniedError,
        }.get(refusal.kind, gw.AuthorizerConfigurationError)
        error: Exception = error_class(refusal.message)
        return error
