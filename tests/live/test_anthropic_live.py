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
from tests.live.roundtrip import tool_call_round_trip

pytestmark = pytest.mark.live


def test_tool_call_round_trip():
    if not os.environ.get("ANTHROPIC_API_KEY", "").strip():
        pytest.skip("ANTHROPIC_API_KEY is not set: live Anthropic test skipped")
    model = os.environ.get("ANTHROPIC_LIVE_MODEL", "claude-haiku-4-5")
    tool_call_round_trip(AnthropicClient.from_env(), model, max_tokens=512, call_id_prefix="toolu_")
