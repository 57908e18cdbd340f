"""A long task with large tool outputs on a model whose window is 16k tokens, through the
deployed stack: the conversation is compacted before it outgrows the window.

The model is `openai:gpt-3.5-turbo` (16,385 tokens in llm/context_windows.json), answered
by the loopback fake provider; the tool is the test MCP server's `dump` (20,000 characters a
call). Every request the provider receives is counted by the loop's own estimate (plus the
reply's room) and, stricter still, by the bytes of its JSON body.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.memory.context import SUMMARY_INSTRUCTIONS, estimate_request_tokens
from agentkit.models.domain import Message, TaskStatus, ToolCall, ToolSpec
from opspawn.client import OpspawnClient
from tests.support.fake_providers import FakeProviders, Reply, estimate_tokens

MODEL = "openai:gpt-3.5-turbo"
WINDOW = 16_385
DEFAULT_RESERVE = 4096
TURNS = 30
OUTPUT_CHARS = 20_000
GOAL = "Dump the log 29 times and tell me how many lines you read."


class Provider:
    """Plays the task: a dump call on each of the first 29 turns, then the answer; any
    summary request gets a short summary. Counts what it plays."""

    def __init__(self) -> None:
        self.turns = 0
        self.summaries = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        tokens = estimate_tokens(body)  # a plausible usage
        with self.lock:
            if body["messages"][0]["content"] == SUMMARY_INSTRUCTIONS:
                self.summaries += 1
                return Reply(text=f"Summary {self.summaries}: the log was dumped; each dump "
                             "holds numbered lines.", input_tokens=tokens, output_tokens=20)
            self.turns += 1
            if self.turns < TURNS:
                return Reply(tool_calls=[("slow__dump", {"size": OUTPUT_CHARS})],
                             input_tokens=tokens, output_tokens=15)
            return Reply(text="I read 29 dumps.", input_tokens=tokens, output_tokens=8)


@pytest.fixture
def provider(fake_providers: FakeProviders) -> Iterator[Provider]:
    played = Provider()
    fake_providers.respond("openai", played)
    try:
        yield played
    finally:
        fake_providers.respond("openai", None)


def _as_messages(body: dict[str, Any]) -> tuple[list[Message], list[ToolSpec]]:
    """The wire body read back into the loop's shapes, to count it by the loop's estimate."""
    messages = []
    for wire in body["messages"]:
        calls = [ToolCall(id=c["id"], name=c["function"]["name"],
                          arguments=json.loads(c["function"]["arguments"] or "{}"))
                 for c in wire.get("tool_calls") or []]
        messages.append(Message(role=wire["role"], content=wire.get("content"), tool_calls=calls,
                                tool_call_id=wire.get("tool_call_id")))
    tools = [ToolSpec(name=t["function"]["name"], description=t["function"].get("description", ""),
                      parameters=t["function"].get("parameters", {}))
             for t in body.get("tools") or []]
    return messages, tools


def test_a_30_turn_task_with_20_kb_outputs_fits_a_16k_window(
    api: OpspawnClient, fake_providers: FakeProviders, provider: Provider
) -> None:
    before = len(fake_providers.requests_for("openai"))
    task = api.submit({"goal": GOAL, "model": MODEL, "tools": ["slow__dump"],
                       "max_turns": TURNS})
    view = api.wait(task.task_id, timeout_s=900, poll_s=1.0)

    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "I read 29 dumps." and view.turn == TURNS
    # The full history stays with the task.
    assert len(view.messages) == 2 + (TURNS - 1) * 2 + 1
    dumps = [m for m in view.messages if m.role == "tool"]
    assert len(dumps) == TURNS - 1
    # Each dump is its 20,000 characters (the server's start has its own budget,
    # connect_timeout_s, so a loaded machine does not turn a dump into an error).
    assert [len(m.content or "") for m in dumps] == [OUTPUT_CHARS] * len(dumps)
    assert not any(m.is_error for m in dumps)

    received = fake_providers.requests_for("openai")[before:]
    assert len(received) == TURNS + provider.summaries and provider.summaries >= 10
    assert all(r.status == 200 for r in received)
    for request in received:
        messages, tools = _as_messages(request.body)
        reserve = request.body.get("max_completion_tokens") or DEFAULT_RESERVE
        # by the loop's own estimate, with the reply's room
        assert estimate_request_tokens(messages, tools) + reserve <= WINDOW
        # stricter: every byte of the JSON body, three to a token
        raw = len(json.dumps(request.body, ensure_ascii=False).encode())
        assert math.ceil(raw / 3) <= WINDOW
    # The last request still carried the system prompt, the goal, a summary and the
    # latest dump with its call.
    last = received[-1].body["messages"]
    assert [m["role"] for m in last[:3]] == ["system", "user", "user"]
    assert last[1]["content"] == GOAL and last[2]["content"].startswith("[Summary of turns 1-")
    assert last[-2]["tool_calls"][0]["id"] == last[-1]["tool_call_id"]

    # The timeline shows the compactions, and their usage is in the task's.
    events = api.events(task.task_id)
    compactions = [e for e in events if e.kind == "compaction"]
    assert len(compactions) >= 10
    assert all(e.detail["tokens_after"] <= WINDOW - DEFAULT_RESERVE for e in compactions)
    calls = [e for e in events if e.kind == "model_call"]
    assert len(calls) == TURNS
    assert view.usage.model_calls == TURNS + provider.summaries
    assert view.usage.input_tokens == sum(e.usage.input_tokens for e in calls + compactions
                                          if e.usage is not None)
