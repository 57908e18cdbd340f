"""AnthropicClient (the Messages API over `httpx`, no SDK) against mocked Messages API HTTP.

Nothing leaves the machine. Most tests hand the client an `httpx.Client` whose
`httpx.MockTransport` answers http://127.0.0.1:9/v1/messages with bodies in Anthropic's
actual wire format and records what was sent. The tests at the end run the client's own
default transport against a real socket on 127.0.0.1 (answers, faults, timeouts, a
refused connection).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit.config import ConfigError, ProviderConfig
from agentkit.llm import providers
from agentkit.llm.anthropic_client import API_VERSION, DEFAULT_BASE_URL, AnthropicClient
from agentkit.llm.base import (
    LLMRequest,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    RateLimitedError,
    RetryableModelError,
)
from agentkit.models.domain import INVALID_ARGUMENTS_KEY, Message, ToolCall
from tests.support.loopback import LoopbackServer, Reply
from tests.support.providers import (
    CALCULATOR,
    CURRENT_TIME,
    anthropic_problems,
    published_schemas,
    published_tools,
)

BASE_URL = "http://127.0.0.1:9"
MESSAGES_URL = f"{BASE_URL}/v1/messages"
API_KEY = "sk-ant-api03-unitTEST" + "x" * 60 + "-Zq9XAA"
MODEL = "claude-haiku-4-5"
REPO_ROOT = Path(__file__).resolve().parents[3]
ENV_NAMES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_TIMEOUT_S",
    "ANTHROPIC_MAX_TOKENS",
)

# --- wire-format builders


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str, input_: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": input_}


def message(
    *content: dict[str, Any],
    stop_reason: str | None = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 7,
    cache_creation_input_tokens: int | None = 0,
    cache_read_input_tokens: int | None = 0,
) -> dict[str, Any]:
    """A Messages API `message` object with the field set Anthropic sends."""
    return {
        "model": "claude-haiku-4-5-20251001",
        "id": "msg_0133AjAuLSKXatUZqNkpALPx",
        "type": "message",
        "role": "assistant",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": cache_creation_input_tokens or 0,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def api_error(type_: str, message_: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": type_, "message": message_},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }


def ask(prompt: str = "What is 2 + 2?", **kwargs: Any) -> LLMRequest:
    return LLMRequest(model=MODEL, messages=[Message(role="user", content=prompt)], **kwargs)


# --- the mocked API


class MockAPI:
    """Answers every request with the next queued reply; records the requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._reply: Callable[[httpx.Request], httpx.Response] | None = None

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            all_headers = {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy", **(headers or {})}
            if isinstance(body, str):
                return httpx.Response(status, text=body, headers=all_headers)
            return httpx.Response(status, json=body, headers=all_headers)

        self._reply = answer

    def fail(self, make_error: Callable[[httpx.Request], Exception]) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            raise make_error(request)

        self._reply = answer

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self._reply is not None, "no reply queued"
        return self._reply(request)

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body of the last request."""
        return json.loads(self.requests[-1].content)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api() -> MockAPI:
    return MockAPI()


@pytest.fixture
def http_client(api: MockAPI) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(api.handle)) as client:
        yield client


@pytest.fixture
def client(http_client: httpx.Client) -> AnthropicClient:
    return AnthropicClient(API_KEY, base_url=BASE_URL, http_client=http_client)


# --- answers


def test_plain_answer(api, client):
    api.reply(200, message(text("2 + 2 = 4.")))
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
    assert len(api.requests) == 1
    sent = api.requests[0]
    assert str(sent.url) == MESSAGES_URL
    # The key as `x-api-key`, the API version the body is shaped for, a JSON body.
    assert sent.method == "POST"
    assert sent.headers["x-api-key"] == API_KEY
    assert "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == API_VERSION == "2026-10-21"
    assert sent.headers["content-type"] == "application/json"
    # System text goes to `system`; no tools given: none sent.
    assert api.body == {
        "model": MODEL,
        "max_tokens": 4096,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
    }


def test_one_tool_call(api, client):
    api.reply(
        200,
        message(
            tool_use("toolu_01DGiQScbZKPwUBYN79rFUb8", "calculator", {"expression": "17 * 23"}),
            stop_reason="tool_use",
        ),
    )

    response = client.complete(ask("17 * 23?", tools=[CALCULATOR]))

    assert response.finish_reason == "tool_calls"
    assert response.message.content is None
    assert response.message.tool_calls == [
        ToolCall(
            id="toolu_01DGiQScbZKPwUBYN79rFUb8",
            name="calculator",
            arguments={"expression": "17 * 23"},
        )
    ]
    assert api.body["tools"] == [
        {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "input_schema": CALCULATOR.parameters,
        }
    ]


def test_several_tool_calls_in_one_turn_keep_their_order(api, client):
    api.reply(
        200,
        message(
            text("Let me check both."),
            tool_use("toolu_01A", "current_time", {"timezone": "Europe/Paris"}),
            tool_use("toolu_01B", "calculator", {"expression": "2 ** 10"}),
            tool_use("toolu_01C", "current_time", {}),
            stop_reason="tool_use",
        ),
    )

    response = client.complete(ask(tools=[CALCULATOR, CURRENT_TIME]))

    assert response.message.content == "Let me check both."
    assert [(c.id, c.name, c.arguments) for c in response.message.tool_calls] == [
        ("toolu_01A", "current_time", {"timezone": "Europe/Paris"}),
        ("toolu_01B", "calculator", {"expression": "2 ** 10"}),
        ("toolu_01C", "current_time", {}),
    ]
    assert response.finish_reason == "tool_calls"


def test_text_blocks_are_joined(api, client):
    api.reply(200, message(text("It is "), text("14:03"), text(" in Paris.")))

    assert client.complete(ask()).message.content == "It is 14:03 in Paris."


def test_multi_turn_conversation_sends_the_exact_wire_body(api, client):
    api.reply(200, message(text("It is 14:03 in Paris; 2**10 is 1024.")))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="Use tools."),
            Message(role="user", content="Time in Paris, and 2**10?"),
            Message(
                role="assistant",
                content="Checking both.",
                tool_calls=[
                    ToolCall(
                        id="toolu_01A", name="current_time", arguments={"timezone": "Europe/Paris"}
                    ),
                    ToolCall(id="toolu_01B", name="calculator", arguments={"expression": "2 **"}),
                ],
            ),
            Message(role="tool", tool_call_id="toolu_01A", name="current_time", content="14:03"),
            Message(
                role="tool",
                tool_call_id="toolu_01B",
                name="calculator",
                content="error: invalid syntax",
                is_error=True,
            ),
            Message(
                role="assistant",
                content=None,
                tool_calls=[
                    ToolCall(id="toolu_01C", name="calculator", arguments={"expression": "2 ** 10"})
                ],
            ),
            Message(role="tool", tool_call_id="toolu_01C", name="calculator", content="1024"),
            Message(role="user", content="Answer in one sentence."),
        ],
        tools=[CALCULATOR, CURRENT_TIME],
        temperature=0.2,
        max_tokens=256,
    )

    response = client.complete(request)

    assert response.message.content == "It is 14:03 in Paris; 2**10 is 1024."
    assert api.body == {
        "model": MODEL,
        "max_tokens": 256,
        "system": "Use tools.",
        "messages": [
            {"role": "user", "content": "Time in Paris, and 2**10?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking both."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01A",
                        "name": "current_time",
                        "input": {"timezone": "Europe/Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_01B",
                        "name": "calculator",
                        "input": {"expression": "2 **"},
                    },
                ],
            },
            # Both results of the turn in ONE user message; only the failed one is_error.
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "14:03"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01B",
                        "content": "error: invalid syntax",
                        "is_error": True,
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_01C",
                        "name": "calculator",
                        "input": {"expression": "2 ** 10"},
                    }
                ],
            },
            # A user message after tool results joins them, tool results first.
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01C", "content": "1024"},
                    {"type": "text", "text": "Answer in one sentence."},
                ],
            },
        ],
        "tools": [
            {
                "name": "calculator",
                "description": "Evaluate an arithmetic expression.",
                "input_schema": CALCULATOR.parameters,
            },
            {
                "name": "current_time",
                "description": "The current time in a time zone.",
                "input_schema": CURRENT_TIME.parameters,
            },
        ],
        # No "temperature": API version 2026-10-21 refuses it (400) on every model.
    }
    roles = [wire["role"] for wire in api.body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # strict alternation


def test_published_mcp_schemas_go_out_in_a_form_anthropic_accepts(api, client):
    # Real servers' schemas (tests/mcp/published_schemas.json), e.g. a top-level anyOf,
    # which the API refuses: "input_schema does not support oneOf, allOf, or anyOf at the
    # top level".
    tools = published_tools()
    assert any(anthropic_problems(spec.parameters) for spec in tools)  # as published
    api.reply(200, message(text("ok")))

    client.complete(ask(tools=tools))

    wire = {tool["name"]: tool for tool in api.body["tools"]}
    assert list(wire) == [spec.name for spec in tools]
    problems = {name: anthropic_problems(tool["input_schema"]) for name, tool in wire.items()}
    assert {name: found for name, found in problems.items() if found} == {}
    assert wire["schema__lookup"]["input_schema"] == {"type": "object", "properties": {
        "id": {"type": "string"}, "path": {"type": "string"}, "verbose": {"type": "boolean"}}}
    # Below the top level the schema is the tool's own (nested oneOf, title, default...).
    published = published_schemas()
    search = wire["schema__search"]["input_schema"]
    assert search["properties"]["filter"] == published["schema"]["search"]["properties"]["filter"]
    assert search["properties"]["page"]["default"] == 1
    assert wire["time__get_current_time"]["input_schema"] == published["time"]["get_current_time"]


def test_system_messages_are_joined_and_empty_turns_dropped(api, client):
    api.reply(200, message(text("ok")))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="Be terse."),
            Message(role="user", content="hi"),
            Message(role="assistant", content=None),  # an empty turn carries nothing
            Message(role="system", content="Answer in French."),
            Message(role="user", content="hello?"),
            Message(role="tool", tool_call_id="toolu_01X", name="noop", content=""),
        ],
    )

    client.complete(request)

    assert api.body["system"] == "Be terse.\n\nAnswer in French."
    assert api.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "text", "text": "hello?"},
                {"type": "tool_result", "tool_use_id": "toolu_01X"},  # empty content left out
            ],
        }
    ]


def test_max_tokens_from_the_environment_and_the_request(monkeypatch, api, http_client):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", BASE_URL)
    monkeypatch.setenv("ANTHROPIC_MAX_TOKENS", "1024")
    api.reply(200, message(text("ok")))
    client = AnthropicClient.from_config(ProviderConfig.from_env(), http_client=http_client)

    client.complete(ask())
    assert api.body["max_tokens"] == 1024

    client.complete(ask(max_tokens=50))
    assert api.body["max_tokens"] == 50  # the request's own limit wins


def test_usage_counts_cache_reads_and_writes_as_input(api, client):
    api.reply(
        200,
        message(
            text("ok"),
            input_tokens=50,
            output_tokens=300,
            cache_creation_input_tokens=1000,
            cache_read_input_tokens=1920,
        ),
    )

    usage = client.complete(ask()).usage

    assert usage.input_tokens == 50 + 1000 + 1920  # the whole prompt, as OpenAI counts it
    assert usage.cached_tokens == 1920
    assert usage.output_tokens == 300
    assert usage.model_calls == 1
    assert usage.cost_usd == 0.0


def test_usage_with_null_cache_fields(api, client):
    api.reply(
        200,
        message(
            text("ok"),
            input_tokens=12,
            output_tokens=3,
            cache_creation_input_tokens=None,
            cache_read_input_tokens=None,
        ),
    )

    usage = client.complete(ask()).usage

    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (12, 0, 3)
    assert usage.model_calls == 1


@pytest.mark.parametrize(
    ("wire_input", "problem"),
    [
        (["2 + 2"], "a JSON list, not an object"),
        ("2 +", "not valid JSON"),
        (42, "a JSON int, not an object"),
    ],
)
def test_tool_input_that_is_not_an_object_is_kept_with_an_explanation(
    api, client, wire_input, problem
):
    api.reply(
        200,
        message(
            tool_use("toolu_bad", "calculator", wire_input),
            tool_use("toolu_ok", "calculator", {"expression": "1 + 1"}),
            stop_reason="tool_use",
        ),
    )

    bad, ok = client.complete(ask(tools=[CALCULATOR])).message.tool_calls

    assert (bad.id, bad.name) == ("toolu_bad", "calculator")
    assert list(bad.arguments) == [INVALID_ARGUMENTS_KEY]
    assert problem in bad.arguments[INVALID_ARGUMENTS_KEY]
    assert ok.arguments == {"expression": "1 + 1"}  # one bad call spoils nothing else


def test_tool_input_sent_as_json_text_is_decoded(api, client):
    api.reply(
        200,
        message(
            tool_use("toolu_1", "calculator", '{"expression": "3 * 3"}'), stop_reason="tool_use"
        ),
    )

    (call,) = client.complete(ask(tools=[CALCULATOR])).message.tool_calls

    assert call.arguments == {"expression": "3 * 3"}


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
        ("something_new", "other"),
        (None, "other"),
    ],
)
def test_stop_reason_mapping(api, client, stop_reason, expected):
    api.reply(200, message(text("x"), stop_reason=stop_reason))

    assert client.complete(ask()).finish_reason == expected


def test_unknown_content_blocks_are_ignored(api, client):
    api.reply(
        200,
        message(
            {"type": "thinking", "thinking": "Hmm.", "signature": "EqQBCkYIBxgCKkBd"},
            text("4"),
        ),
    )

    response = client.complete(ask())

    assert response.message.content == "4"
    assert response.message.tool_calls == []


# --- errors


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
    ],
)
def test_429_is_retryable_with_retry_after(api, client, headers, expected_wait):
    api.reply(
        429,
        api_error(
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50,000 input "
            "tokens per minute.",
        ),
        headers,
    )

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    error = caught.value
    assert error.retryable is True
    assert error.status_code == 429
    assert error.retry_after_s == pytest.approx(expected_wait)
    assert str(error).startswith("anthropic: HTTP 429: This request would exceed the rate limit")
    assert "(rate_limit_error)" in str(error)
    assert len(api.requests) == 1  # no retry of our own: the state machine owns retries


@pytest.mark.parametrize(
    ("status", "type_", "text_", "kind"),
    [
        (529, "overloaded_error", "Overloaded", OverloadedError),
        (500, "api_error", "Internal server error", ProviderOutageError),
        (503, "api_error", "Service unavailable", OverloadedError),
    ],
)
def test_overloaded_and_server_errors_are_retryable(api, client, status, type_, text_, kind):
    api.reply(status, api_error(type_, text_))

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    assert type(caught.value) is kind

    assert caught.value.status_code == status
    assert caught.value.retry_after_s is None
    assert str(caught.value) == f"anthropic: HTTP {status}: {text_} ({type_})"
    assert len(api.requests) == 1  # the state machine owns retries


def test_a_non_json_error_body_is_shown_as_text(api, client):
    api.reply(502, "<html><body>502 Bad Gateway</body></html>")

    with pytest.raises(RetryableModelError, match="502 Bad Gateway") as caught:
        client.complete(ask())

    assert caught.value.status_code == 502


@pytest.mark.parametrize(
    ("make_error", "expected"),
    [
        (lambda request: httpx.ReadTimeout("timed out", request=request), "the request timed out"),
        (
            lambda request: httpx.ConnectTimeout("timed out", request=request),
            "the request timed out",
        ),
        (
            lambda request: httpx.ConnectError("[Errno 111] Connection refused", request=request),
            "connection error",
        ),
    ],
    ids=["read-timeout", "connect-timeout", "connection-refused"],
)
def test_timeouts_and_connection_errors_are_retryable(api, client, make_error, expected):
    api.fail(make_error)

    with pytest.raises(RetryableModelError, match=rf"^anthropic: {expected}") as caught:
        client.complete(ask())

    assert caught.value.status_code is None
    assert len(api.requests) == 1


def test_400_prompt_too_long_is_a_request_error(api, client):
    api.reply(
        400,
        api_error("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
    )

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    assert not isinstance(error, RetryableModelError)
    assert error.retryable is False
    assert error.status_code == 400
    assert str(error) == (
        "anthropic: HTTP 400: prompt is too long: 208310 tokens > 200000 maximum "
        "(invalid_request_error)"
    )


@pytest.mark.parametrize(
    "echoed", [API_KEY, API_KEY[:20] + "..."], ids=["full-key-echoed", "key-prefix-echoed"]
)
def test_401_is_a_request_error_that_never_shows_the_key(api, client, echoed):
    api.reply(401, api_error("authentication_error", f"invalid x-api-key: {echoed}"))

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    shown = f"{error} {error!r} {error.args}"
    assert error.status_code == 401
    assert str(error).startswith("anthropic: HTTP 401: invalid x-api-key")
    assert API_KEY not in shown
    assert "unitTEST" not in shown
    assert error.__cause__ is None and error.__context__ is None  # no raw body chained


def test_a_key_of_any_shape_is_scrubbed_from_error_messages(api, http_client):
    key = "gateway-secret-7731"  # a gateway behind ANTHROPIC_BASE_URL may use any key
    api.reply(401, api_error("authentication_error", f"unknown token {key}"))
    client = AnthropicClient(key, base_url=BASE_URL, http_client=http_client)

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    assert key not in str(caught.value)
    assert "unknown token" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "type_", "error_class"),
    [
        (403, "permission_error", ModelRequestError),
        (404, "not_found_error", ModelRequestError),
        (413, "request_too_large", ModelRequestError),
        (408, "timeout_error", ProviderOutageError),
        (409, "conflict_error", OverloadedError),
    ],
)
def test_other_statuses(api, client, status, type_, error_class):
    api.reply(status, api_error(type_, f"status {status} says no"))

    with pytest.raises(error_class) as caught:
        client.complete(ask())

    assert type(caught.value) is error_class
    assert caught.value.status_code == status
    assert f"status {status} says no ({type_})" in str(caught.value)


def test_a_redirect_is_not_followed_and_is_a_request_error(api, client):
    api.reply(307, "", {"location": "https://elsewhere.example/v1/messages"})

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    assert not isinstance(caught.value, RetryableModelError)
    assert caught.value.status_code == 307
    assert str(caught.value) == "anthropic: HTTP 307: Temporary Redirect"
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html><body>upstream says hi</body></html>", "Expecting value"),
        ('{"type": "message", "content": [', "Expecting value"),
        ("[]", "a JSON list, not a message object"),
        ('{"content": "4", "stop_reason": "end_turn"}', "`content` is a JSON str"),
        ('{"content": [{"type": "text", "text": 4}]}', "`text` is a JSON int"),
        ('{"content": [{"type": "tool_use", "id": 7, "name": "calculator", "input": {}}]}',
         "id"),
        ('{"content": [], "usage": {"input_tokens": "many", "output_tokens": 1}}',
         "usage.input_tokens is 'many'"),
    ],
    ids=["html", "truncated-json", "json-list", "content-not-list", "text-not-string",
         "tool-id-not-string", "usage-not-a-number"],
)
def test_a_2xx_body_that_is_not_a_message_is_a_request_error(api, client, body, problem):
    api.reply(200, body)

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    assert not isinstance(error, RetryableModelError)
    assert str(error).startswith("anthropic: the response could not be used: ")
    assert problem in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # nothing raw chained


def test_a_base_url_with_a_path_and_a_trailing_slash(api, http_client):
    api.reply(200, message(text("ok")))
    client = AnthropicClient(API_KEY, base_url=f"{BASE_URL}/anthropic/", http_client=http_client)

    client.complete(ask())

    assert str(api.requests[0].url) == f"{BASE_URL}/anthropic/v1/messages"


def test_non_ascii_text_goes_out_as_utf8_json(api, client):
    api.reply(200, message(text("Größe: 4 ✓")))

    response = client.complete(ask("Wie groß ist 2 + 2? ✓"))

    assert response.message.content == "Größe: 4 ✓"
    assert "Wie groß ist 2 + 2? ✓".encode() in api.requests[0].content
    assert api.body["messages"] == [{"role": "user", "content": "Wie groß ist 2 + 2? ✓"}]


# --- configuration


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_api_key(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", value)

    with pytest.raises(ModelRequestError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicClient.from_config(ProviderConfig.from_env())


def test_from_env_settings_reach_the_request(monkeypatch, api, http_client):
    monkeypatch.setenv("ANTHROPIC_API_KEY", f"  {API_KEY}  ")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", BASE_URL)
    monkeypatch.setenv("ANTHROPIC_TIMEOUT_S", "12.5")
    api.reply(200, message(text("hi")))

    client = AnthropicClient.from_config(ProviderConfig.from_env(), http_client=http_client)

    assert client.complete(ask()).message.content == "hi"
    (sent,) = api.requests
    assert str(sent.url) == MESSAGES_URL  # went to ANTHROPIC_BASE_URL
    assert sent.headers["x-api-key"] == API_KEY  # stripped
    # ANTHROPIC_TIMEOUT_S on the request, also over an injected client's own timeout.
    assert sent.extensions["timeout"] == dict.fromkeys(("connect", "read", "write", "pool"), 12.5)


def test_defaults(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "")  # empty means the default

    client = AnthropicClient.from_config(ProviderConfig.from_env())

    assert client.base_url == DEFAULT_BASE_URL
    assert client.timeout_s == 60.0
    assert client._max_tokens == 4096


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ANTHROPIC_TIMEOUT_S", "soon"),
        ("ANTHROPIC_TIMEOUT_S", "0"),
        ("ANTHROPIC_TIMEOUT_S", "nan"),
        ("ANTHROPIC_MAX_TOKENS", "lots"),
        ("ANTHROPIC_MAX_TOKENS", "-5"),
        ("ANTHROPIC_MAX_TOKENS", "10.5"),
        ("ANTHROPIC_MAX_TOKENS", "inf"),
    ],
)
def test_bad_numbers_in_the_environment_are_config_errors(monkeypatch, name, value):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=name) as caught:
        AnthropicClient.from_config(ProviderConfig.from_env())

    assert API_KEY not in str(caught.value)


def test_registered_as_the_anthropic_provider():
    module_name, _, class_name = providers.PROVIDER_CLIENTS["anthropic"].partition(":")
    module = __import__(module_name, fromlist=[class_name])

    assert getattr(module, class_name) is AnthropicClient
    assert AnthropicClient.provider == "anthropic"


def test_no_sdk_and_httpx_only_when_a_client_is_built():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "layers" / "agentkit")}
    code = (
        "import sys, agentkit.llm.anthropic_client, agentkit.llm; "
        "assert 'httpx' not in sys.modules, 'importing the module imported httpx'; "
        "agentkit.llm.anthropic_client.AnthropicClient('sk-ant-x'); "
        "assert 'httpx' in sys.modules, 'the check cannot see httpx'; "
        "assert 'anthropic' not in sys.modules, 'the anthropic SDK was imported'"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr


# --- the client's own default transport against a real socket on 127.0.0.1


@pytest.fixture
def local_server() -> Iterator[LoopbackServer]:
    answer = Reply(body=message(text("4"), input_tokens=9, output_tokens=1))
    with LoopbackServer(lambda _: answer) as server:
        yield server


class TestDefaultTransport:
    def test_plain_answer_from_env(self, monkeypatch, local_server):
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", local_server.url)

        response = AnthropicClient.from_config(ProviderConfig.from_env()).complete(ask())

        assert response.message.content == "4"
        assert response.usage.input_tokens == 9
        (request,) = local_server.requests
        assert (request.method, request.path) == ("POST", "/v1/messages")
        assert request.headers["x-api-key"] == API_KEY
        assert request.headers["anthropic-version"] == API_VERSION
        assert "authorization" not in request.headers
        assert request.body["messages"] == [{"role": "user", "content": "What is 2 + 2?"}]

    def test_429_with_rate_limit_headers(self, local_server):
        local_server.respond = lambda _: Reply(
            429,
            api_error("rate_limit_error", "Number of requests has exceeded your rate limit."),
            headers={
                "retry-after": "12",
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z",
                "anthropic-ratelimit-tokens-limit": "40000",
            },
        )
        client = AnthropicClient(API_KEY, base_url=local_server.url)

        with pytest.raises(RateLimitedError) as caught:
            client.complete(ask())

        error = caught.value
        assert error.status_code == 429
        assert error.retry_after_s == 12.0
        assert (error.rate.requests_per_minute, error.rate.tokens_per_minute) == (50, 40_000)
        assert error.rate.replenished_s is not None and error.rate.replenished_s > 0
        assert str(error) == (
            "anthropic: HTTP 429: Number of requests has exceeded your rate limit. "
            "(rate_limit_error)"
        )
        assert len(local_server.requests) == 1

    @pytest.mark.parametrize(
        ("status", "kind"), [(529, OverloadedError), (500, ProviderOutageError)]
    )
    def test_overloaded_and_server_errors(self, local_server, status, kind):
        local_server.respond = lambda _: Reply(status, api_error("overloaded_error", "Overloaded"))
        client = AnthropicClient(API_KEY, base_url=local_server.url)

        with pytest.raises(kind) as caught:
            client.complete(ask())

        assert caught.value.status_code == status
        assert str(caught.value) == f"anthropic: HTTP {status}: Overloaded (overloaded_error)"

    def test_a_body_that_is_not_json(self, local_server):
        local_server.respond = lambda _: Reply(200, b"\x00\xffnot json")
        client = AnthropicClient(API_KEY, base_url=local_server.url)

        with pytest.raises(ModelRequestError, match=r"^anthropic: the response could not be used"):
            client.complete(ask())

    def test_malformed_tool_input_is_kept_with_an_explanation(self, local_server):
        answer = message(
            tool_use("toolu_bad", "calculator", ["2 + 2"]),
            tool_use("toolu_ok", "calculator", {"expression": "1 + 1"}),
            stop_reason="tool_use",
        )
        local_server.respond = lambda _: Reply(body=answer)
        client = AnthropicClient(API_KEY, base_url=local_server.url)

        bad, ok = client.complete(ask(tools=[CALCULATOR])).message.tool_calls

        assert "a JSON list, not an object" in bad.arguments[INVALID_ARGUMENTS_KEY]
        assert ok.arguments == {"expression": "1 + 1"}

    def test_a_dropped_connection_is_retryable(self, local_server):
        local_server.respond = lambda _: Reply(drop=True)
        client = AnthropicClient(API_KEY, base_url=local_server.url, timeout_s=5)

        with pytest.raises(
            ProviderOutageError, match=r"^anthropic: connection error \(RemoteProtocolError\)$"
        ) as caught:
            client.complete(ask())

        assert caught.value.status_code is None

    def test_read_timeout_is_retryable(self, local_server):
        slow = Reply(body=message(text("4"), input_tokens=9, output_tokens=1), delay_s=2.0)
        local_server.respond = lambda _: slow
        client = AnthropicClient(API_KEY, base_url=local_server.url, timeout_s=0.3)

        started = time.monotonic()
        with pytest.raises(RetryableModelError, match=r"^anthropic: the request timed out$"):
            client.complete(ask())

        assert time.monotonic() - started < 1.5  # one attempt, no retries
        assert len(local_server.requests) == 1

    def test_connection_refused_is_retryable(self):
        with socket.socket() as probe:  # a port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = AnthropicClient(API_KEY, base_url=f"http://127.0.0.1:{port}", timeout_s=5)

        with pytest.raises(
            ProviderOutageError, match=r"^anthropic: connection error \(ConnectError\)$"
        ) as caught:
            client.complete(ask())

        assert caught.value.status_code is None
