"""MemoryStore on the moto table: the two items written and deleted together, ids written
once, reads by id across scopes, batch reads past one call's 100 keys, newest first."""

from __future__ import annotations

import boto3
import pytest

from agentkit.memory.models import Memory, new_memory_id
from agentkit.store.memories import MemoryNotFoundError, MemoryStore
from tests.conftest import TABLE


def memory(scope: str | None = None, text: str = "a fact") -> Memory:
    return Memory(memory_id=new_memory_id(), scope=scope, text=text, tags=["t"],
                  created_at="2026-11-30T00:00:00.000Z", embedding_model="m")


@pytest.fixture
def memories(aws: None) -> MemoryStore:
    return MemoryStore(TABLE)


def test_put_writes_the_record_and_its_pointer(memories: MemoryStore) -> None:
    saved = memory(scope="user-1")
    memories.put("tenant-a", saved)
    client = boto3.client("dynamodb")
    record = client.get_item(TableName=TABLE, Key={
        "pk": {"S": "MEMORY#tenant-a#user-1"}, "sk": {"S": saved.memory_id}})["Item"]
    pointer = client.get_item(TableName=TABLE, Key={
        "pk": {"S": "MEMORYID#tenant-a"}, "sk": {"S": saved.memory_id}})["Item"]
    assert record["text"] == {"S": "a fact"}
    assert pointer["scope"] == {"S": "user-1"}
    assert memories.get("tenant-a", saved.memory_id) == saved


def test_an_id_is_written_once(memories: MemoryStore) -> None:
    saved = memory()
    memories.put("tenant-a", saved)
    with pytest.raises(ValueError, match="taken"):
        memories.put("tenant-a", saved.model_copy(update={"text": "other"}))
    assert memories.get("tenant-a", saved.memory_id).text == "a fact"


def test_delete_removes_both_and_says_what_it_removed(memories: MemoryStore) -> None:
    saved = memory()
    memories.put("tenant-a", saved)
    assert memories.delete("tenant-a", saved.memory_id) == saved
    with pytest.raises(MemoryNotFoundError, match=saved.memory_id):
        memories.get("tenant-a", saved.memory_id)
    with pytest.raises(MemoryNotFoundError):
        memories.delete("tenant-a", saved.memory_id)


def test_another_tenant_cannot_read_or_delete(memories: MemoryStore) -> None:
    saved = memory()
    memories.put("tenant-a", saved)
    with pytest.raises(MemoryNotFoundError):
        memories.get("tenant-b", saved.memory_id)
    with pytest.raises(MemoryNotFoundError):
        memories.delete("tenant-b", saved.memory_id)
    assert memories.get_many("tenant-b", None, [saved.memory_id]) == {}


def test_get_many_reads_past_one_batch_and_only_in_the_namespace(memories: MemoryStore) -> None:
    saved = [memory(text=f"fact {i}") for i in range(130)]
    for item in saved:
        memories.put("tenant-a", item)
    scoped = memory(scope="s1")
    memories.put("tenant-a", scoped)
    found = memories.get_many("tenant-a", None,
                              [m.memory_id for m in saved] + [scoped.memory_id, "mem_nope"])
    assert set(found) == {m.memory_id for m in saved}


def test_list_newest_is_newest_first_and_per_scope(memories: MemoryStore) -> None:
    # Ids are time-ordered to the millisecond; made in one, their order is the random part's.
    saved = sorted((memory(text=f"fact {i}") for i in range(5)), key=lambda m: m.memory_id)
    for item in saved:
        memories.put("tenant-a", item)
    memories.put("tenant-a", memory(scope="s1"))
    assert [m.memory_id for m in memories.list_newest("tenant-a", None, limit=3)] == [
        m.memory_id for m in saved[::-1][:3]]
    assert len(memories.list_newest("tenant-a", "s1", limit=10)) == 1
