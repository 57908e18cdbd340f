"""Embedding models through the real SDKs against a loopback HTTP server answering in each
API's wire format: what goes out (query/passage, batching), what comes back (checked), the
faults (endpoint down, 429, wrong dimensions, empty text), usage and cost."""

from __future__ import annotations

import socket

import pytest

from agentkit.config import ProviderConfig
from agentkit.llm.base import ModelRequestError, ProviderOutageError, RateLimitedError
from agentkit.llm.embeddings import (
    GOOGLE_BATCH,
    OPENAI_BATCH,
    EmbeddingSpec,
    GoogleEmbeddingModel,
    OpenAIEmbeddingModel,
    clear_embedding_cache,
    embedding_cost,
    get_embedding_model,
    parse_embedding_model,
)
from tests.support.loopback import LoopbackServer, Reply, Request


def openai_answer(request: Request, dims: int = 4) -> Reply:
    texts = request.body["input"]
    data = [
        {"object": "embedding", "index": i, "embedding": [float(i + 1)] + [0.5] * (dims - 1)}
        for i, _ in enumerate(texts)
    ]
    return Reply(body={"object": "list", "data": data, "model": "m",
                       "usage": {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}})


def compatible(server: LoopbackServer, model: str = "e5") -> OpenAIEmbeddingModel:
    spec = parse_embedding_model(f"{server.url}/v1#{model}")
    return OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)


# --- the parameter string


def test_parse_the_three_forms() -> None:
    assert parse_embedding_model("openai:text-embedding-3-small") == EmbeddingSpec(
        name="openai:text-embedding-3-small", provider="openai", model="text-embedding-3-small"
    )
    assert parse_embedding_model("google:gemini-embedding-001").provider == "google"
    spec = parse_embedding_model("http://127.0.0.1:8089/v1#multilingual-e5-small")
    assert (spec.provider, spec.model, spec.base_url) == (
        "compatible", "multilingual-e5-small", "http://127.0.0.1:8089/v1"
    )
    assert parse_embedding_model("https://emb.example/v1").model == "default"


@pytest.mark.parametrize("value", ["", "anthropic:claude", "openai:", "text-embedding-3-small",
                                   "http:///v1"])
def test_parse_refuses_anything_else_naming_the_parameter(value: str) -> None:
    with pytest.raises(ModelRequestError, match="EmbeddingModel"):
        parse_embedding_model(value)


# --- OpenAI-compatible endpoints


def test_compatible_endpoint_gets_input_type_and_vectors_come_back_in_order() -> None:
    with LoopbackServer(openai_answer) as server:
        result = compatible(server).embed(["a", "b", "c"], "query")
    [request] = server.requests
    assert request.path == "/v1/embeddings"
    assert request.body["input"] == ["a", "b", "c"]
    assert request.body["input_type"] == "query"
    assert request.body["model"] == "e5"
    assert [v[0] for v in result.vectors] == [1.0, 2.0, 3.0]
    assert result.usage.input_tokens == 9
    assert result.usage.requests == 1
    assert not result.usage.estimated
    assert result.usage.cost_usd == 0.0  # a self-hosted model has no price


def test_passage_is_the_default_kind() -> None:
    with LoopbackServer(openai_answer) as server:
        compatible(server).embed(["a"])
    assert server.requests[0].body["input_type"] == "passage"


def test_openai_itself_gets_no_input_type_and_costs_its_price() -> None:
    with LoopbackServer(openai_answer) as server:
        spec = parse_embedding_model("openai:text-embedding-3-small")
        model = OpenAIEmbeddingModel(spec, "sk-test", base_url=f"{server.url}/v1")
        result = model.embed(["a", "b"], "query")
    assert "input_type" not in server.requests[0].body
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
    assert result.usage.cost_usd == pytest.approx(6 * 0.02 / 1_000_000)


def test_many_texts_go_in_batches() -> None:
    with LoopbackServer(openai_answer) as server:
        result = compatible(server).embed([f"t{i}" for i in range(OPENAI_BATCH + 3)])
    assert [len(r.body["input"]) for r in server.requests] == [OPENAI_BATCH, 3]
    assert len(result.vectors) == OPENAI_BATCH + 3
    assert result.usage.requests == 2
    assert result.usage.input_tokens == 3 * (OPENAI_BATCH + 3)


def test_float_vectors_are_asked_for() -> None:
    # The SDK asks for base64 unless told: the body must say "float" (servers that only
    # know floats, and the check of each value here).
    with LoopbackServer(openai_answer) as server:
        compatible(server).embed(["a"])
    assert server.requests[0].body["encoding_format"] == "float"


@pytest.mark.parametrize("texts", [[""], ["ok", "   "]])
def test_an_empty_text_is_refused_before_any_request(texts: list[str]) -> None:
    with LoopbackServer(openai_answer) as server:
        model = compatible(server)
        with pytest.raises(ModelRequestError, match=r"texts\[\d\]: the text to embed is empty"):
            model.embed(texts)
        assert server.requests == []


def test_a_text_too_long_is_refused() -> None:
    with LoopbackServer(openai_answer) as server, pytest.raises(ModelRequestError,
                                                                match="characters"):
        compatible(server).embed(["x" * 40_000])


def test_one_string_instead_of_a_list_is_a_type_error() -> None:
    with LoopbackServer(openai_answer) as server, pytest.raises(TypeError):
        compatible(server).embed("abc")


def test_a_bad_kind_is_refused() -> None:
    with LoopbackServer(openai_answer) as server, pytest.raises(ModelRequestError,
                                                                match="kind"):
        compatible(server).embed(["a"], "document")  # type: ignore[arg-type]


def test_vectors_of_different_dimensions_are_refused() -> None:
    def answer(request: Request) -> Reply:
        return Reply(body={"object": "list", "model": "m", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]},
            {"object": "embedding", "index": 1, "embedding": [0.1, 0.2]},
        ], "usage": {"prompt_tokens": 2, "total_tokens": 2}})

    with LoopbackServer(answer) as server, pytest.raises(ModelRequestError,
                                                         match="3 and 2 dimensions"):
        compatible(server).embed(["a", "b"])


def test_a_wrong_count_of_vectors_is_refused() -> None:
    def answer(request: Request) -> Reply:
        reply = openai_answer(request)
        reply.body["data"].pop()
        return reply

    with LoopbackServer(answer) as server, pytest.raises(ModelRequestError,
                                                         match="1 embeddings for 2 texts"):
        compatible(server).embed(["a", "b"])


def test_a_zero_vector_is_refused() -> None:
    def answer(request: Request) -> Reply:
        return Reply(body={"object": "list", "model": "m", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.0, 0.0]}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    with LoopbackServer(answer) as server, pytest.raises(ModelRequestError, match="zero"):
        compatible(server).embed(["a"])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_endpoint_down_is_an_outage_naming_the_endpoint() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    spec = parse_embedding_model(f"{url}#e5")
    model = OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)
    with pytest.raises(ProviderOutageError, match="connection error") as raised:
        model.embed(["a"])
    assert url in str(raised.value)


def test_a_429_is_rate_limited_with_its_wait() -> None:
    reply = Reply(status=429, body={"error": {"message": "slow down", "type": "rate"}},
                  headers={"retry-after": "7"})
    with LoopbackServer(lambda _: reply) as server, pytest.raises(RateLimitedError) as raised:
        compatible(server).embed(["a"])
    assert raised.value.retry_after_s == 7


def test_a_400_is_fatal_with_the_server_message() -> None:
    reply = Reply(status=400, body={"error": {"message": "'input' must not be empty",
                                              "type": "invalid_request_error"}})
    with LoopbackServer(lambda _: reply) as server, pytest.raises(ModelRequestError,
                                                                  match="must not be empty"):
        compatible(server).embed(["a"])


def test_a_key_in_an_error_is_scrubbed() -> None:
    key = "sk-proj-" + "k" * 40
    reply = Reply(status=401, body={"error": {"message": f"bad key {key}", "type": "auth"}})
    with LoopbackServer(lambda _: reply) as server:
        spec = parse_embedding_model("openai:text-embedding-3-small")
        model = OpenAIEmbeddingModel(spec, key, base_url=f"{server.url}/v1")
        with pytest.raises(ModelRequestError) as raised:
            model.embed(["a"])
    assert key not in str(raised.value)


def test_no_usage_in_the_answer_is_estimated() -> None:
    def answer(request: Request) -> Reply:
        reply = openai_answer(request)
        del reply.body["usage"]
        return reply

    with LoopbackServer(answer) as server:
        result = compatible(server).embed(["abcdefgh"])
    assert result.usage.estimated
    assert result.usage.input_tokens == 2


# --- Google


def google_answer(request: Request) -> Reply:
    body = request.body
    return Reply(body={"embeddings": [{"values": [0.25, float(i + 1)]}
                                      for i, _ in enumerate(body["requests"])]})


def google_model(server: LoopbackServer) -> GoogleEmbeddingModel:
    spec = parse_embedding_model("google:gemini-embedding-001")
    return GoogleEmbeddingModel(spec, "AIza-test-key-0000000", base_url=f"{server.url}/")


def test_google_sends_the_retrieval_task_types_in_batches() -> None:
    with LoopbackServer(google_answer) as server:
        model = google_model(server)
        query = model.embed(["where is it?"], "query")
        passages = model.embed([f"p{i}" for i in range(GOOGLE_BATCH + 1)], "passage")
    first = server.requests[0]
    assert first.path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert {r["taskType"] for r in first.body["requests"]} == {"RETRIEVAL_QUERY"}
    assert {r["taskType"] for r in server.requests[1].body["requests"]} == {"RETRIEVAL_DOCUMENT"}
    assert [len(r.body["requests"]) for r in server.requests[1:]] == [GOOGLE_BATCH, 1]
    assert query.vectors == [[0.25, 1.0]]
    assert len(passages.vectors) == GOOGLE_BATCH + 1
    # Gemini's API gives no token count: estimated, and priced.
    assert query.usage.estimated
    assert query.usage.input_tokens == 3
    assert query.usage.cost_usd == pytest.approx(3 * 0.15 / 1_000_000)


def test_google_errors_are_classified() -> None:
    reply = Reply(status=429, body={"error": {"code": 429, "message": "quota",
                                              "status": "RESOURCE_EXHAUSTED"}})
    with LoopbackServer(lambda _: reply) as server, pytest.raises(RateLimitedError):
        google_model(server).embed(["a"])


# --- made from the parameter


def test_get_embedding_model_reuses_a_made_model(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_embedding_cache()
    monkeypatch.delenv("EMBEDDING_API_KEY", raising=False)
    try:
        first = get_embedding_model("http://127.0.0.1:9/v1#e5", providers=ProviderConfig())
        assert get_embedding_model("http://127.0.0.1:9/v1#e5") is first
        assert isinstance(first, OpenAIEmbeddingModel)
    finally:
        clear_embedding_cache()


def test_openai_without_a_key_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_embedding_cache()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelRequestError, match="OPENAI_API_KEY"):
        get_embedding_model("openai:text-embedding-3-small", providers=ProviderConfig())


def test_embedding_cost_of_an_unknown_model_is_zero() -> None:
    assert embedding_cost("http://x/v1#e5", 1_000) == 0.0
    assert embedding_cost("openai:text-embedding-3-large", 1_000_000) == pytest.approx(0.13)
