"""One real tool-call round trip against Anthropic. Needs ANTHROPIC_API_KEY; costs a fraction
of a cent.

Run: ANTHROPIC_API_KEY=... pytest -m live tests/live/test_anthropic_live.py
(`ANTHROPIC_LIVE_MODEL` picks the model, default claude-haiku-4-5; ANTHROPIC_BASE_URL is
honoured.)
"""

from __future__ import annotations

import os

import pytest

from agentkit.llm.anthropic_client import AnthropicClient
from agentkit.llm.base import LLMRequest
from agentkit.models import INVALID_ARGUMENTS_KEY, Message
from agentkit.tools.registry import default_registry

pytestmark = pytest.mark.live


def test_tool_call_round_trip():
    if not os.environ.get("ANTHROPIC_API_KEY", "").strip():
        pytest.skip("ANTHROPIC_API_KEY is not set: live Anthropic test skipped")
    client = AnthropicClient.from_env()
    registry = default_registry()
    model = os.environ.get("ANTHROPIC_LIVE_MODEL", "claude-haiku-4-5")
    messages = [
        Message(
            role="system",
            content="Use the calculator tool for every arithmetic question; never compute "
            "in your head. Reply with the number only once you have the tool's result.",
        ),
        Message(role="user", content="What is 1234 * 5678?"),
    ]
    tools = registry.specs(["calculator"])

    first = client.complete(LLMRequest(model=model, messages=messages, tools=tools, max_tokens=512))

    assert first.finish_reason == "tool_calls", first
    assert first.message.tool_calls, first
    call = first.message.tool_calls[0]
    assert call.name == "calculator"
    assert call.id.startswith("toolu_")
    assert INVALID_ARGUMENTS_KEY not in call.arguments
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert first.usage.model_calls == 1

    results = [registry.run(c, allowed=["calculator"]) for c in first.message.tool_calls]
    assert not any(r.is_error for r in results), results
    # The results go back as tool_result blocks in one user message.
    messages += [first.message, *(r.to_message() for r in results)]

    second = client.complete(
        LLMRequest(model=model, messages=messages, tools=tools, max_tokens=512)
    )

    assert second.finish_reason == "stop", second
    assert second.message.content is not None
    assert "7006652" in second.message.content.replace(",", "").replace(" ", "")
