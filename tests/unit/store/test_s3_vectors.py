"""S3VectorIndex at the wire level: botocore's Stubber checks every request against the
s3vectors service model (parameter names, types, required members) and answers with the
documented reply shapes. LocalStack and moto do not answer S3 Vectors calls, so this is
where its requests are proven."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import ANY, Stubber

from agentkit.store.vectors import (
    S3_MAX_TOP_K,
    S3VectorIndex,
    VectorDimensionError,
    VectorRecord,
)

INDEX_ARN = "arn:aws:s3vectors:us-east-1:123456789012:bucket/opspawn-memories/index/memories"


@pytest.fixture
def stubbed() -> Iterator[tuple[S3VectorIndex, Stubber]]:
    client = boto3.client("s3vectors", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield S3VectorIndex(INDEX_ARN, 3, client=client), stubber
        stubber.assert_no_pending_responses()


def test_put_sends_a_unit_vector_under_a_namespaced_key(
    stubbed: tuple[S3VectorIndex, Stubber],
) -> None:
    index, stubber = stubbed
    stubber.add_response("put_vectors", {}, {
        "indexArn": INDEX_ARN,
        "vectors": [{
            "key": "tenant-a/user-1|mem_1",
            "data": {"float32": [0.6, 0.0, 0.8]},
            "metadata": {"namespace": "tenant-a/user-1", "tags": ["billing"],
                         "created_at": "2026-11-30T00:00:00Z"},
        }],
    })
    index.put("tenant-a/user-1", VectorRecord(key="mem_1", vector=[3.0, 0.0, 4.0],
                                              created_at="2026-11-30T00:00:00Z",
                                              tags=("billing",)))


def test_query_filters_by_namespace_and_every_tag_and_scores_from_distance(
    stubbed: tuple[S3VectorIndex, Stubber],
) -> None:
    index, stubber = stubbed
    stubber.add_response("query_vectors", {
        "distanceMetric": "cosine",
        "vectors": [
            {"key": "tenant-a|m2", "distance": 0.25,
             "metadata": {"namespace": "tenant-a", "tags": ["billing", "eu"],
                          "created_at": "2026-11-30T00:00:02Z"}},
            {"key": "tenant-a|m1", "distance": 0.05,
             "metadata": {"namespace": "tenant-a", "tags": ["billing", "eu"],
                          "created_at": "2026-11-30T00:00:01Z"}},
        ],
    }, {
        "indexArn": INDEX_ARN,
        "topK": 5,
        "queryVector": {"float32": [1.0, 0.0, 0.0]},
        "filter": {"$and": [{"namespace": {"$eq": "tenant-a"}},
                            {"tags": {"$eq": "billing"}}, {"tags": {"$eq": "eu"}}]},
        "returnMetadata": True,
        "returnDistance": True,
    })
    matches = index.query("tenant-a", [2.0, 0.0, 0.0], k=5, tags=["billing", "eu"])
    assert [m.key for m in matches] == ["m1", "m2"]
    assert [m.score for m in matches] == [pytest.approx(0.95), pytest.approx(0.75)]
    assert matches[0].tags == ("billing", "eu")


def test_query_without_tags_filters_by_namespace_alone_and_caps_k(
    stubbed: tuple[S3VectorIndex, Stubber],
) -> None:
    index, stubber = stubbed
    stubber.add_response("query_vectors", {"distanceMetric": "cosine", "vectors": [
        {"key": "tenant-a|m1", "distance": 0.5,
         "metadata": {"namespace": "tenant-a", "created_at": "x"}},
    ]}, {
        "indexArn": INDEX_ARN, "topK": S3_MAX_TOP_K,
        "queryVector": ANY, "filter": {"namespace": {"$eq": "tenant-a"}},
        "returnMetadata": True, "returnDistance": True,
    })
    matches = index.query("tenant-a", [0.0, 1.0, 0.0], k=500, min_score=0.6)
    assert matches == []  # 0.5 is below min_score


def test_a_match_of_another_namespace_never_comes_back(
    stubbed: tuple[S3VectorIndex, Stubber],
) -> None:
    # Were the filter ever ignored, the key and the metadata still say whose it is.
    index, stubber = stubbed
    stubber.add_response("query_vectors", {"distanceMetric": "cosine", "vectors": [
        {"key": "tenant-b|m9", "distance": 0.0,
         "metadata": {"namespace": "tenant-b", "created_at": "x"}},
        {"key": "tenant-a|m1", "distance": 0.1,
         "metadata": {"namespace": "tenant-a", "created_at": "x"}},
    ]}, {
        "indexArn": INDEX_ARN, "topK": 3, "queryVector": ANY,
        "filter": ANY, "returnMetadata": True, "returnDistance": True,
    })
    assert [m.key for m in index.query("tenant-a", [1.0, 0.0, 0.0], k=3)] == ["m1"]


def test_delete_names_the_namespaced_key(stubbed: tuple[S3VectorIndex, Stubber]) -> None:
    index, stubber = stubbed
    stubber.add_response("delete_vectors", {}, {
        "indexArn": INDEX_ARN, "keys": ["tenant-a|mem_1"],
    })
    index.delete("tenant-a", "mem_1")


def test_list_newest_walks_the_pages_and_keeps_to_the_namespace(
    stubbed: tuple[S3VectorIndex, Stubber],
) -> None:
    index, stubber = stubbed
    expected = {"indexArn": INDEX_ARN, "returnMetadata": True,
                "maxResults": 1000}
    stubber.add_response("list_vectors", {"nextToken": "page2", "vectors": [
        {"key": "tenant-a|m1", "metadata": {"namespace": "tenant-a", "created_at": "1"}},
        {"key": "tenant-b|m2", "metadata": {"namespace": "tenant-b", "created_at": "9"}},
    ]}, expected)
    stubber.add_response("list_vectors", {"vectors": [
        {"key": "tenant-a|m3", "metadata": {"namespace": "tenant-a", "created_at": "3"}},
    ]}, {**expected, "nextToken": "page2"})
    assert [m.key for m in index.list_newest("tenant-a", limit=10)] == ["m3", "m1"]


def test_service_errors_surface(stubbed: tuple[S3VectorIndex, Stubber]) -> None:
    index, stubber = stubbed
    stubber.add_client_error("query_vectors", service_error_code="NotFoundException",
                             service_message="index not found", http_status_code=404)
    with pytest.raises(index.client.exceptions.NotFoundException):
        index.query("tenant-a", [1.0, 0.0, 0.0], k=1)


def test_bad_dimensions_never_reach_the_service(stubbed: tuple[S3VectorIndex, Stubber]) -> None:
    index, _ = stubbed  # no response queued: any call would fail the Stubber
    with pytest.raises(VectorDimensionError):
        index.put("tenant-a", VectorRecord(key="m", vector=[1.0, 2.0], created_at="x"))
    with pytest.raises(ValueError, match="namespace"):
        index.delete("tenant|a", "m")
