"""API keys and the Lambda authorizer's decision: which tenant a request acts for.

A key looks like ``ops_<43 url-safe characters>`` (``secrets.token_urlsafe(32)``: 256 bits).
It is shown once, when created; the table keeps only its SHA-256 (agentkit.store.api_keys).
A plain SHA-256 is enough here: the keys are long random strings, not passwords, so there
is nothing to brute-force.

The decision (REST API, REQUEST authorizer):
  * no credential (no ``Authorization: Bearer <key>``, no ``x-api-key``) → MissingCredentials:
    the function raises ``Exception("Unauthorized")``, which API Gateway answers with 401;
  * unknown or revoked key → a Deny policy: API Gateway answers 403;
  * a live key → an Allow policy on every method of the API (API Gateway caches the result
    per key for the authorizer TTL and applies it to any route) with context
    ``{"tenant_id": ..., "key_id": ...}``, which reaches the handlers as
    ``requestContext.authorizer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    parse_api_gateway_arn,
)
from pydantic import BaseModel

from agentkit.tenancy import ApiKeyRecord


class MissingCredentials(Exception):
    """The request carries no API key at all (→ 401)."""


def presented_key(headers: Mapping[str, str] | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>``, else ``x-api-key``.

    Header names are case-insensitive, the scheme too. An Authorization header with another
    scheme (Basic, a bare key) counts as no credential.
    """
    lowered = {name.lower(): value for name, value in (headers or {}).items() if value}
    authorization = lowered.get("authorization", "").strip()
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return credential.strip()
        return None
    api_key = lowered.get("x-api-key", "").strip()
    return api_key or None


class KeyLookup(Protocol):
    def lookup(self, key: str) -> ApiKeyRecord | None: ...


class AuthDecision(BaseModel):
    """What the authorizer decided, for its log (never the key)."""

    allowed: bool
    tenant_id: str | None = None
    key_id: str | None = None
    reason: str
    response: dict[str, Any]


def authorize(
    headers: Mapping[str, str] | None, method_arn: str, *, keys: KeyLookup
) -> AuthDecision:
    """Decide a REQUEST authorizer call. Raises MissingCredentials when there is no key."""
    key = presented_key(headers)
    if key is None:
        raise MissingCredentials("no API key: send Authorization: Bearer <key>")
    record = keys.lookup(key)
    arn = parse_api_gateway_arn(method_arn)
    if record is None or record.revoked:
        deny = APIGatewayAuthorizerResponse(
            principal_id=record.key_id if record else "unknown-key",
            region=arn.region,
            aws_account_id=arn.aws_account_id,
            api_id=arn.api_id,
            stage=arn.stage,
            partition=arn.partition,
        )
        deny.deny_all_routes()
        return AuthDecision(
            allowed=False,
            key_id=record.key_id if record else None,
            tenant_id=record.tenant_id if record else None,
            reason="revoked key" if record else "unknown key",
            response=deny.asdict(),
        )
    # Every route of the API: API Gateway caches this policy per key and applies it to
    # whichever method the key calls next, so a policy for this method alone would wrongly
    # refuse the key's next call to another one.
    allow = APIGatewayAuthorizerResponse(
        principal_id=record.key_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"tenant_id": record.tenant_id, "key_id": record.key_id},
        partition=arn.partition,
    )
    allow.allow_all_routes()
    return AuthDecision(
        allowed=True,
        tenant_id=record.tenant_id,
        key_id=record.key_id,
        reason="live key",
        response=allow.asdict(),
    )
