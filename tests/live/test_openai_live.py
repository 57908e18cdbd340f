"""One real tool-call round trip against OpenAI. Needs OPENAI_API_KEY; costs a fraction of a cent.

Run: OPENAI_API_KEY=... pytest -m live tests/live/test_openai_live.py
(`OPENAI_LIVE_MODEL` picks the model, default gpt-4o-mini; OPENAI_BASE_URL is honoured.)
"""

from __future__ import annotations

import os

import pytest

from agentkit.llm.openai_client import OpenAIClient
from tests.live.roundtrip import tool_call_round_trip

pytestmark = pytest.mark.live


def test_tool_call_round_trip():
    if not os.environ.get("OPENAI_API_KEY", "").strip():
        pytest.skip("OPENAI_API_KEY is not set: live OpenAI test skipped")
    model = os.environ.get("OPENAI_LIVE_MODEL", "gpt-4o-mini")
    tool_call_round_trip(OpenAIClient.from_env(), model)
