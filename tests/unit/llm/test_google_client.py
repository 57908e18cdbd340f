"""GoogleClient through the real `google-genai` SDK against a loopback Gemini API.

Nothing leaves the machine. `google-genai` 3.x talks HTTP through its own `httpx2`
client (not `httpx`, so `respx` would not see it); rather than replace that client,
the tests run a tiny `http.server` on 127.0.0.1 (random port) that answers with
bodies in the Gemini API's actual wire format and records every request. The SDK
is exercised exactly as in production: its own client, timeout and headers. A few
tests at the end inject an `httpx2.Client` with a mock transport, and switch the SDK
to its `httpx` backend, to cover those paths too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit.config import ConfigError, ProviderConfig
from agentkit.llm.base import (
    LLMRequest,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    RetryableModelError,
)
from agentkit.llm.google_client import API_VERSION, DEFAULT_BASE_URL, GoogleClient
from agentkit.llm.providers import clear_client_cache, get_client
from agentkit.models.domain import Message, ToolCall, ToolSpec
from tests.support.loopback import LoopbackServer, Reply, Request
from tests.support.providers import (
    CALCULATOR,
    gemini_problems,
    published_tools,
    subschemas,
)

API_KEY = "AIzaSyUnitTEST" + "x" * 21 + "Qw7Z"  # shaped like a real key (39 characters)
MODEL = "gemini-2.5-flash"
GENERATE_PATH = f"/v1beta/models/{MODEL}:generateContent"
REPO_ROOT = Path(__file__).resolve().parents[3]
SKIP_SIGNATURE = "skip_thought_signature_validator"

# What pydantic's model_json_schema() produces: title, additionalProperties, $defs/$ref,
# anyOf, default: keys the OpenAPI-subset `parameters` field would reject.
CURRENT_TIME = ToolSpec(
    name="current_time",
    description="The current time in a time zone.",
    parameters={
        "$defs": {
            "Format": {"enum": ["iso", "human"], "title": "Format", "type": "string"},
        },
        "additionalProperties": False,
        "properties": {
            "timezone": {"default": "UTC", "title": "Timezone", "type": "string"},
            "format": {"anyOf": [{"$ref": "#/$defs/Format"}, {"type": "null"}], "default": None},
        },
        "title": "CurrentTimeArgs",
        "type": "object",
    },
)


# --- the loopback Gemini API


class FakeGemini:
    """Answers queued replies in order (JSON, as the Gemini API sends it) on the module's
    loopback server, whose requests are this test's."""

    def __init__(self, server: LoopbackServer) -> None:
        self.replies: deque[Reply] = deque()
        self._server = server
        self.base_url = server.url
        server.requests.clear()
        server.respond = self._answer

    def reply(self, status: int = 200, body: Any = None, *, raw: bytes | None = None,
              **kwargs: Any) -> None:
        """`raw`: a body that is not JSON (sent as it is)."""
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json; charset=UTF-8", **kwargs.pop("headers", {})}
        self.replies.append(Reply(status, data, headers=headers, **kwargs))

    @property
    def requests(self) -> list[Request]:
        return self._server.requests

    @property
    def last(self) -> Request:
        return self.requests[-1]

    def _answer(self, _: Request) -> Reply:
        if self.replies:
            return self.replies.popleft()
        return Reply(500, api_error(500, "INTERNAL", "the test queued no reply"))


# Settings the SDK (or httpx2) would read on its own: none may redirect a test.
FOREIGN_ENV = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_BASE_URL",
    "GOOGLE_TIMEOUT_S",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GENAI_HTTP_CLIENT",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def _server():
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def gemini(_server):
    """A fresh script and request log per test, on the module's loopback server."""
    return FakeGemini(_server)


@pytest.fixture(scope="module")
def client(_server):
    # One client for the module, as in a warm Lambda (building one loads CA certificates).
    # Module fixtures run before `_clean_env`, so this one cleans up for itself.
    with pytest.MonkeyPatch.context() as patch:
        for name in FOREIGN_ENV:
            patch.delenv(name, raising=False)
        yield GoogleClient(API_KEY, base_url=_server.url)


# --- wire-format builders


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def function_call(name: str, args: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args}
    if call_id is not None:
        call["id"] = call_id
    return {"functionCall": call}


def generate_response(
    *parts: dict[str, Any],
    finish_reason: str | None = "STOP",
    prompt_tokens: int = 25,
    output_tokens: int = 7,
    cached_tokens: int | None = None,
    thoughts_tokens: int | None = None,
) -> dict[str, Any]:
    """A `GenerateContentResponse` with the field set the Gemini API sends."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + (thoughts_tokens or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if cached_tokens is not None:
        usage["cachedContentTokenCount"] = cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached_tokens}]
    if thoughts_tokens is not None:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mXq2aO7pBsGu1dkPpYzJ8Qc",
    }


def api_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def ask(text_: str = "What is 2 + 2?", **kwargs: Any) -> LLMRequest:
    return LLMRequest(model=MODEL, messages=[Message(role="user", content=text_)], **kwargs)


# --- answers


def test_plain_answer(gemini, client):
    gemini.reply(body=generate_response(text("2 + 2 = 4.")))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="You are terse."),
            Message(role="user", content="What is 2 + 2?"),
        ],
    )

    response = client.complete(request)

    assert response.message.role == "assistant"
    assert response.message.content == "2 + 2 = 4."
    assert response.message.tool_calls == []
    assert response.finish_reason == "stop"
    assert len(gemini.requests) == 1
    sent = gemini.last
    assert (sent.method, sent.path) == ("POST", GENERATE_PATH)
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert API_KEY not in sent.path  # the key travels in a header, never in the URL
    assert sent.headers["x-server-timeout"] == "60"
    # No tools, temperature or token limit given: none sent.
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "What is 2 + 2?"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are terse."}]},
        "generationConfig": {},
    }


def test_one_tool_call(gemini, client):
    gemini.reply(
        body=generate_response(
            function_call("calculator", {"expression": "17 * 23"}, call_id="f7a1c2d4"),
        )
    )

    response = client.complete(ask("17 * 23?", tools=[CALCULATOR]))

    # Gemini ends a function-calling reply with STOP: reported as tool_calls.
    assert response.finish_reason == "tool_calls"
    assert response.message.content is None
    assert response.message.tool_calls == [
        ToolCall(id="f7a1c2d4", name="calculator", arguments={"expression": "17 * 23"})
    ]


def test_several_tool_calls_in_one_turn_keep_their_order(gemini, client):
    gemini.reply(
        body=generate_response(
            text("Let me check both."),
            function_call("current_time", {"timezone": "Europe/Paris"}),
            function_call("calculator", {"expression": "2 ** 10"}),
            function_call("current_time", {}),
        )
    )

    response = client.complete(ask(tools=[CALCULATOR, CURRENT_TIME]))

    assert response.message.content == "Let me check both."
    # No ids from the model (Gemini 2.x): call_<n>, counted from 1 within the reply.
    assert [(c.id, c.name, c.arguments) for c in response.message.tool_calls] == [
        ("call_1", "current_time", {"timezone": "Europe/Paris"}),
        ("call_2", "calculator", {"expression": "2 ** 10"}),
        ("call_3", "current_time", {}),
    ]
    assert response.finish_reason == "tool_calls"


def test_multi_turn_conversation_sends_the_exact_wire_body(gemini, client):
    gemini.reply(body=generate_response(text("It is 14:03 in Paris; 2**10 is 1024.")))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="Use tools."),
            Message(role="system", content="Answer in English."),
            Message(role="user", content="Time in Paris, and 2**10?"),
            Message(
                role="assistant",
                content="Checking.",
                tool_calls=[
                    ToolCall(
                        id="call_1", name="current_time", arguments={"timezone": "Europe/Paris"}
                    ),
                    ToolCall(id="call_2", name="calculator", arguments={"expression": "2 ** 10"}),
                ],
            ),
            Message(role="tool", tool_call_id="call_1", name="current_time", content="14:03"),
            Message(
                role="tool",
                tool_call_id="call_2",
                name="calculator",
                content="error: invalid arguments",
                is_error=True,
            ),
            Message(
                role="assistant",
                content=None,
                tool_calls=[
                    ToolCall(id="x9", name="calculator", arguments={"expression": "2**10"})
                ],
            ),
            Message(role="tool", tool_call_id="x9", name="calculator", content="1024"),
            Message(role="user", content="Go on."),
        ],
        tools=[CALCULATOR, CURRENT_TIME],
        temperature=0.2,
        max_tokens=256,
    )

    response = client.complete(request)

    assert response.message.content == "It is 14:03 in Paris; 2**10 is 1024."
    assert len(gemini.requests) == 1
    assert gemini.last.path == GENERATE_PATH
    assert gemini.last.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Time in Paris, and 2**10?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {
                        "functionCall": {
                            "id": "call_1",
                            "name": "current_time",
                            "args": {"timezone": "Europe/Paris"},
                        },
                        # Only the first call of a turn carries a signature (Gemini 3).
                        "thoughtSignature": SKIP_SIGNATURE,
                    },
                    {
                        "functionCall": {
                            "id": "call_2",
                            "name": "calculator",
                            "args": {"expression": "2 ** 10"},
                        }
                    },
                ],
            },
            # Both answers in one user turn, matched by id and name.
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_1",
                            "name": "current_time",
                            "response": {"result": "14:03"},
                        }
                    },
                    {
                        "functionResponse": {
                            "id": "call_2",
                            "name": "calculator",
                            "response": {"error": "error: invalid arguments"},
                        }
                    },
                ],
            },
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "id": "x9",
                            "name": "calculator",
                            "args": {"expression": "2**10"},
                        },
                        "thoughtSignature": SKIP_SIGNATURE,
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "x9",
                            "name": "calculator",
                            "response": {"result": "1024"},
                        }
                    }
                ],
            },
            {"role": "user", "parts": [{"text": "Go on."}]},
        ],
        "systemInstruction": {
            "role": "user",
            "parts": [{"text": "Use tools.\n\nAnswer in English."}],
        },
        "tools": [
            {
                "functionDeclarations": [
                    # The SDK writes this key in snake_case; the API's proto3 JSON parser
                    # accepts both spellings. A plain schema goes out as it is; pydantic's
                    # is reduced to the documented subset (tool_schema.gemini_parameters).
                    {
                        "name": "calculator",
                        "description": "Evaluate an arithmetic expression.",
                        "parameters_json_schema": CALCULATOR.parameters,
                    },
                    {
                        "name": "current_time",
                        "description": "The current time in a time zone.",
                        "parameters_json_schema": {
                            "type": "object",
                            "title": "CurrentTimeArgs",
                            "additionalProperties": False,
                            "properties": {
                                "timezone": {
                                    "type": "string",
                                    "title": "Timezone",
                                    "description": 'Default: "UTC".',
                                },
                                "format": {
                                    "anyOf": [
                                        {"enum": ["iso", "human"], "title": "Format",
                                         "type": "string"},
                                        {"type": "null"},
                                    ],
                                    "description": "Default: null.",
                                },
                            },
                        },
                    },
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256},
    }


def test_published_mcp_schemas_go_out_in_the_subset_gemini_documents(gemini, client):
    # Real servers' schemas (tests/mcp/published_schemas.json): `$schema`, `$defs`/`$ref`,
    # `definitions`, oneOf, allOf, const, default, minLength, exclusiveMinimum...
    tools = published_tools()
    assert any(gemini_problems(spec.parameters) for spec in tools)  # as published
    gemini.reply(body=generate_response(text("ok")))

    client.complete(ask(tools=tools))

    (declarations,) = [tool["functionDeclarations"] for tool in gemini.last.body["tools"]]
    wire = {declaration["name"]: declaration for declaration in declarations}
    assert list(wire) == [spec.name for spec in tools]
    problems = {name: gemini_problems(declaration.get("parameters_json_schema"))
                for name, declaration in wire.items()}
    assert {name: found for name, found in problems.items() if found} == {}
    # A tool without parameters declares none (rather than an empty object).
    for name in ("schema__ping", "everything__get-env", "fs__list_allowed_directories"):
        assert wire[name] == {"name": name, "description": wire[name]["description"]}
    for declaration in declarations:  # never the OpenAPI-subset `parameters` field
        assert set(declaration) <= {"name", "description", "parameters_json_schema"}
    keywords = {key for declaration in declarations
                for _, node in subschemas(declaration.get("parameters_json_schema"))
                for key in node}
    assert keywords.isdisjoint({"$ref", "$defs", "$schema", "definitions", "oneOf", "allOf",
                                "const", "default", "minLength", "exclusiveMinimum"})
    assert {"anyOf", "enum", "format", "additionalProperties", "prefixItems"} <= keywords


def test_no_automatic_function_calling_or_continuation(gemini, client, monkeypatch):
    # The agent loop runs tools: the SDK must hand function calls back after one request,
    # with automatic function calling switched off in the config it was given.
    from google.genai import models

    configs: list[Any] = []
    original = models.Models.generate_content

    def spy(self, **kwargs):
        configs.append(kwargs["config"])
        return original(self, **kwargs)

    monkeypatch.setattr(models.Models, "generate_content", spy)
    gemini.reply(body=generate_response(function_call("calculator", {"expression": "1 + 1"})))
    gemini.reply(body=generate_response(text("should never be requested")))

    response = client.complete(ask(tools=[CALCULATOR]))

    assert [c.name for c in response.message.tool_calls] == ["calculator"]
    assert len(gemini.requests) == 1
    (config,) = configs
    assert type(config).__name__ == "GenerateContentConfig"
    assert config.automatic_function_calling.disable is True
    assert config.automatic_continuation is False


def test_a_continuation_finish_is_not_followed_up(gemini, client):
    body = generate_response(text("The first half"), finish_reason="CONTINUATION")
    body["candidates"][0]["continuationToken"] = "Y29udGludWUtaGVyZQ=="
    gemini.reply(body=body)
    gemini.reply(body=generate_response(text(" and the rest.")))

    response = client.complete(ask())

    assert len(gemini.requests) == 1  # one complete(), one request
    assert response.message.content == "The first half"
    assert response.finish_reason == "length"


def test_tool_results_without_a_name_take_it_from_the_call(gemini, client):
    gemini.reply(body=generate_response(text("ok")))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="user", content="2+2?"),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="c1", name="calculator", arguments={"expression": "2+2"})],
            ),
            Message(role="tool", tool_call_id="c1", content="4"),
        ],
    )

    client.complete(request)

    assert gemini.last.body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"id": "c1", "name": "calculator", "response": {"result": "4"}}}
        ],
    }


def test_empty_messages_are_left_out(gemini, client):
    # Gemini rejects a content without parts (and empty text parts).
    gemini.reply(body=generate_response(text("ok")))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="user", content="hi"),
            Message(role="assistant", content=None),
            Message(role="assistant", content=""),
            Message(role="user", content="hello?"),
        ],
    )

    client.complete(request)

    assert gemini.last.body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "user", "parts": [{"text": "hello?"}]},
    ]


def test_thought_parts_are_skipped_and_text_parts_joined(gemini, client):
    gemini.reply(
        body=generate_response(
            {"text": "**Planning** I should add.", "thought": True},
            text("2 + 2 "),
            text("= 4."),
            thoughts_tokens=40,
        )
    )

    response = client.complete(ask())

    assert response.message.content == "2 + 2 = 4."


def test_usage_with_cached_and_thinking_tokens(gemini, client):
    gemini.reply(
        body=generate_response(
            text("ok"),
            prompt_tokens=2006,
            output_tokens=300,
            cached_tokens=1920,
            thoughts_tokens=120,
        )
    )

    usage = client.complete(ask()).usage

    assert usage.input_tokens == 2006  # promptTokenCount includes the cached part
    assert usage.cached_tokens == 1920
    assert usage.output_tokens == 420  # candidates + thoughts, both billed as output
    assert usage.model_calls == 1
    assert usage.cost_usd == 0.0


def test_usage_missing_still_counts_the_call(gemini, client):
    body = generate_response(text("ok"))
    del body["usageMetadata"]
    gemini.reply(body=body)

    usage = client.complete(ask()).usage

    assert (usage.input_tokens, usage.output_tokens, usage.model_calls) == (0, 0, 1)


@pytest.mark.parametrize(
    ("wire_reason", "with_call", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"),  # a cut-off reply stays a cut-off reply
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "other"),
        ("OTHER", False, "other"),
        ("LANGUAGE", False, "other"),
        (None, False, "other"),
    ],
)
def test_finish_reason_mapping(gemini, client, wire_reason, with_call, expected):
    part = function_call("calculator", {"expression": "1"}) if with_call else text("x")
    gemini.reply(body=generate_response(part, finish_reason=wire_reason))

    assert client.complete(ask(tools=[CALCULATOR])).finish_reason == expected


def test_a_candidate_stopped_by_safety_has_no_content(gemini, client):
    gemini.reply(
        body={
            "candidates": [
                {
                    "finishReason": "SAFETY",
                    "index": 0,
                    "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                    ],
                }
            ],
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r-safety",
        }
    )

    response = client.complete(ask())

    assert response.message.content is None
    assert response.message.tool_calls == []
    assert response.finish_reason == "content_filter"
    assert response.usage.input_tokens == 12


def test_a_blocked_prompt_is_a_request_error_naming_the_reason(gemini, client):
    gemini.reply(
        body={
            "promptFeedback": {
                "blockReason": "PROHIBITED_CONTENT",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
                ],
            },
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r-blocked",
        }
    )

    with pytest.raises(ModelRequestError, match="prompt was blocked") as caught:
        client.complete(ask())

    assert not isinstance(caught.value, RetryableModelError)
    assert "PROHIBITED_CONTENT" in str(caught.value)
    assert str(caught.value).startswith("google:")


def test_no_candidates_without_a_reason_is_a_request_error(gemini, client):
    gemini.reply(body={"usageMetadata": {"promptTokenCount": 3}, "responseId": "r-empty"})

    with pytest.raises(ModelRequestError, match="no candidates"):
        client.complete(ask())


# --- errors


def test_429_with_retry_after_is_retryable(gemini, client):
    gemini.reply(
        429,
        api_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        headers={"Retry-After": "7"},
    )

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    error = caught.value
    assert error.retryable is True
    assert error.status_code == 429
    assert error.retry_after_s == pytest.approx(7.0)
    message = str(error)
    assert message.startswith("google: HTTP 429 RESOURCE_EXHAUSTED")
    assert "You exceeded your current quota" in message
    assert len(gemini.requests) == 1  # the SDK does not retry on its own


def test_429_takes_the_wait_from_retry_info_without_a_header(gemini, client):
    gemini.reply(
        429,
        api_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota). Please retry in 13.4s.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"},
            ],
        ),
    )

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    assert caught.value.retry_after_s == pytest.approx(13.0)


def test_429_without_any_wait_has_none(gemini, client):
    gemini.reply(429, api_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."))

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    assert caught.value.retry_after_s is None


@pytest.mark.parametrize(
    ("status", "wire_status", "message"),
    [
        (500, "INTERNAL", "An internal error has occurred. Please retry or report."),
        (502, "BAD_GATEWAY", "Bad gateway."),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        (504, "DEADLINE_EXCEEDED", "The request timed out. Please try again."),
    ],
)
def test_server_errors_are_retryable_and_not_retried_by_the_sdk(
    gemini, client, status, wire_status, message
):
    gemini.reply(status, api_error(status, wire_status, message))

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    assert caught.value.status_code == status
    assert f"HTTP {status} {wire_status}" in str(caught.value)
    assert message in str(caught.value)
    assert len(gemini.requests) == 1  # attempts=1: the state machine owns retries


def test_a_non_json_error_body_still_classifies(gemini, client):
    gemini.reply(502, raw=b"<html><body>502 Bad Gateway</body></html>")

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    assert caught.value.status_code == 502
    assert "502 Bad Gateway" in str(caught.value)


def test_a_timeout_is_retryable(gemini):
    gemini.reply(body=generate_response(text("too late")), delay_s=10)
    client = GoogleClient(API_KEY, base_url=gemini.base_url, timeout_s=0.3)

    with pytest.raises(RetryableModelError, match="timed out") as caught:
        client.complete(ask())

    assert caught.value.status_code is None
    assert len(gemini.requests) == 1


def test_a_dropped_connection_is_retryable(gemini, client):
    gemini.reply(drop=True)

    with pytest.raises(RetryableModelError, match="connection error") as caught:
        client.complete(ask())

    assert caught.value.status_code is None
    assert len(gemini.requests) == 1


def test_a_refused_connection_is_retryable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GoogleClient(API_KEY, base_url=f"http://127.0.0.1:{port}")

    with pytest.raises(RetryableModelError, match=r"connection error \(ConnectError\)"):
        client.complete(ask())


def test_400_input_too_long_is_a_request_error(gemini, client):
    gemini.reply(
        400,
        api_error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1250000) exceeds the maximum number of tokens allowed "
            "(1048576).",
        ),
    )

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    assert not isinstance(error, RetryableModelError)
    assert error.retryable is False
    assert error.status_code == 400
    assert "HTTP 400 INVALID_ARGUMENT" in str(error)
    assert "exceeds the maximum number of tokens allowed" in str(error)
    assert len(gemini.requests) == 1


@pytest.mark.parametrize(
    ("status", "wire_status", "message"),
    [
        # What the Gemini API answers for a wrong key: 400, not 401.
        (400, "INVALID_ARGUMENT", f"API key not valid. Please pass a valid API key. {API_KEY}"),
        (401, "UNAUTHENTICATED", f"Request had invalid authentication credentials: {API_KEY}"),
        (403, "PERMISSION_DENIED", f"Your API key {API_KEY} was reported as leaked."),
        (403, "PERMISSION_DENIED", "Key AIzaSyOtherKeyQQQQQQQQQQQQQQQQQQQQQQQQ is not allowed."),
    ],
)
def test_auth_errors_are_request_errors_that_never_show_the_key(
    gemini, client, status, wire_status, message
):
    gemini.reply(status, api_error(status, wire_status, message))

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    shown = f"{error} {error!r} {error.args}"
    assert type(error) is ModelRequestError
    assert error.status_code == status
    assert f"HTTP {status} {wire_status}" in str(error)
    assert "[redacted]" in str(error)
    assert "AIza" not in shown
    assert "UnitTEST" not in shown
    assert error.__cause__ is None  # the SDK exception (with the raw body) is not chained


def test_a_key_of_any_shape_is_scrubbed_from_error_messages(gemini):
    key = "gateway-secret-7731"  # GOOGLE_BASE_URL may point at a gateway with its own keys
    gemini.reply(401, api_error(401, "UNAUTHENTICATED", f"unknown token {key}"))
    client = GoogleClient(key, base_url=gemini.base_url)

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    assert key not in str(caught.value)
    assert "unknown token" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "wire_status", "error_class"),
    [
        (404, "NOT_FOUND", ModelRequestError),
        (408, "DEADLINE_EXCEEDED", ProviderOutageError),
        (409, "ABORTED", OverloadedError),
    ],
)
def test_other_statuses(gemini, client, status, wire_status, error_class):
    gemini.reply(status, api_error(status, wire_status, f"status {status} says no"))

    with pytest.raises(error_class) as caught:
        client.complete(ask())

    assert type(caught.value) is error_class
    assert caught.value.status_code == status
    assert f"status {status} says no" in str(caught.value)


def test_404_unknown_model_names_the_model(gemini):
    gemini.reply(
        404,
        api_error(
            404,
            "NOT_FOUND",
            "models/gemini-nope is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        ),
    )
    client = GoogleClient(API_KEY, base_url=gemini.base_url)

    with pytest.raises(ModelRequestError, match="gemini-nope") as caught:
        client.complete(
            LLMRequest(model="gemini-nope", messages=[Message(role="user", content="x")])
        )

    assert caught.value.status_code == 404
    assert gemini.last.path == "/v1beta/models/gemini-nope:generateContent"


# --- configuration


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_api_key(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv("GOOGLE_API_KEY", value)
        monkeypatch.setenv("GEMINI_API_KEY", value)

    with pytest.raises(ModelRequestError, match=r"GOOGLE_API_KEY \(or GEMINI_API_KEY\) is not set"):
        GoogleClient.from_config(ProviderConfig.from_env())


def test_an_empty_key_passed_directly_is_a_request_error():
    with pytest.raises(ModelRequestError, match="is not set"):
        GoogleClient("")


@pytest.mark.parametrize(
    ("google_key", "gemini_key", "expected"),
    [
        (API_KEY, None, API_KEY),
        (None, "AIzaSyGeminiOnly", "AIzaSyGeminiOnly"),
        (API_KEY, "AIzaSyGeminiOnly", API_KEY),  # GOOGLE_API_KEY wins, as in the SDK
    ],
)
def test_key_comes_from_google_or_gemini_api_key(
    monkeypatch, gemini, google_key, gemini_key, expected
):
    if google_key:
        monkeypatch.setenv("GOOGLE_API_KEY", google_key)
    if gemini_key:
        monkeypatch.setenv("GEMINI_API_KEY", gemini_key)
    monkeypatch.setenv("GOOGLE_BASE_URL", gemini.base_url)
    gemini.reply(body=generate_response(text("hi")))

    GoogleClient.from_config(ProviderConfig.from_env()).complete(ask())

    assert gemini.last.headers["x-goog-api-key"] == expected


def test_get_client_without_a_key_fails_as_a_request_error():
    clear_client_cache()

    with pytest.raises(ModelRequestError, match="GOOGLE_API_KEY"):
        get_client(f"google:{MODEL}")


def test_get_client_builds_the_google_client_from_env(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    clear_client_cache()
    try:
        client = get_client(f"google:{MODEL}")

        assert isinstance(client, GoogleClient)
        assert client.provider == "google"
        assert get_client("google:gemini-2.5-pro") is client  # reused across models
    finally:
        clear_client_cache()


def test_from_env_settings_reach_the_sdk(monkeypatch, gemini):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    monkeypatch.setenv("GOOGLE_BASE_URL", gemini.base_url)
    monkeypatch.setenv("GOOGLE_TIMEOUT_S", "12.5")
    # Settings the SDK would otherwise follow on its own:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")
    gemini.reply(body=generate_response(text("hi")))

    client = GoogleClient.from_config(ProviderConfig.from_env())
    options = client._sdk._api_client._http_options

    assert options.timeout == 12_500  # milliseconds
    assert options.retry_options.attempts == 1
    assert client._sdk._api_client.vertexai is False
    assert client.complete(ask()).message.content == "hi"
    assert gemini.last.path == GENERATE_PATH  # went to GOOGLE_BASE_URL, v1beta
    assert gemini.last.headers["x-server-timeout"] == "13"


def test_empty_base_url_means_the_default(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    monkeypatch.setenv("GOOGLE_BASE_URL", "")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9/")  # the SDK's own

    client = GoogleClient.from_config(ProviderConfig.from_env())
    options = client._sdk._api_client._http_options

    assert options.base_url == DEFAULT_BASE_URL
    assert options.api_version == API_VERSION == "v1beta"
    assert options.timeout == 60_000


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_bad_timeout_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    monkeypatch.setenv("GOOGLE_TIMEOUT_S", value)

    with pytest.raises(ConfigError, match="GOOGLE_TIMEOUT_S") as caught:
        GoogleClient.from_config(ProviderConfig.from_env())

    assert API_KEY not in str(caught.value)


def test_importing_the_module_does_not_import_the_sdk():
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "layers" / "agentkit"),
        "GOOGLE_GENAI_USE_VERTEXAI": "",
    }
    code = (
        "import sys, agentkit.llm.google_client, agentkit.llm; "
        "assert 'google.genai' not in sys.modules, 'google.genai was imported'; "
        "agentkit.llm.google_client.GoogleClient('AIza-x'); "
        "assert 'google.genai' in sys.modules, 'the check cannot see the SDK'"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr


# --- other HTTP stacks the SDK can run on


def test_an_injected_httpx2_client_is_used():
    import httpx2  # google-genai's own HTTP client: a missing one fails, never skips
    seen: list[Any] = []

    def handler(request):
        seen.append(request)
        return httpx2.Response(200, json=generate_response(text("4"), cached_tokens=3))

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as http_client:
        client = GoogleClient(API_KEY, base_url="http://127.0.0.1:9", http_client=http_client)
        response = client.complete(ask())

    assert response.message.content == "4"
    assert response.usage.cached_tokens == 3
    assert str(seen[0].url) == f"http://127.0.0.1:9{GENERATE_PATH}"
    assert json.loads(seen[0].content)["contents"] == [
        {"role": "user", "parts": [{"text": "What is 2 + 2?"}]}
    ]


def test_the_sdk_httpx_backend_maps_timeouts_and_statuses_too(monkeypatch, gemini):
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", "httpx")
    gemini.reply(503, api_error(503, "UNAVAILABLE", "The model is overloaded."))
    gemini.reply(body=generate_response(text("late")), delay_s=10)
    client = GoogleClient(API_KEY, base_url=gemini.base_url, timeout_s=0.3)
    assert isinstance(client._sdk._api_client._httpx_client, httpx.Client)

    with pytest.raises(RetryableModelError) as first:
        client.complete(ask())
    with pytest.raises(RetryableModelError, match="timed out"):
        client.complete(ask())

    assert first.value.status_code == 503
    assert len(gemini.requests) == 2
