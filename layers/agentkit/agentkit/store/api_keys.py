"""The API key repository, on the tasks table. The table never holds a key, only its SHA-256:

  APIKEY#<sha256(key)> / META    tenant_id, key_id, prefix (for display), created_at,
                                 revoked (+ revoked_at); gsi1pk TENANT_KEYS#<tenant> for
                                 listing (not TENANT#: that partition lists the tenant's tasks)
  APIKEYID#<key_id>    / META    key_hash: how `keys revoke KEY_ID` finds the key

The authorizer only ever reads the first item (GetItem). What a key is (its shape, its hash,
the record's fields) is agentkit.tenancy's.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from agentkit import aws
from agentkit.models.domain import utc_now
from agentkit.store.codec import from_item, is_condition_failure, to_item
from agentkit.store.tasks import META
from agentkit.tenancy import (
    DISPLAY_PREFIX_CHARS,
    ApiKeyRecord,
    CreatedApiKey,
    check_tenant_id,
    generate_key,
    hash_key,
    looks_like_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ApiKeyNotFoundError(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key '{key_id}' not found")
        self.key_id = key_id


def key_pk(key_hash: str) -> str:
    return f"APIKEY#{key_hash}"


def key_id_pk(key_id: str) -> str:
    return f"APIKEYID#{key_id}"


def tenant_keys_pk(tenant_id: str) -> str:
    return f"TENANT_KEYS#{tenant_id}"


class ApiKeyStore:
    """API keys in the tasks table (see the module docstring for the layout)."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self.client: DynamoDBClient = client or aws.client("dynamodb")

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
        if not looks_like_key(key):
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
            if is_condition_failure(error):
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
