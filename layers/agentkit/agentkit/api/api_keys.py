"""API keys and the Lambda authorizer's decision: which tenant a request acts for.

A key looks like ``ops_<43 url-safe characters>`` (``secrets.token_urlsafe(32)``: 256 bits).
It is shown once, when created; the table keeps only its SHA-256:

  APIKEY#<sha256(key)> / META    tenant_id, key_id, prefix (for display), created_at,
                                 revoked (+ revoked_at); gsi1pk TENANT_KEYS#<tenant> for
                                 listing (not TENANT#: that partition lists the tenant's tasks)
  APIKEYID#<key_id>    / META    key_hash: how `keys revoke KEY_ID` finds the key

The authorizer only ever reads the first item (GetItem). A plain SHA-256 is enough here:
the keys are long random strings, not passwords, so there is nothing to brute-force.

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

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import boto3
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    parse_api_gateway_arn,
)
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from agentkit.models import utc_now
from agentkit.store.dynamo import META, from_item, to_item

KEY_PREFIX = "ops_"
#: shown by `keys list`: "ops_" + the first 6 characters of the secret part
DISPLAY_PREFIX_CHARS = len(KEY_PREFIX) + 6
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_TENANT_RE = re.compile(TENANT_ID_PATTERN)
_KEY_RE = re.compile(r"^ops_[A-Za-z0-9_\-]{20,128}$")


class MissingCredentials(Exception):
    """The request carries no API key at all (→ 401)."""


class ApiKeyNotFoundError(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key '{key_id}' not found")
        self.key_id = key_id


class ApiKeyRecord(BaseModel):
    """What the table keeps about a key (never the key itself)."""

    key_id: str
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    prefix: str
    created_at: str = Field(default_factory=utc_now)
    revoked: bool = False
    revoked_at: str | None = None
    description: str | None = None


class CreatedApiKey(BaseModel):
    """A new key: `key` is the secret, shown once and stored nowhere."""

    key: str
    record: ApiKeyRecord


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_pk(key_hash: str) -> str:
    return f"APIKEY#{key_hash}"


def key_id_pk(key_id: str) -> str:
    return f"APIKEYID#{key_id}"


def tenant_keys_pk(tenant_id: str) -> str:
    return f"TENANT_KEYS#{tenant_id}"


def check_tenant_id(tenant_id: str) -> str:
    if not _TENANT_RE.match(tenant_id):
        raise ValueError(
            f"bad tenant id {tenant_id!r}: 1-64 of letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return tenant_id


class ApiKeyStore:
    """API keys in the tasks table (see the module docstring for the layout)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")

    def create(self, tenant_id: str, *, description: str | None = None) -> CreatedApiKey:
        check_tenant_id(tenant_id)
        key = generate_key()
        key_hash = hash_key(key)
        record = ApiKeyRecord(
            key_id="key_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            prefix=key[:DISPLAY_PREFIX_CHARS],
            description=description,
        )
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": to_item(
                            {
                                "pk": key_pk(key_hash),
                                "sk": META,
                                "gsi1pk": tenant_keys_pk(tenant_id),
                                "gsi1sk": f"{record.created_at}#{record.key_id}",
                                **record.model_dump(),
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": to_item(
                            {
                                "pk": key_id_pk(record.key_id),
                                "sk": META,
                                "key_hash": key_hash,
                                "tenant_id": tenant_id,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        return CreatedApiKey(key=key, record=record)

    def lookup(self, key: str) -> ApiKeyRecord | None:
        """The record of a presented key; None for anything not issued here."""
        if not _KEY_RE.match(key):
            return None
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": key_pk(hash_key(key)), "sk": META}),
            # a revocation must hold as soon as the authorizer's cache lets the request through
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return ApiKeyRecord.model_validate(from_item(item))

    def revoke(self, key_id: str) -> ApiKeyRecord:
        """Mark a key revoked (kept for the record). Revoking twice is harmless."""
        pointer = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": key_id_pk(key_id), "sk": META}),
            ConsistentRead=True,
        ).get("Item")
        if pointer is None:
            raise ApiKeyNotFoundError(key_id)
        key_hash = from_item(pointer)["key_hash"]
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=to_item({"pk": key_pk(key_hash), "sk": META}),
                UpdateExpression=(
                    "SET revoked = :true, revoked_at = if_not_exists(revoked_at, :now)"
                ),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=to_item({":true": True, ":now": utc_now()}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ApiKeyNotFoundError(key_id) from None
            raise
        return ApiKeyRecord.model_validate(from_item(response["Attributes"]))

    def list_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        """A tenant's keys, oldest first (revoked ones included)."""
        records: list[ApiKeyRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-tenant",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": tenant_keys_pk(tenant_id)}),
        }
        while True:
            response = self.client.query(**kwargs)
            records.extend(
                ApiKeyRecord.model_validate(from_item(item)) for item in response.get("Items", [])
            )
            if not response.get("LastEvaluatedKey"):
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


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
