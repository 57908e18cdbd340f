"""One real tool-call round trip against the Gemini API. Needs GOOGLE_API_KEY (or
GEMINI_API_KEY); costs a fraction of a cent (free tier: nothing).

Run: GOOGLE_API_KEY=... pytest -m live tests/live/test_google_live.py
(`GOOGLE_LIVE_MODEL` picks the model, default gemini-2.5-flash; GOOGLE_BASE_URL is honoured.)
"""

from __future__ import annotations

import os

import pytest

from agentkit.llm.base import LLMRequest
from agentkit.llm.google_client import GoogleClient
from agentkit.models import INVALID_ARGUMENTS_KEY, Message
from agentkit.tools.registry import default_registry

pytestmark = pytest.mark.live


def test_tool_call_round_trip():
    if not (
        os.environ.get("GOOGLE_API_KEY", "").strip() or os.environ.get("GEMINI_API_KEY", "").strip()
    ):
        pytest.skip("GOOGLE_API_KEY / GEMINI_API_KEY is not set: live Google test skipped")
    client = GoogleClient.from_env()
    registry = default_registry()
    model = os.environ.get("GOOGLE_LIVE_MODEL", "gemini-2.5-flash")
    messages = [
        Message(
            role="system",
            content="Use the calculator tool for every arithmetic question; never compute "
            "in your head. Reply with the number only once you have the tool's result.",
        ),
        Message(role="user", content="What is 1234 * 5678?"),
    ]
    tools = registry.specs(["calculator"])

    first = client.complete(LLMRequest(model=model, messages=messages, tools=tools))

    assert first.finish_reason == "tool_calls", first
    assert first.message.tool_calls, first
    call = first.message.tool_calls[0]
    assert call.name == "calculator"
    assert INVALID_ARGUMENTS_KEY not in call.arguments
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert first.usage.model_calls == 1

    results = [registry.run(c, allowed=["calculator"]) for c in first.message.tool_calls]
    assert not any(r.is_error for r in results), results
    messages += [first.message, *(r.to_message() for r in results)]

    # The replayed call goes back without Gemini's real thought signature (agentkit has
    # nowhere to keep it): this second request is what proves the placeholder is accepted.
    second = client.complete(LLMRequest(model=model, messages=messages, tools=tools))

    assert second.finish_reason == "stop", second
    assert second.message.content is not None
    assert "7006652" in second.message.content.replace(",", "").replace(" ", "")
