"""One real tool-call round trip through OpenRouter. Needs OPENROUTER_API_KEY; costs a
fraction of a cent.

Run: OPENROUTER_API_KEY=... pytest -m live tests/live/test_openrouter_live.py
(`OPENROUTER_LIVE_MODEL` picks the model, default openai/gpt-4o-mini — any model with tool
support; OPENROUTER_BASE_URL and OPENROUTER_SITE_URL are honoured.)
"""

from __future__ import annotations

import os

import pytest

from agentkit.llm.openrouter_client import OpenRouterClient
from agentkit.model_names import parse_model
from tests.live.roundtrip import tool_call_round_trip

pytestmark = pytest.mark.live


def test_tool_call_round_trip():
    if not os.environ.get("OPENROUTER_API_KEY", "").strip():
        pytest.skip("OPENROUTER_API_KEY is not set: live OpenRouter test skipped")
    _, model = parse_model(
        "openrouter:" + os.environ.get("OPENROUTER_LIVE_MODEL", "openai/gpt-4o-mini")
    )
    tool_call_round_trip(OpenRouterClient.from_env(), model)
