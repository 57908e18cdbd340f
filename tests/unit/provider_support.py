"""Test data the provider client tests share (test_openai_client, test_anthropic_client,
test_google_client): the tool declarations they send. Wire-format builders stay in each
test module: every provider's wire format is its own."""

from __future__ import annotations

from agentkit.models import ToolSpec

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. '2 + 2'"}},
        "required": ["expression"],
    },
)
# A plain hand-written schema (test_google_client declares a pydantic-shaped one).
CURRENT_TIME = ToolSpec(
    name="current_time",
    description="The current time in a time zone.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "default": "UTC"}},
    },
)
