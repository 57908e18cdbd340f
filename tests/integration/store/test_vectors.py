"""DynamoVectorIndex on the moto table: exact cosine ranking inside one namespace, tags,
deletes, read-after-write, dimensions, pagination over a partition larger than a page."""

from __future__ import annotations

import math
import random
from typing import Any

import boto3
import pytest

from agentkit.store.vectors import (
    SHARDS,
    DynamoVectorIndex,
    VectorDimensionError,
    VectorRecord,
)
from tests.conftest import TABLE

DIMS = 8


def unit(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(DIMS)]


def mix(a: int, b: int, weight: float) -> list[float]:
    return [weight * x + (1 - weight) * y for x, y in zip(unit(a), unit(b), strict=True)]


@pytest.fixture
def index(aws: None) -> DynamoVectorIndex:
    return DynamoVectorIndex(TABLE, DIMS)


def put(index: DynamoVectorIndex, ns: str, key: str, vector: list[float],
        tags: tuple[str, ...] = (), at: str = "2026-11-30T00:00:00Z") -> None:
    index.put(ns, VectorRecord(key=key, vector=vector, created_at=at, tags=tags))


def test_query_ranks_by_cosine_and_scores_are_cosines(index: DynamoVectorIndex) -> None:
    put(index, "t1", "exact", unit(0))
    put(index, "t1", "close", mix(0, 1, 0.9))
    put(index, "t1", "far", unit(1))
    matches = index.query("t1", [2.0] + [0.0] * (DIMS - 1), k=3)  # length does not matter
    assert [m.key for m in matches] == ["exact", "close", "far"]
    assert matches[0].score == pytest.approx(1.0)
    # Stored as float16: a cosine moves by about 1e-3 at most.
    assert matches[1].score == pytest.approx(0.9 / math.hypot(0.9, 0.1), abs=1e-3)
    assert matches[2].score == pytest.approx(0.0, abs=1e-7)
    full = DynamoVectorIndex(TABLE, DIMS, precision="float32")
    put(full, "t2", "close", mix(0, 1, 0.9))
    [match] = full.query("t2", unit(0), k=1)
    assert match.score == pytest.approx(0.9 / math.hypot(0.9, 0.1), abs=1e-6)


def test_k_and_min_score_cut_the_list(index: DynamoVectorIndex) -> None:
    for i in range(DIMS):
        put(index, "t1", f"k{i}", mix(0, i, 1 - i / DIMS) if i else unit(0))
    assert [m.key for m in index.query("t1", unit(0), k=2)] == ["k0", "k1"]
    assert all(m.score is not None and m.score >= 0.9
               for m in index.query("t1", unit(0), k=8, min_score=0.9))


def test_no_vector_crosses_namespaces(index: DynamoVectorIndex) -> None:
    put(index, "tenant-a", "a1", unit(0))
    put(index, "tenant-a/user-1", "s1", unit(0))
    put(index, "tenant-b", "b1", unit(0))
    assert [m.key for m in index.query("tenant-a", unit(0), k=10)] == ["a1"]
    assert [m.key for m in index.query("tenant-a/user-1", unit(0), k=10)] == ["s1"]
    assert [m.key for m in index.query("tenant-b", unit(0), k=10)] == ["b1"]
    assert index.query("tenant-c", unit(0), k=10) == []


def test_tags_filter_keeps_vectors_carrying_every_tag(index: DynamoVectorIndex) -> None:
    put(index, "t1", "both", unit(1), tags=("billing", "eu"))
    put(index, "t1", "one", unit(0), tags=("billing",))
    put(index, "t1", "none", unit(0))
    assert {m.key for m in index.query("t1", unit(0), k=5, tags=["billing"])} == {"both", "one"}
    assert [m.key for m in index.query("t1", unit(0), k=5, tags=["billing", "eu"])] == ["both"]
    assert index.query("t1", unit(0), k=5, tags=["billing"])[0].tags == ("billing",)


def test_written_then_found_at_once_and_deleted_then_gone(index: DynamoVectorIndex) -> None:
    put(index, "t1", "m1", unit(3))
    assert [m.key for m in index.query("t1", unit(3), k=1)] == ["m1"]
    index.delete("t1", "m1")
    assert index.query("t1", unit(3), k=1) == []
    index.delete("t1", "m1")  # gone already: fine


def test_put_replaces_the_vector_under_a_key(index: DynamoVectorIndex) -> None:
    put(index, "t1", "m1", unit(0))
    put(index, "t1", "m1", unit(1))
    [match] = index.query("t1", unit(1), k=5)
    assert match.score == pytest.approx(1.0)


def test_bad_dimensions_are_refused_naming_both(index: DynamoVectorIndex) -> None:
    with pytest.raises(VectorDimensionError, match="3 dimensions; this index holds 8"):
        put(index, "t1", "m1", [1.0, 0.0, 0.0])
    with pytest.raises(VectorDimensionError, match="query vector"):
        index.query("t1", [1.0], k=1)
    with pytest.raises(VectorDimensionError, match="zero"):
        put(index, "t1", "m1", [0.0] * DIMS)


def test_a_namespace_written_by_another_model_is_reported(index: DynamoVectorIndex) -> None:
    put(index, "t1", "m1", unit(0))
    other = DynamoVectorIndex(TABLE, DIMS * 2)
    with pytest.raises(VectorDimensionError, match="re-embed"):
        other.query("t1", [1.0] * (DIMS * 2), k=1)


def test_bad_namespace_and_tags_are_refused(index: DynamoVectorIndex) -> None:
    with pytest.raises(ValueError, match="namespace"):
        put(index, "", "m1", unit(0))
    with pytest.raises(ValueError, match="tags"):
        put(index, "t1", "m1", unit(0), tags=("",))
    with pytest.raises(ValueError, match="k must"):
        index.query("t1", unit(0), k=0)


def _stored(namespace: str) -> dict[str, dict[str, Any]]:
    """The namespace's items by key, from every partition it may have."""
    client = boto3.client("dynamodb")
    found = {}
    for item in client.scan(TableName=TABLE)["Items"]:
        pk = item["pk"]["S"]
        if pk == f"VEC#{namespace}" or pk.startswith(f"VEC#{namespace}#"):
            found[item["sk"]["S"]] = item
    return found


def test_vectors_are_stored_as_float16_bytes_spread_over_the_shards(
    index: DynamoVectorIndex,
) -> None:
    keys = [f"mem_{i:03d}" for i in range(40)]
    for key in keys:
        put(index, "t1", key, unit(2))
    stored = _stored("t1")
    assert sorted(stored) == keys
    assert {len(item["v16"]["B"]) for item in stored.values()} == {2 * DIMS}
    assert not any("vec" in item for item in stored.values())
    shards = {item["pk"]["S"] for item in stored.values()}
    assert len(shards) == SHARDS and f"VEC#t1#{SHARDS - 1}" in shards
    assert len(index.query("t1", unit(2), k=50)) == 40


def test_vectors_of_the_first_layout_are_read_replaced_and_deleted(
    index: DynamoVectorIndex,
) -> None:
    first = DynamoVectorIndex(TABLE, DIMS, shards=1, precision="float32")
    for key in ("old_a", "old_b", "old_c"):
        put(first, "t1", key, unit(3))
    assert {item["pk"]["S"] for item in _stored("t1").values()} == {"VEC#t1"}
    assert len(_stored("t1")["old_a"]["vec"]["B"]) == 4 * DIMS
    # Read beside the new ones, scored alike.
    put(index, "t1", "new", mix(3, 4, 0.5))
    assert [m.key for m in index.query("t1", unit(3), k=4)][3] == "new"
    assert index.query("t1", unit(3), k=1)[0].score == pytest.approx(1.0)
    # Replaced: one copy, the new one, wherever its shard is.
    put(index, "t1", "old_b", unit(4))
    replaced = [key for key, item in _stored("t1").items() if key == "old_b"]
    assert replaced == ["old_b"] and "v16" in _stored("t1")["old_b"]
    assert index.query("t1", unit(4), k=1)[0].key == "old_b"
    # Deleted, from the first layout's partition too.
    index.delete("t1", "old_c")
    assert "old_c" not in _stored("t1")
    assert "old_c" not in [m.key for m in index.query("t1", unit(3), k=10)]
    assert [m.key for m in index.list_newest("t1", limit=10)] and len(_stored("t1")) == 3


def test_a_namespace_larger_than_a_page_is_read_whole(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    dims = 384  # 1.5 KB a vector as float32: 1,000 of them pass DynamoDB's 1 MB page
    index = DynamoVectorIndex(TABLE, dims, shards=1, precision="float32")
    rng = random.Random(7)
    target = [rng.gauss(0, 1) for _ in range(dims)]
    for i in range(1000):
        vector = target if i == 997 else [rng.gauss(0, 1) for _ in range(dims)]
        put(index, "big", f"k{i:04d}", vector, at=f"2026-11-30T00:{i // 60:02d}:{i % 60:02d}Z")
    pages: list[int] = []
    real_query = index.client.query

    def counting(**kwargs: Any) -> Any:
        response = real_query(**kwargs)
        pages.append(len(response["Items"]))
        return response

    monkeypatch.setattr(index.client, "query", counting)
    [best] = index.query("big", target, k=1)
    assert best.key == "k0997"
    assert len(pages) >= 2 and sum(pages) == 1000
    newest = index.list_newest("big", limit=3)
    assert [m.key for m in newest] == ["k0999", "k0998", "k0997"]
    assert newest[0].score is None
