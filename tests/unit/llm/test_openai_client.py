"""OpenAIClient through the real `openai` SDK against mocked Chat Completions HTTP.

Nothing leaves the machine: the SDK talks to http://127.0.0.1:9/v1 and `respx` answers
on the SDK's httpx transport with bodies in OpenAI's actual wire format. The SDK
releases built on `httpx2` do not go through `httpx`'s transport by default, so the
tests hand the SDK an `httpx.Client` (a supported `http_client`); a few tests at the end
run the SDK's own `httpx2` transport through `httpx2.MockTransport` as well.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from agentkit.config import ConfigError, ProviderConfig
from agentkit.llm.base import (
    LLMRequest,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    RateLimitedError,
    RetryableModelError,
)
from agentkit.llm.openai_client import DEFAULT_BASE_URL, OpenAIClient
from agentkit.llm.providers import clear_client_cache, get_client
from agentkit.models.domain import INVALID_ARGUMENTS_KEY, Message, ToolCall
from tests.support.providers import (
    CALCULATOR,
    CURRENT_TIME,
    openai_problems,
    published_tools,
)

BASE_URL = "http://127.0.0.1:9/v1"
COMPLETIONS_URL = f"{BASE_URL}/chat/completions"
API_KEY = "sk-proj-unitTEST" + "x" * 40 + "Zq9X"
MASKED_KEY = "sk-proj-" + "*" * 48 + "Zq9X"  # how OpenAI's 401 message echoes a key
MODEL = "gpt-4o-mini"
REPO_ROOT = Path(__file__).resolve().parents[3]

# --- wire-format builders


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(
    *,
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 25,
    completion_tokens: int = 7,
    cached_tokens: int = 0,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A `chat.completion` object with the field set OpenAI sends."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": refusal,
        "annotations": [],
    }
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }


def api_error(message: str, *, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def ask(text: str = "What is 2 + 2?", **kwargs: Any) -> LLMRequest:
    return LLMRequest(model=MODEL, messages=[Message(role="user", content=text)], **kwargs)


def sent_body(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)


# --- fixtures


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
def client():
    http_client = httpx.Client()
    yield OpenAIClient(API_KEY, base_url=BASE_URL, http_client=http_client)
    http_client.close()


def reply_with(router: respx.MockRouter, status: int, body: Any, **kwargs: Any) -> respx.Route:
    return router.post(COMPLETIONS_URL).mock(
        return_value=httpx.Response(status, json=body, **kwargs)
    )


# --- answers


def test_plain_answer(router, client):
    route = reply_with(router, 200, completion(content="2 + 2 = 4."))
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
    assert route.call_count == 1
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    # No tools, temperature or token limit given: none sent (the API rejects `tools: []`).
    assert sent_body(route) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
    }


def test_one_tool_call(router, client):
    reply_with(
        router,
        200,
        completion(
            tool_calls=[tool_call("call_abc123", "calculator", '{"expression": "17 * 23"}')],
            finish_reason="tool_calls",
        ),
    )

    response = client.complete(ask("17 * 23?", tools=[CALCULATOR]))

    assert response.finish_reason == "tool_calls"
    assert response.message.content is None
    assert response.message.tool_calls == [
        ToolCall(id="call_abc123", name="calculator", arguments={"expression": "17 * 23"})
    ]


def test_two_tool_calls_in_one_turn_keep_their_order(router, client):
    reply_with(
        router,
        200,
        completion(
            content="Let me check both.",
            tool_calls=[
                tool_call("call_1", "current_time", '{"timezone": "Europe/Paris"}'),
                tool_call("call_2", "calculator", '{"expression": "2 ** 10"}'),
            ],
            finish_reason="tool_calls",
        ),
    )

    response = client.complete(ask(tools=[CALCULATOR, CURRENT_TIME]))

    assert response.message.content == "Let me check both."
    assert [(c.id, c.name, c.arguments) for c in response.message.tool_calls] == [
        ("call_1", "current_time", {"timezone": "Europe/Paris"}),
        ("call_2", "calculator", {"expression": "2 ** 10"}),
    ]
    assert response.finish_reason == "tool_calls"


def test_multi_turn_conversation_sends_the_exact_wire_body(router, client):
    route = reply_with(router, 200, completion(content="It is 14:03 in Paris; 2**10 is 1024."))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="system", content="Use tools."),
            Message(role="user", content="Time in Paris, and 2**10?"),
            Message(
                role="assistant",
                content=None,
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
            Message(role="assistant", content="Retrying the calculation."),
            Message(role="user", content="Go on."),
        ],
        tools=[CALCULATOR, CURRENT_TIME],
        temperature=0.2,
        max_tokens=256,
    )

    response = client.complete(request)

    assert response.message.content == "It is 14:03 in Paris; 2**10 is 1024."
    body = sent_body(route)
    assert body == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Time in Paris, and 2**10?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "current_time",
                            "arguments": '{"timezone": "Europe/Paris"}',
                        },
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {
                            "name": "calculator",
                            "arguments": '{"expression": "2 ** 10"}',
                        },
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "14:03"},
            {"role": "tool", "tool_call_id": "call_2", "content": "error: invalid arguments"},
            {"role": "assistant", "content": "Retrying the calculation."},
            {"role": "user", "content": "Go on."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "calculator",
                    "description": "Evaluate an arithmetic expression.",
                    "parameters": CALCULATOR.parameters,
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "current_time",
                    "description": "The current time in a time zone.",
                    "parameters": CURRENT_TIME.parameters,
                },
            },
        ],
        "temperature": 0.2,
        "max_completion_tokens": 256,
    }
    # Arguments travel as a JSON *string* that decodes back to what the model sent.
    arguments = body["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"timezone": "Europe/Paris"}


def test_published_mcp_schemas_go_out_in_a_form_openai_accepts(router, client):
    # Real servers' schemas: draft-07 `$schema`, `definitions`/`$defs` refs, a top-level
    # anyOf, `{"type": "object"}`, arrays without items... (tests/mcp/published_schemas.json)
    tools = published_tools()
    assert any(openai_problems(spec.parameters) for spec in tools)  # as published: refused
    route = reply_with(router, 200, completion(content="ok"))

    client.complete(ask(tools=tools))

    wire = {tool["function"]["name"]: tool for tool in sent_body(route)["tools"]}
    assert list(wire) == [spec.name for spec in tools]
    problems = {name: openai_problems(tool["function"]["parameters"])
                for name, tool in wire.items()}
    assert {name: found for name, found in problems.items() if found} == {}
    assert wire["schema__ping"]["function"] == {
        "name": "schema__ping", "description": "ping of schema",
        "parameters": {"type": "object", "properties": {}},
    }
    assert wire["schema__combine"]["function"]["parameters"]["properties"]["c"] == {
        "type": "array", "items": {}}
    sent = json.dumps(sent_body(route)["tools"])
    assert "$ref" not in sent and "$schema" not in sent and "definitions" not in sent


def test_an_empty_assistant_turn_is_sent_with_empty_content(router, client):
    # The API wants `content` on an assistant message that has no tool_calls.
    route = reply_with(router, 200, completion(content="ok"))
    request = LLMRequest(
        model=MODEL,
        messages=[
            Message(role="user", content="hi"),
            Message(role="assistant", content=None),
            Message(role="user", content="hello?"),
        ],
    )

    client.complete(request)

    assert sent_body(route)["messages"][1] == {"role": "assistant", "content": ""}


def test_usage_with_cached_tokens(router, client):
    reply_with(
        router,
        200,
        completion(content="ok", prompt_tokens=2006, completion_tokens=300, cached_tokens=1920),
    )

    usage = client.complete(ask()).usage

    assert usage.input_tokens == 2006
    assert usage.output_tokens == 300
    assert usage.cached_tokens == 1920
    assert usage.model_calls == 1
    assert usage.cost_usd == 0.0


def test_usage_missing_still_counts_the_call(router, client):
    body = completion(content="ok")
    del body["usage"]  # some OpenAI-compatible servers leave it out
    reply_with(router, 200, body)

    usage = client.complete(ask()).usage

    assert (usage.input_tokens, usage.output_tokens, usage.model_calls) == (0, 0, 1)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"expression": "2 +', "not valid JSON"),
        ("expression=2+2", "not valid JSON"),
        ('["2 + 2"]', "a JSON list, not an object"),
    ],
)
def test_malformed_tool_arguments_are_kept_with_an_explanation(router, client, raw, problem):
    reply_with(
        router,
        200,
        completion(
            tool_calls=[
                tool_call("call_bad", "calculator", raw),
                tool_call("call_ok", "calculator", '{"expression": "1 + 1"}'),
            ],
            finish_reason="tool_calls",
        ),
    )

    response = client.complete(ask(tools=[CALCULATOR]))

    bad, ok = response.message.tool_calls
    assert (bad.id, bad.name) == ("call_bad", "calculator")
    assert list(bad.arguments) == [INVALID_ARGUMENTS_KEY]
    explanation = bad.arguments[INVALID_ARGUMENTS_KEY]
    assert problem in explanation
    assert raw in explanation  # the raw text is quoted for the model to see
    assert ok.arguments == {"expression": "1 + 1"}  # one bad call spoils nothing else
    assert response.finish_reason == "tool_calls"


def test_empty_tool_arguments_mean_no_arguments(router, client):
    reply_with(
        router,
        200,
        completion(
            tool_calls=[tool_call("call_1", "current_time", "")], finish_reason="tool_calls"
        ),
    )

    (call,) = client.complete(ask(tools=[CURRENT_TIME])).message.tool_calls

    assert call.arguments == {}


@pytest.mark.parametrize(
    ("wire_reason", "with_tool_call", "expected"),
    [
        ("stop", False, "stop"),
        ("length", False, "length"),
        ("content_filter", False, "content_filter"),
        ("function_call", True, "tool_calls"),
        ("stop", True, "tool_calls"),  # OpenAI says "stop" when tool_choice forces a function
    ],
)
def test_finish_reason_mapping(router, client, wire_reason, with_tool_call, expected):
    calls = [tool_call("call_1", "calculator", '{"expression": "1"}')] if with_tool_call else None
    reply_with(
        router,
        200,
        completion(
            content=None if with_tool_call else "x", tool_calls=calls, finish_reason=wire_reason
        ),
    )

    assert client.complete(ask(tools=[CALCULATOR])).finish_reason == expected


def test_refusal_becomes_the_content(router, client):
    reply_with(router, 200, completion(content=None, refusal="I can't help with that."))

    response = client.complete(ask())

    assert response.message.content == "I can't help with that."


def test_no_choices_is_a_request_error(router, client):
    body = completion(content="x")
    body["choices"] = []
    reply_with(router, 200, body)

    with pytest.raises(ModelRequestError, match="no choices"):
        client.complete(ask())


# --- errors


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
    ],
)
def test_429_is_retryable_with_retry_after(router, client, headers, expected_wait):
    route = reply_with(
        router,
        429,
        api_error(
            "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 200000, Used "
            "199000, Requested 2000. Please try again in 7s.",
            type_="tokens",
            code="rate_limit_exceeded",
        ),
        headers=headers,
    )

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    error = caught.value
    assert error.retryable is True
    assert error.status_code == 429
    assert error.retry_after_s == pytest.approx(expected_wait)
    message = str(error)
    assert "openai" in message and "429" in message
    assert "Rate limit reached for gpt-4o-mini" in message
    assert route.call_count == 1  # the SDK does not retry on its own


def test_429_without_retry_after_has_no_wait(router, client):
    reply_with(
        router,
        429,
        api_error("Rate limit reached.", type_="requests", code="rate_limit_exceeded"),
    )

    with pytest.raises(RateLimitedError) as caught:
        client.complete(ask())

    assert caught.value.retry_after_s is None


def test_429_insufficient_quota_is_billing_not_a_rate_limit(router, client):
    reply_with(
        router,
        429,
        api_error(
            "You exceeded your current quota.",
            type_="insufficient_quota",
            code="insufficient_quota",
        ),
        headers={"retry-after": "20"},
    )

    with pytest.raises(ModelRequestError, match="insufficient_quota") as caught:
        client.complete(ask())

    assert caught.value.status_code == 429 and not caught.value.retryable


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable_and_not_retried_by_the_sdk(router, client, status):
    route = reply_with(
        router,
        status,
        api_error(
            "The server had an error while processing your request.",
            type_="server_error",
            code=None,
        ),
    )

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    assert caught.value.status_code == status
    assert str(status) in str(caught.value)
    assert "The server had an error" in str(caught.value)
    assert route.call_count == 1  # max_retries=0: the state machine owns retries


@pytest.mark.parametrize(
    ("side_effect", "expected"),
    [
        (httpx.ReadTimeout("timed out"), "timed out"),
        (httpx.ConnectTimeout("timed out"), "timed out"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection error"),
    ],
)
def test_timeouts_and_connection_errors_are_retryable(router, client, side_effect, expected):
    route = router.post(COMPLETIONS_URL).mock(side_effect=side_effect)

    with pytest.raises(RetryableModelError, match=expected) as caught:
        client.complete(ask())

    assert caught.value.status_code is None
    assert route.call_count == 1


def test_400_context_length_exceeded_is_a_request_error(router, client):
    reply_with(
        router,
        400,
        api_error(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            type_="invalid_request_error",
            param="messages",
            code="context_length_exceeded",
        ),
    )

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    assert not isinstance(error, RetryableModelError)
    assert error.retryable is False
    assert error.status_code == 400
    assert "maximum context length is 128000 tokens" in str(error)
    assert "context_length_exceeded" in str(error)


@pytest.mark.parametrize(
    "echoed", [MASKED_KEY, API_KEY], ids=["masked-key-echoed", "full-key-echoed"]
)
def test_401_is_a_request_error_that_never_shows_the_key(router, client, echoed):
    reply_with(
        router,
        401,
        api_error(
            f"Incorrect API key provided: {echoed}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            type_="invalid_request_error",
            code="invalid_api_key",
        ),
    )

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    error = caught.value
    shown = f"{error} {error!r} {error.args}"
    assert error.status_code == 401
    assert "401" in str(error) and "Incorrect API key provided" in str(error)
    assert API_KEY not in shown
    assert "Zq9X" not in shown  # not even the tail OpenAI leaves unmasked
    assert "unitTEST" not in shown
    assert error.__cause__ is None  # the SDK exception (with the raw body) is not chained


def test_a_key_of_any_shape_is_scrubbed_from_error_messages(router):
    # OpenAI-compatible servers (OPENAI_BASE_URL) may use keys that do not look like sk-...
    key = "local-gateway-secret-7731"
    reply_with(
        router,
        401,
        api_error(f"unknown token {key}", type_="authentication_error", code=None),
    )

    with httpx.Client() as http_client:
        client = OpenAIClient(key, base_url=BASE_URL, http_client=http_client)
        with pytest.raises(ModelRequestError) as caught:
            client.complete(ask())

    assert key not in str(caught.value)
    assert "unknown token" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (403, ModelRequestError),
        (404, ModelRequestError),
        (422, ModelRequestError),
        (408, ProviderOutageError),
        (409, OverloadedError),
    ],
)
def test_other_statuses(router, client, status, error_class):
    reply_with(
        router,
        status,
        api_error(f"status {status} says no", type_="invalid_request_error", code=None),
    )

    with pytest.raises(error_class) as caught:
        client.complete(ask())

    assert type(caught.value) is error_class
    assert caught.value.status_code == status
    assert f"status {status} says no" in str(caught.value)


def test_404_unknown_model_names_the_model(router, client):
    reply_with(
        router,
        404,
        api_error(
            "The model `gpt-nope` does not exist or you do not have access to it.",
            type_="invalid_request_error",
            code="model_not_found",
        ),
    )

    with pytest.raises(ModelRequestError, match="gpt-nope") as caught:
        client.complete(ask())

    assert caught.value.status_code == 404


# --- configuration


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_api_key(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", value)

    with pytest.raises(ModelRequestError, match="OPENAI_API_KEY is not set"):
        OpenAIClient.from_config(ProviderConfig.from_env())


def test_get_client_without_a_key_fails_as_a_request_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    clear_client_cache()

    with pytest.raises(ModelRequestError, match="OPENAI_API_KEY is not set"):
        get_client("openai:gpt-4o-mini")


def test_get_client_builds_the_openai_client_from_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_TIMEOUT_S", raising=False)
    clear_client_cache()

    client = get_client("openai:gpt-4o-mini")

    assert isinstance(client, OpenAIClient)
    assert client.provider == "openai"
    assert get_client("openai:gpt-4.1") is client  # reused across models and invocations
    clear_client_cache()


def test_from_env_settings_reach_the_sdk(monkeypatch, router):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    monkeypatch.setenv("OPENAI_TIMEOUT_S", "12.5")
    route = reply_with(router, 200, completion(content="hi"))

    with httpx.Client() as http_client:
        client = OpenAIClient.from_config(ProviderConfig.from_env(), http_client=http_client)
        assert client._sdk.max_retries == 0
        assert client._sdk.timeout == 12.5
        assert client.complete(ask()).message.content == "hi"

    assert route.call_count == 1  # went to OPENAI_BASE_URL
    assert route.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"


def test_empty_base_url_means_the_default(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    monkeypatch.delenv("OPENAI_TIMEOUT_S", raising=False)

    client = OpenAIClient.from_config(ProviderConfig.from_env())

    assert str(client._sdk.base_url) == DEFAULT_BASE_URL + "/"
    assert client._sdk.timeout == 60.0


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_bad_timeout_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_TIMEOUT_S", value)

    with pytest.raises(ConfigError, match="OPENAI_TIMEOUT_S") as caught:
        OpenAIClient.from_config(ProviderConfig.from_env())

    assert API_KEY not in str(caught.value)


def test_importing_the_module_does_not_import_the_sdk():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "layers" / "agentkit")}
    code = (
        "import sys, agentkit.llm.openai_client, agentkit.llm; "
        "assert 'openai' not in sys.modules, 'openai was imported'; "
        "agentkit.llm.openai_client.OpenAIClient('sk-x'); "
        "assert 'openai' in sys.modules, 'the check cannot see the SDK'"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr


# --- the SDK's own httpx2 transport (SDK releases built on httpx2)


class TestHttpx2Transport:
    @pytest.fixture
    def httpx2(self):
        # The installed SDK is built on httpx2 (its own dependency): fail, never skip, if not.
        import openai

        if not hasattr(openai, "DefaultHttpx2Client"):
            pytest.fail(f"openai {openai.__version__} is not built on httpx2: install the "
                        "providers extra's openai (pip install -e '.[providers]')",
                        pytrace=False)
        import httpx2

        return httpx2

    def test_plain_answer(self, httpx2):
        seen: list[Any] = []

        def handler(request):
            seen.append(request)
            return httpx2.Response(200, json=completion(content="4", cached_tokens=3))

        with httpx2.Client(transport=httpx2.MockTransport(handler)) as http_client:
            client = OpenAIClient(API_KEY, base_url=BASE_URL, http_client=http_client)
            response = client.complete(ask())

        assert response.message.content == "4"
        assert response.usage.cached_tokens == 3
        assert str(seen[0].url) == COMPLETIONS_URL
        assert json.loads(seen[0].content)["messages"] == [
            {"role": "user", "content": "What is 2 + 2?"}
        ]

    def test_timeout_is_retryable(self, httpx2):
        def handler(request):
            raise httpx2.ReadTimeout("timed out", request=request)

        with httpx2.Client(transport=httpx2.MockTransport(handler)) as http_client:
            client = OpenAIClient(API_KEY, base_url=BASE_URL, http_client=http_client)
            with pytest.raises(RetryableModelError, match="timed out"):
                client.complete(ask())

    def test_429_with_retry_after(self, httpx2):
        calls = []

        def handler(request):
            calls.append(request)
            return httpx2.Response(
                429,
                headers={"retry-after": "3"},
                json=api_error("Rate limit reached", type_="requests", code="rate_limit_exceeded"),
            )

        with httpx2.Client(transport=httpx2.MockTransport(handler)) as http_client:
            client = OpenAIClient(API_KEY, base_url=BASE_URL, http_client=http_client)
            with pytest.raises(RetryableModelError) as caught:
                client.complete(ask())

        assert caught.value.retry_after_s == 3.0
        assert len(calls) == 1
