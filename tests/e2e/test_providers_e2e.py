"""Each real provider client inside the deployed LLM Lambda, against scripted wire replies.

The fake providers answer on 127.0.0.1 in each provider's own format; the keys come from
LocalStack's Secrets Manager; the rest of the path is the real stack.
"""

from __future__ import annotations

import json

import pytest

from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.paths import Layout
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import FAKE_KEYS
from tests.support.fake_providers import FakeProviders, Reply

MODELS = {
    "openai": "openai:gpt-4o-mini",
    "openrouter": "openrouter:openai/gpt-4o-mini",
    "anthropic": "anthropic:claude-sonnet-4-5",
    "google": "google:gemini-2.5-flash",
}
KEY_NAMES = {"openai": "OPENAI_API_KEY", "openrouter": "OPENROUTER_API_KEY",
             "anthropic": "ANTHROPIC_API_KEY", "google": "GOOGLE_API_KEY"}


def _tool_result_texts(provider: str, body: dict) -> list[str]:
    """The tool results the provider received in the second request, in its own format."""
    if provider in {"openai", "openrouter"}:
        return [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if provider == "anthropic":
        return [block["content"] if isinstance(block["content"], str)
                else block["content"][0]["text"]
                for message in body["messages"] if isinstance(message["content"], list)
                for block in message["content"] if block.get("type") == "tool_result"]
    return [json.dumps(part["functionResponse"]["response"])
            for content in body["contents"] for part in content.get("parts", [])
            if "functionResponse" in part]


@pytest.mark.parametrize("provider", list(MODELS))
def test_a_task_through_each_provider(
    provider: str, api: OpspawnClient, fake_providers: FakeProviders
) -> None:
    before = len(fake_providers.requests_for(provider))
    fake_providers.script(
        provider,
        Reply(tool_calls=[("calculator", {"expression": "17 * 23"}),
                          ("current_time", {"timezone": "UTC"})],
              input_tokens=1200, output_tokens=40, cached_tokens=200),
        Reply(text="17 * 23 = 391.", input_tokens=1400, output_tokens=10),
    )
    task = api.submit({"goal": "What is 17 * 23, and what time is it?",
                       "model": MODELS[provider]})
    view = api.wait(task.task_id, timeout_s=120, poll_s=0.3)

    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "17 * 23 = 391."
    assert [m.role for m in view.messages] == ["system", "user", "assistant", "tool", "tool",
                                               "assistant"]
    assert view.messages[2].model == MODELS[provider]
    assert view.messages[3].content == "391"
    assert view.usage.input_tokens == 2600 and view.usage.output_tokens == 50
    assert view.usage.cached_tokens == 200 and view.usage.model_calls == 2
    assert view.usage.cost_usd > 0  # priced from the table

    first, second = fake_providers.requests_for(provider)[before:]
    # The key came from Secrets Manager and reached the provider as a credential...
    key = FAKE_KEYS[KEY_NAMES[provider]]
    assert any(key in value for value in first.headers.values()) or key in first.path
    # ...and the second call carried the tool results back in the provider's format.
    results = _tool_result_texts(provider, second.body)
    assert len(results) == 2 and "391" in results[0]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_auth_error_fails_the_task_without_echoing_the_key(
    provider: str, api: OpspawnClient, fake_providers: FakeProviders
) -> None:
    key = FAKE_KEYS[KEY_NAMES[provider]]
    # Providers do quote (masked) keys back in 401 messages; ours quotes it whole.
    fake_providers.script(provider, Reply(error_status=401,
                                          error_message=f"Incorrect API key provided: {key}"))
    task = api.submit({"goal": "anything", "model": MODELS[provider]})
    view = api.wait(task.task_id, timeout_s=120, poll_s=0.3)
    assert view.status == TaskStatus.FAILED
    assert view.error and "HTTP 401" in view.error and "[redacted]" in view.error
    assert key not in view.model_dump_json()


def test_no_provider_key_appears_in_any_log_or_api_response(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    logs = sorted(Layout.current().lambda_logs.glob("*.log"))
    assert any("CallModel" in path.name for path in logs), [p.name for p in logs]
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "HTTP 401" in text  # the failures above were logged...
    for key in FAKE_KEYS.values():
        assert key not in text  # ...without the key
    listing = json.dumps(offline_stack.client("lambda").get_function_configuration(
        FunctionName=offline_stack.physical_id("CallModelFunction")))
    assert all(key not in listing for key in FAKE_KEYS.values())
