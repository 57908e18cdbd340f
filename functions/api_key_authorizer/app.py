"""API Gateway REQUEST authorizer: an API key → its tenant (logic in agentkit.api.api_keys).

401 (no key) is API Gateway's answer to the exact error message "Unauthorized"; an
unknown or revoked key gets a Deny policy (403); a live key an Allow policy whose context
carries ``tenant_id`` to the handlers. The key itself is never logged.
"""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api.api_keys import MissingCredentials, authorize
from agentkit.config import ApiKeyAuthorizerSettings, load
from agentkit.observability.tracing import traced
from agentkit.store.api_keys import ApiKeyStore

logger = Logger()
_config = load(ApiKeyAuthorizerSettings)
_keys = ApiKeyStore(_config.table_name)


@traced
@logger.inject_lambda_context
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def lambda_handler(
    event: APIGatewayAuthorizerRequestEvent, context: LambdaContext
) -> dict[str, Any]:
    try:
        decision = authorize(event.headers, event.method_arn, keys=_keys)
    except MissingCredentials:
        logger.info("no API key", extra={"method_arn": event.method_arn})
        raise Exception("Unauthorized") from None  # API Gateway's 401 contract
    logger.info(
        "allowed" if decision.allowed else "denied",
        extra={
            "reason": decision.reason,
            "tenant_id": decision.tenant_id,
            "key_id": decision.key_id,
            "method_arn": event.method_arn,
        },
    )
    return decision.response


startup.ready()
