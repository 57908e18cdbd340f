"""Large message content goes to S3; the conversation keeps a preview and a pointer."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from agentkit.llm import LLMRequest, LLMResponse
from agentkit.llm.base import BaseLLMClient
from agentkit.loop.call_model import MAX_MODEL_CONTENT_CHARS, call_model
from agentkit.models.domain import Message, Task, TaskStatus, ToolCall, Usage
from agentkit.models.payloads import TurnRef
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry
from tests.integration.store.conftest import BUCKET


def _one_mb() -> str:
    return "".join(f"line {i:07d}\n" for i in range(80_000))  # ~1 MB


def test_a_one_megabyte_output_is_stored_in_s3(big_store: TaskStore) -> None:
    content = _one_mb()
    message = Message(role="tool", content=content, tool_call_id="c1", name="dump")
    assert big_store.put_message("tsk_A", 1, 1, message)
    [stored] = big_store.list_messages("tsk_A")
    assert stored.content_bytes == len(content.encode())
    assert stored.content_ref and stored.content_ref.startswith(f"s3://{BUCKET}/tasks/tsk_A/")
    assert len(stored.content or "") < 3_000 and "stored at s3://" in (stored.content or "")
    assert big_store.load_content(stored) == content


def test_small_content_stays_inline(big_store: TaskStore) -> None:
    big_store.put_message("tsk_A", 1, 1, Message(role="tool", content="ok", tool_call_id="c1"))
    [stored] = big_store.list_messages("tsk_A")
    assert stored.content == "ok" and stored.content_ref is None
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_without_a_bucket_large_content_is_refused_not_lost(store: TaskStore) -> None:
    with pytest.raises(ValueError, match="no ARTIFACTS_BUCKET"):
        store.put_message("tsk_A", 1, 1, Message(role="tool", content=_one_mb(),
                                                 tool_call_id="c1"))


class CapturingClient(BaseLLMClient):
    provider = "capture"

    def __init__(self) -> None:
        self.requests: list[LLMRequest] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return LLMResponse(message=Message(role="assistant", content="done"),
                           finish_reason="stop", usage=Usage(model_calls=1))


def test_the_model_gets_the_output_from_s3_capped_with_the_pointer(
    big_store: TaskStore, registry: ToolRegistry
) -> None:
    big_store.create_task(Task(task_id="tsk_A", goal="g", model="scripted", max_turns=5,
                               status=TaskStatus.RUNNING, turn=1))
    big_store.put_tool_specs("tsk_A", [])  # what Plan fixed: no tool for the model
    big_store.put_message("tsk_A", 0, 1, Message(role="user", content="g"))
    big_store.put_message("tsk_A", 1, 0, Message(role="assistant", tool_calls=[
        ToolCall(id="c1", name="dump")]))
    big_store.put_message("tsk_A", 1, 1, Message(role="tool", content=_one_mb(),
                                                 tool_call_id="c1", name="dump"))
    client = CapturingClient()
    call_model(TurnRef(task_id="tsk_A", turn=1), store=big_store, client_for=lambda *_: client)
    tool_message: Any = client.requests[0].messages[-1]
    assert tool_message.content.startswith("line 0000000\nline 0000001")
    assert len(tool_message.content) < MAX_MODEL_CONTENT_CHARS + 300
    assert "truncated for the model" in tool_message.content
    assert f"s3://{BUCKET}/" in tool_message.content
