"""OpenRouterClient through the real `openai` SDK against mocked OpenRouter HTTP.

Nothing leaves the machine: the SDK talks to http://127.0.0.1:9/api/v1 and `respx`
answers on an `httpx.Client` handed to the SDK (as in test_openai_client.py) with bodies
in OpenRouter's actual wire format (Chat Completions plus OpenRouter's extra fields).
The request/response mapping itself is the OpenAI client's and is tested there.
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
from agentkit.llm import providers
from agentkit.llm.base import (
    LLMRequest,
    ModelRequestError,
    ProviderOutageError,
    RetryableModelError,
    parse_model,
)
from agentkit.llm.openrouter_client import DEFAULT_BASE_URL, DEFAULT_SITE_URL, OpenRouterClient
from agentkit.models.domain import Message, ToolCall, ToolSpec
from tests.support.providers import openai_problems, published_tools

BASE_URL = "http://127.0.0.1:9/api/v1"
COMPLETIONS_URL = f"{BASE_URL}/chat/completions"
API_KEY = "sk-or-v1-unitTEST" + "0" * 48 + "Zq9X"
MODEL_SPEC = "openrouter:meta-llama/llama-3.3-70b-instruct"
MODEL = "meta-llama/llama-3.3-70b-instruct"
REPO_ROOT = Path(__file__).resolve().parents[3]
ENV_NAMES = (
    "OPENROUTER_API_KEY",
    "OPENROUTER_BASE_URL",
    "OPENROUTER_TIMEOUT_S",
    "OPENROUTER_SITE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_TIMEOUT_S",
)

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)


# --- OpenRouter's wire format


def completion(
    *,
    content: str | None = "",
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 120,
    completion_tokens: int = 18,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "reasoning": None,
    }
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "gen-1741569952-Qp9sXyZ0aBcDeFgHiJkL",
        "provider": "DeepInfra",
        "model": MODEL,
        "object": "chat.completion",
        "created": 1741569952,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "index": 0,
                "message": message,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost": 0.0000216,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def tool_call(call_id: str, name: str, arguments: str, index: int = 0) -> dict[str, Any]:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def api_error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    """OpenRouter's error body: `code` is the numeric HTTP status."""
    return {"error": {"code": code, "message": message, **extra}}


def ask(prompt: str = "What is 2 + 2?", **kwargs: Any) -> LLMRequest:
    return LLMRequest(model=MODEL, messages=[Message(role="user", content=prompt)], **kwargs)


def sent_body(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)


# --- fixtures


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
def http_client():
    with httpx.Client() as client:
        yield client


@pytest.fixture
def client(http_client):
    return OpenRouterClient(API_KEY, base_url=BASE_URL, http_client=http_client)


def reply_with(router: respx.MockRouter, status: int, body: Any, **kwargs: Any) -> respx.Route:
    return router.post(COMPLETIONS_URL).mock(
        return_value=httpx.Response(status, json=body, **kwargs)
    )


# --- requests


def test_request_goes_to_the_configured_base_url_with_attribution_headers(
    monkeypatch, router, http_client
):
    monkeypatch.setenv("OPENROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", BASE_URL)
    monkeypatch.setenv("OPENROUTER_SITE_URL", "https://opspawn.example")
    monkeypatch.setenv("OPENROUTER_TIMEOUT_S", "30")
    route = reply_with(router, 200, completion(content="4"))
    provider, model = parse_model(MODEL_SPEC)

    client = OpenRouterClient.from_config(ProviderConfig.from_env(), http_client=http_client)
    response = client.complete(
        LLMRequest(model=model, messages=[Message(role="user", content="What is 2 + 2?")])
    )

    assert provider == "openrouter"
    assert response.message.content == "4"
    assert route.call_count == 1
    sent = route.calls.last.request
    assert str(sent.url) == COMPLETIONS_URL
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["http-referer"] == "https://opspawn.example"
    assert sent.headers["x-title"] == "Opspawn"
    assert sent_body(route) == {
        "model": "meta-llama/llama-3.3-70b-instruct",  # the slash survives
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
    }
    assert client._sdk.timeout == 30.0
    assert client._sdk.max_retries == 0


def test_defaults(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("OPENROUTER_SITE_URL", "  ")  # blank means the default
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/not-openrouter")  # not ours

    # No request: nothing may leave the machine.
    client = OpenRouterClient.from_config(ProviderConfig.from_env())

    assert str(client._sdk.base_url).rstrip("/") == DEFAULT_BASE_URL
    assert DEFAULT_BASE_URL == "https://openrouter.ai/api/v1"
    assert client._sdk.timeout == 60.0
    headers = client._sdk.default_headers
    assert headers["HTTP-Referer"] == DEFAULT_SITE_URL == "https://github.com/opspawn/opspawn"
    assert headers["X-Title"] == "Opspawn"


def test_model_names_with_a_variant_suffix_keep_it():
    assert parse_model("openrouter:meta-llama/llama-3.3-70b-instruct:free") == (
        "openrouter",
        "meta-llama/llama-3.3-70b-instruct:free",
    )


def test_tool_call_round_trip(router, client):
    route = router.post(COMPLETIONS_URL).mock(
        side_effect=[
            httpx.Response(
                200,
                json=completion(
                    tool_calls=[
                        tool_call("call_0_5f6e", "calculator", '{"expression": "1234 * 5678"}')
                    ],
                    finish_reason="tool_calls",
                ),
            ),
            httpx.Response(200, json=completion(content="1234 * 5678 = 7006652.")),
        ]
    )
    messages = [
        Message(role="system", content="Use the calculator."),
        Message(role="user", content="What is 1234 * 5678?"),
    ]

    first = client.complete(LLMRequest(model=MODEL, messages=messages, tools=[CALCULATOR]))

    assert first.finish_reason == "tool_calls"
    assert first.message.tool_calls == [
        ToolCall(id="call_0_5f6e", name="calculator", arguments={"expression": "1234 * 5678"})
    ]
    assert first.usage.input_tokens == 120 and first.usage.model_calls == 1
    assert sent_body(route)["tools"][0]["function"]["name"] == "calculator"

    messages += [
        first.message,
        Message(role="tool", tool_call_id="call_0_5f6e", name="calculator", content="7006652"),
    ]
    second = client.complete(LLMRequest(model=MODEL, messages=messages, tools=[CALCULATOR]))

    assert second.finish_reason == "stop"
    assert second.message.content == "1234 * 5678 = 7006652."
    assert sent_body(route)["model"] == MODEL
    assert sent_body(route)["messages"][2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0_5f6e",
                    "type": "function",
                    "function": {
                        "name": "calculator",
                        "arguments": '{"expression": "1234 * 5678"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0_5f6e", "content": "7006652"},
    ]
    assert route.call_count == 2


# --- errors carry the openrouter prefix


def test_published_mcp_schemas_go_out_in_openais_accepted_form(router, client):
    # OpenRouter takes OpenAI's tool format (and passes it on as-is to OpenAI-style APIs).
    tools = published_tools()
    route = reply_with(router, 200, completion(content="ok"))

    client.complete(ask(tools=tools))

    wire = sent_body(route)["tools"]
    assert [tool["function"]["name"] for tool in wire] == [spec.name for spec in tools]
    problems = {tool["function"]["name"]: openai_problems(tool["function"]["parameters"])
                for tool in wire}
    assert {name: found for name, found in problems.items() if found} == {}
    lookup = next(t for t in wire if t["function"]["name"] == "schema__lookup")["function"]
    assert lookup["parameters"] == {"type": "object", "properties": {
        "id": {"type": "string"}, "path": {"type": "string"}, "verbose": {"type": "boolean"}}}


def test_429_is_retryable_with_the_openrouter_prefix(router, client):
    route = reply_with(
        router,
        429,
        api_error(
            429,
            "Rate limit exceeded: free-models-per-min.",
            metadata={"headers": {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"}},
        ),
        headers={"retry-after": "4"},
    )

    with pytest.raises(RetryableModelError) as caught:
        client.complete(ask())

    error = caught.value
    assert str(error) == "openrouter: HTTP 429: Rate limit exceeded: free-models-per-min."
    assert error.status_code == 429
    assert error.retry_after_s == 4.0
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        (402, "Insufficient credits. Add more using https://openrouter.ai/credits", None),
        (400, "meta-llama/llama-nope is not a valid model ID", None),
        (502, "Provider returned error", ProviderOutageError),
    ],
)
def test_other_statuses_carry_the_prefix(router, client, status, message, error_class):
    reply_with(router, status, api_error(status, message))
    expected = error_class or ModelRequestError

    with pytest.raises(expected) as caught:
        client.complete(ask())

    assert type(caught.value) is expected
    assert str(caught.value) == f"openrouter: HTTP {status}: {message}"


def test_401_never_shows_the_key(router, client):
    reply_with(router, 401, api_error(401, f"User not found. (key {API_KEY})"))

    with pytest.raises(ModelRequestError) as caught:
        client.complete(ask())

    shown = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert str(caught.value).startswith("openrouter: HTTP 401: User not found.")
    assert API_KEY not in shown and "unitTEST" not in shown


def test_timeout_carries_the_prefix(router, client):
    router.post(COMPLETIONS_URL).mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(RetryableModelError, match=r"^openrouter: the request timed out$"):
        client.complete(ask())


def test_no_choices_carries_the_prefix(router, client):
    body = completion(content="x")
    body["choices"] = []
    reply_with(router, 200, body)

    with pytest.raises(ModelRequestError, match=r"^openrouter: the response has no choices$"):
        client.complete(ask())


# --- configuration


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_api_key(monkeypatch, value):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-not-for-openrouter")  # never borrowed
    if value is not None:
        monkeypatch.setenv("OPENROUTER_API_KEY", value)

    with pytest.raises(ModelRequestError, match=r"^OPENROUTER_API_KEY is not set \(looked in"):
        OpenRouterClient.from_config(ProviderConfig.from_env())


def test_empty_key_in_the_constructor_names_the_openrouter_variable():
    with pytest.raises(ModelRequestError, match=r"^OPENROUTER_API_KEY is not set$"):
        OpenRouterClient("")


def test_bad_timeout_names_the_openrouter_variable(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("OPENROUTER_TIMEOUT_S", "soon")

    with pytest.raises(ConfigError, match="OPENROUTER_TIMEOUT_S"):
        OpenRouterClient.from_config(ProviderConfig.from_env())


def test_registered_as_the_openrouter_provider():
    module_name, _, class_name = providers.PROVIDER_CLIENTS["openrouter"].partition(":")
    module = __import__(module_name, fromlist=[class_name])

    assert getattr(module, class_name) is OpenRouterClient
    assert OpenRouterClient.provider == "openrouter"


def test_importing_the_module_does_not_import_the_sdk():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "layers" / "agentkit")}
    code = (
        "import sys, agentkit.llm.openrouter_client, agentkit.llm; "
        "assert 'openai' not in sys.modules, 'openai was imported'; "
        "agentkit.llm.openrouter_client.OpenRouterClient('sk-or-x'); "
        "assert 'openai' in sys.modules, 'the check cannot see the SDK'"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
