"""One real tool-call round trip against the Gemini API. Needs GOOGLE_API_KEY (or
GEMINI_API_KEY); costs a fraction of a cent (free tier: nothing).

Run: GOOGLE_API_KEY=... pytest -m live tests/live/test_google_live.py
(`GOOGLE_LIVE_MODEL` picks the model, default gemini-2.5-flash; GOOGLE_BASE_URL is honoured.)
"""

from __future__ import annotations

import os

import pytest

from agentkit.llm.google_client import GoogleClient
from tests.live.roundtrip import tool_call_round_trip

pytestmark = pytest.mark.live


def test_tool_call_round_trip():
    if not (
        os.environ.get("GOOGLE_API_KEY", "").strip() or os.environ.get("GEMINI_API_KEY", "").strip()
    ):
        pytest.skip("GOOGLE_API_KEY / GEMINI_API_KEY is not set: live Google test skipped")
    model = os.environ.get("GOOGLE_LIVE_MODEL", "gemini-2.5-flash")
    # The second request replays Gemini's call without its real thought signature
    # (agentkit has nowhere to keep it): that is what proves the placeholder is accepted.
    tool_call_round_trip(GoogleClient.from_env(), model)
