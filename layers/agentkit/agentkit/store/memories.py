"""The memory repository: long-term memories' records, on the tasks table. (Their vectors are
the vector index's: agentkit.store.vectors.)

  MEMORY#<tenant>#<scope> / <memory_id>   the memory (text, tags, created_at, embedding
                                          model, source); scope "" for the tenant's own.
                                          Ids are time-ordered: the partition read
                                          backwards is newest first
  MEMORYID#<tenant> / <memory_id>         its scope: how GET /memories/{id} (which names no
                                          scope) finds the record

Both items are written and deleted together, in one transaction, conditionally (an id is
written once; a delete of a memory that is gone is a MemoryNotFoundError). Every read is
strongly consistent: a memory written by one request is read by the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from agentkit import aws
from agentkit.memory.models import Memory
from agentkit.store.codec import from_item, is_condition_failure, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchGetItem reads at most 100 keys a call.
BATCH_GET_KEYS = 100


class MemoryNotFoundError(LookupError):
    def __init__(self, memory_id: str) -> None:
        super().__init__(f"memory '{memory_id}' not found")
        self.memory_id = memory_id


def memories_pk(tenant_id: str, scope: str | None) -> str:
    return f"MEMORY#{tenant_id}#{scope or ''}"


def memory_id_pk(tenant_id: str) -> str:
    return f"MEMORYID#{tenant_id}"


_FIELDS = ("memory_id", "scope", "text", "tags", "created_at", "embedding_model", "source")


class MemoryStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self.client: DynamoDBClient = client or aws.client("dynamodb")

    def _key(self, tenant_id: str, scope: str | None, memory_id: str) -> dict[str, Any]:
        return to_item({"pk": memories_pk(tenant_id, scope), "sk": memory_id})

    def _pointer_key(self, tenant_id: str, memory_id: str) -> dict[str, Any]:
        return to_item({"pk": memory_id_pk(tenant_id), "sk": memory_id})

    def put(self, tenant_id: str, memory: Memory) -> None:
        """Store a new memory (its id must be new)."""
        record = {**memory.model_dump(), "tenant_id": tenant_id}
        pointer = {"tenant_id": tenant_id, "scope": memory.scope or ""}
        try:
            self.client.transact_write_items(TransactItems=[
                {"Put": {
                    "TableName": self.table_name,
                    "Item": {**self._key(tenant_id, memory.scope, memory.memory_id),
                             **to_item(record)},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }},
                {"Put": {
                    "TableName": self.table_name,
                    "Item": {**self._pointer_key(tenant_id, memory.memory_id),
                             **to_item(pointer)},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }},
            ])
        except ClientError as error:
            if is_condition_failure(error):
                raise ValueError(f"memory id '{memory.memory_id}' is taken") from None
            raise

    def scope_of(self, tenant_id: str, memory_id: str) -> str | None:
        """The scope of the tenant's memory `memory_id` ("" → None); MemoryNotFoundError."""
        item = self.client.get_item(
            TableName=self.table_name, Key=self._pointer_key(tenant_id, memory_id),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            raise MemoryNotFoundError(memory_id)
        return from_item(item).get("scope") or None

    def get(self, tenant_id: str, memory_id: str) -> Memory:
        """The tenant's memory `memory_id`, whatever its scope; MemoryNotFoundError."""
        scope = self.scope_of(tenant_id, memory_id)
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(tenant_id, scope, memory_id),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            raise MemoryNotFoundError(memory_id)
        return _memory(from_item(item))

    def get_many(
        self, tenant_id: str, scope: str | None, memory_ids: Sequence[str]
    ) -> dict[str, Memory]:
        """The memories of these ids in the namespace (strongly consistent); an id that is
        not there (deleted, or never in this namespace) is simply absent."""
        found: dict[str, Memory] = {}
        wanted = list(dict.fromkeys(memory_ids))
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            keys = [self._key(tenant_id, scope, memory_id)
                    for memory_id in wanted[start : start + BATCH_GET_KEYS]]
            request: dict[str, Any] = {
                self.table_name: {"Keys": keys, "ConsistentRead": True}
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    memory = _memory(from_item(item))
                    found[memory.memory_id] = memory
                # Unprocessed keys (throttling) are asked again at once: the caller wants
                # them now, and BatchGetItem returns them only under load.
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    def list_newest(self, tenant_id: str, scope: str | None, *, limit: int) -> list[Memory]:
        """The namespace's memories, newest first."""
        memories: list[Memory] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": memories_pk(tenant_id, scope)}),
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": limit,
        }
        while len(memories) < limit:
            response = self.client.query(**kwargs)
            memories += [_memory(from_item(item)) for item in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return memories[:limit]

    def delete(self, tenant_id: str, memory_id: str) -> Memory:
        """Remove the memory (both items, together); returns what was removed.
        MemoryNotFoundError when it is not the tenant's (or is gone already)."""
        memory = self.get(tenant_id, memory_id)
        try:
            self.client.transact_write_items(TransactItems=[
                {"Delete": {
                    "TableName": self.table_name,
                    "Key": self._key(tenant_id, memory.scope, memory_id),
                    "ConditionExpression": "attribute_exists(pk)",
                }},
                {"Delete": {
                    "TableName": self.table_name,
                    "Key": self._pointer_key(tenant_id, memory_id),
                    "ConditionExpression": "attribute_exists(pk)",
                }},
            ])
        except ClientError as error:
            if is_condition_failure(error):  # deleted by a concurrent request
                raise MemoryNotFoundError(memory_id) from None
            raise
        return memory


def _memory(values: dict[str, Any]) -> Memory:
    return Memory.model_validate({name: values.get(name) for name in _FIELDS
                                  if values.get(name) is not None})
