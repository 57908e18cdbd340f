"""Vector indexes: one interface (`VectorIndex`), two backends.

A vector lives in a namespace (a tenant, or a tenant and a scope: `tenant` / `tenant/scope`)
under a key, with tags and a creation time. A query ranks the vectors of ONE namespace by
cosine similarity to the query vector, optionally only those carrying every given tag;
nothing else in the index can come back. Vectors are stored unit-length, so cosine is a dot
product.

* `DynamoVectorIndex` (the default): exact search. Each namespace is `SHARDS` partitions of
  the tasks table (a key's shard: CRC-32 of the key); a vector is one item with its
  components as little-endian float16 bytes (768 bytes for 384 dimensions, a sixth of a
  list of numbers):

    VEC#<namespace>[#<shard>] / <key>    v16 (B), tags (L), created_at

  A query reads the namespace's partitions side by side (strongly consistent, 1 MB a page)
  and scores every vector: what was just written is found, and the ranking is exact over
  the stored vectors (float16 moves a cosine by about 1e-3). It costs a read of the whole
  namespace, so the bytes read are what a search costs (in time and in read units): on
  DynamoDB Local, 10,000 vectors of 384 dimensions took 8.1 s to read as float32 from one
  partition, 4.2 s as float16, 2.5 s as float32 from 8 partitions in parallel
  (bench/memory.py has the figures with both). Past some ten thousand vectors a namespace
  belongs in S3 Vectors. Items of the first layout (shard 0 is the partition `VEC#<ns>`
  every vector went to; float32 in `vec`) are read, replaced and deleted as well.
* `S3VectorIndex`: Amazon S3 Vectors (one vector bucket index, cosine): approximate search
  that scales to millions, filtered by metadata (`namespace`, `tags`). Its keys are
  `<namespace>|<key>`, so no call can touch another namespace's vector. Neither LocalStack
  nor moto answers S3 Vectors calls: its tests check the requests and replies at the wire
  level against botocore's service model (a Stubber).
"""

from __future__ import annotations

import heapq
import math
import operator
import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agentkit import aws
from agentkit.store.codec import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3vectors import S3VectorsClient

#: Namespace and tag text: what a key, a metadata filter and a partition key all take.
MAX_NAMESPACE_CHARS = 200
MAX_TAGS = 10
MAX_TAG_CHARS = 64
#: S3 Vectors answers at most this many matches a query.
S3_MAX_TOP_K = 100


class VectorDimensionError(ValueError):
    """A vector whose dimensions are not the index's (a changed embedding model, a bad
    answer)."""


@dataclass(frozen=True)
class VectorRecord:
    key: str
    vector: Sequence[float]
    created_at: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class VectorMatch:
    key: str
    #: cosine similarity to the query (1.0 identical); None in a listing
    score: float | None
    created_at: str
    tags: tuple[str, ...] = field(default=())


def normalized(vector: Sequence[float]) -> list[float]:
    """`vector` at unit length (cosine similarity is then a dot product)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not norm or not math.isfinite(norm):
        raise VectorDimensionError("a vector of length zero (or not finite) has no direction")
    return [x / norm for x in vector]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    sumprod = getattr(math, "sumprod", None)  # Python 3.12+: about 3x faster
    if sumprod is not None:
        return float(sumprod(a, b))
    return math.fsum(map(operator.mul, a, b))


def check_namespace(namespace: str) -> str:
    if not namespace or len(namespace) > MAX_NAMESPACE_CHARS or "|" in namespace:
        raise ValueError(f"namespace {namespace!r}: 1 to {MAX_NAMESPACE_CHARS} characters, no '|'")
    return namespace


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(tags))  # in order, once each
    if len(values) > MAX_TAGS:
        raise ValueError(f"tags: at most {MAX_TAGS}")
    for tag in values:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG_CHARS:
            raise ValueError(f"tags: {tag!r} is not a tag of 1 to {MAX_TAG_CHARS} characters")
    return values


class VectorIndex(ABC):
    """Vectors of `dimensions` components, by namespace (see the module docstring)."""

    def __init__(self, dimensions: int) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be at least 1")
        self.dimensions = dimensions

    def _unit(self, vector: Sequence[float], what: str) -> list[float]:
        if len(vector) != self.dimensions:
            raise VectorDimensionError(
                f"{what} has {len(vector)} dimensions; this index holds {self.dimensions} "
                "(was the embedding model changed?)"
            )
        return normalized(vector)

    @abstractmethod
    def put(self, namespace: str, record: VectorRecord) -> None:
        """Store (or replace) the vector under `record.key`; visible to the next query."""

    @abstractmethod
    def delete(self, namespace: str, key: str) -> None:
        """Remove the vector (gone already: not an error); no later query returns it."""

    @abstractmethod
    def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        k: int,
        tags: Sequence[str] = (),
        min_score: float | None = None,
    ) -> list[VectorMatch]:
        """The `k` vectors of `namespace` most similar to `vector` (carrying every one of
        `tags`; scoring at least `min_score`), best first."""

    @abstractmethod
    def list_newest(self, namespace: str, *, limit: int) -> list[VectorMatch]:
        """The namespace's vectors, newest first (no scores)."""


# --- DynamoDB: exact search over one partition per namespace


#: Partitions per namespace, read side by side by a query.
SHARDS = 8
Precision = Literal["float16", "float32"]


def vectors_pk(namespace: str, shard: int = 0) -> str:
    """The partition of shard `shard` of a namespace (shard 0: the first layout's one)."""
    return f"VEC#{namespace}" if shard == 0 else f"VEC#{namespace}#{shard}"


def shard_of(key: str, shards: int = SHARDS) -> int:
    return zlib.crc32(key.encode()) % shards


class DynamoVectorIndex(VectorIndex):
    """`shards` and `precision` are how vectors are written (1 and "float32": the first
    layout, kept for bench/memory.py's comparison); a query reads either."""

    def __init__(
        self, table_name: str, dimensions: int, client: DynamoDBClient | None = None,
        *, shards: int = SHARDS, precision: Precision = "float16",
    ) -> None:
        super().__init__(dimensions)
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.table_name = table_name
        self.client: DynamoDBClient = client or aws.client("dynamodb")
        self.shards = shards
        self.precision: Precision = precision
        self._packing = struct.Struct(f"<{dimensions}f")
        self._half = struct.Struct(f"<{dimensions}e")

    def pack(self, unit: Sequence[float]) -> dict[str, Any]:
        """The item attribute holding a unit vector, at the index's precision."""
        if self.precision == "float16":
            return {"v16": {"B": self._half.pack(*unit)}}
        return {"vec": {"B": self._packing.pack(*unit)}}

    def put(self, namespace: str, record: VectorRecord) -> None:
        unit = self._unit(record.vector, f"the vector of {record.key!r}")
        shard = shard_of(record.key, self.shards)
        item = to_item({
            "pk": vectors_pk(check_namespace(namespace), shard),
            "sk": record.key,
            "created_at": record.created_at,
            "tags": list(check_tags(record.tags)),
        })
        item.update(self.pack(unit))
        self.client.put_item(TableName=self.table_name, Item=item)
        if shard != 0:  # replacing a vector of the first layout: no second copy of it
            self._delete(namespace, record.key, 0)

    def delete(self, namespace: str, key: str) -> None:
        check_namespace(namespace)
        for shard in sorted({shard_of(key, self.shards), 0}):
            self._delete(namespace, key, shard)

    def _delete(self, namespace: str, key: str, shard: int) -> None:
        self.client.delete_item(
            TableName=self.table_name,
            Key=to_item({"pk": vectors_pk(namespace, shard), "sk": key}),
        )

    def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        k: int,
        tags: Sequence[str] = (),
        min_score: float | None = None,
    ) -> list[VectorMatch]:
        if k < 1:
            raise ValueError("k must be at least 1")
        query = self._unit(vector, "the query vector")
        wanted = set(check_tags(tags))
        best: list[tuple[float, str, str, tuple[str, ...]]] = []
        for item in self._items(namespace, "sk, vec, v16, tags, created_at"):
            item_tags = tuple(item.get("tags", ()))
            if wanted and not wanted <= set(item_tags):
                continue
            half = "v16" in item
            raw, packing = (item["v16"], self._half) if half else (item["vec"], self._packing)
            if len(raw) != packing.size:
                raise VectorDimensionError(
                    f"namespace {namespace!r} holds a vector of "
                    f"{len(raw) // (2 if half else 4)} dimensions; this index holds "
                    f"{self.dimensions}: re-embed its memories"
                )
            score = _dot(query, packing.unpack(raw))
            if min_score is not None and score < min_score:
                continue
            entry = (score, item["sk"], item["created_at"], item_tags)
            if len(best) < k:
                heapq.heappush(best, entry)
            elif entry > best[0]:
                heapq.heapreplace(best, entry)
        return [
            VectorMatch(key=key, score=min(1.0, score), created_at=created, tags=item_tags)
            for score, key, created, item_tags in sorted(best, reverse=True)
        ]

    def list_newest(self, namespace: str, *, limit: int) -> list[VectorMatch]:
        found = [
            VectorMatch(key=item["sk"], score=None, created_at=item["created_at"],
                        tags=tuple(item.get("tags", ())))
            for item in self._items(namespace, "sk, tags, created_at")
        ]
        return sorted(found, key=lambda m: (m.created_at, m.key), reverse=True)[:limit]

    def _items(self, namespace: str, projection: str) -> Iterable[dict[str, Any]]:
        """Every item of the namespace's partitions, read side by side, strongly consistent
        (a vector written by the previous request is read)."""
        check_namespace(namespace)
        # Every shard a vector may be in: those of this layout, and the first layout's one.
        if self.shards == 1:
            yield from self._partition(vectors_pk(namespace), projection)
            return
        with ThreadPoolExecutor(self.shards, thread_name_prefix="vec") as pool:
            parts = pool.map(lambda shard: list(self._partition(
                vectors_pk(namespace, shard), projection)), range(self.shards))
            for part in parts:
                yield from part

    def _partition(self, pk: str, projection: str) -> Iterable[dict[str, Any]]:
        """One partition's items, page by page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": pk}),
            "ProjectionExpression": projection,
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            for raw in response.get("Items", []):
                vectors = {name: raw.pop(name, None) for name in ("vec", "v16")}
                item = from_item(raw)
                for name, value in vectors.items():
                    if value is not None:
                        item[name] = value["B"]
                yield item
            if not response.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


# --- Amazon S3 Vectors


class S3VectorIndex(VectorIndex):
    """One S3 Vectors index (cosine). Metadata: `namespace`, `tags`, `created_at`, all
    filterable (a few hundred bytes of the 2 KB filterable metadata a vector may carry)."""

    def __init__(
        self,
        index_arn: str,
        dimensions: int,
        client: S3VectorsClient | None = None,
    ) -> None:
        super().__init__(dimensions)
        #: arn:aws:s3vectors:<region>:<account>:bucket/<bucket>/index/<index> (the template's
        #: MemoryVectorIndex): names the bucket and the index in one value
        self.index_arn = index_arn
        self.client: S3VectorsClient = client or aws.client("s3vectors")

    @staticmethod
    def _key(namespace: str, key: str) -> str:
        return f"{check_namespace(namespace)}|{key}"

    def put(self, namespace: str, record: VectorRecord) -> None:
        unit = self._unit(record.vector, f"the vector of {record.key!r}")
        self.client.put_vectors(
            indexArn=self.index_arn,
            vectors=[{
                "key": self._key(namespace, record.key),
                "data": {"float32": unit},
                "metadata": {
                    "namespace": namespace,
                    "tags": list(check_tags(record.tags)),
                    "created_at": record.created_at,
                },
            }],
        )

    def delete(self, namespace: str, key: str) -> None:
        self.client.delete_vectors(
            indexArn=self.index_arn, keys=[self._key(namespace, key)],
        )

    def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        k: int,
        tags: Sequence[str] = (),
        min_score: float | None = None,
    ) -> list[VectorMatch]:
        if k < 1:
            raise ValueError("k must be at least 1")
        query = self._unit(vector, "the query vector")
        # On a list, $eq matches when any element equals the value: one per tag is "all".
        conditions: list[dict[str, Any]] = [{"namespace": {"$eq": check_namespace(namespace)}}]
        conditions += [{"tags": {"$eq": tag}} for tag in check_tags(tags)]
        response = self.client.query_vectors(
            indexArn=self.index_arn,
            topK=min(k, S3_MAX_TOP_K),
            queryVector={"float32": query},
            filter=conditions[0] if len(conditions) == 1 else {"$and": conditions},
            returnMetadata=True,
            returnDistance=True,
        )
        prefix = f"{namespace}|"
        matches: list[VectorMatch] = []
        for found in response.get("vectors", []):
            metadata = dict(found.get("metadata") or {})
            # The filter already keeps to the namespace; checked again, as isolation is
            # worth one comparison.
            if not found["key"].startswith(prefix) or metadata.get("namespace") != namespace:
                continue
            # Cosine distance is 1 - cosine similarity.
            score = 1.0 - float(found.get("distance", 1.0))
            if min_score is not None and score < min_score:
                continue
            matches.append(VectorMatch(
                key=found["key"][len(prefix):], score=score,
                created_at=str(metadata.get("created_at", "")),
                tags=tuple(metadata.get("tags") or ()),
            ))
        return sorted(matches, key=lambda m: m.score or 0.0, reverse=True)

    def list_newest(self, namespace: str, *, limit: int) -> list[VectorMatch]:
        """ListVectors takes no filter: this walks the whole index (for maintenance, not
        for a request; the memories' own listing comes from DynamoDB)."""
        prefix = f"{check_namespace(namespace)}|"
        found: list[VectorMatch] = []
        kwargs: dict[str, Any] = {"indexArn": self.index_arn, "returnMetadata": True,
                                  "maxResults": 1000}
        while True:
            response = self.client.list_vectors(**kwargs)
            for vector in response.get("vectors", []):
                if vector["key"].startswith(prefix):
                    metadata = dict(vector.get("metadata") or {})
                    found.append(VectorMatch(
                        key=vector["key"][len(prefix):], score=None,
                        created_at=str(metadata.get("created_at", "")),
                        tags=tuple(metadata.get("tags") or ()),
                    ))
            token = response.get("nextToken")
            if not token:
                break
            kwargs["nextToken"] = token
        return sorted(found, key=lambda m: (m.created_at, m.key), reverse=True)[:limit]
