"""Tools end to end on the offline stack: MCP tools through the deployed functions, a hung
tool, a 1 MB output (claim check to S3) and a poison message on the tool queue."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from agentkit.models.api import TaskView
from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs

TIMEOUT_S = 120


def _run(api: OpspawnClient, tools: list[str], calls: list[dict[str, Any]]) -> TaskView:
    task = api.submit({"goal": "use the tools", "model": "scripted", "tools": tools,
                       "scripted_turns": [{"tool_calls": calls}, {"content": "done"}]})
    return api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)


def test_an_mcp_tool_through_the_deployed_stack(api: OpspawnClient) -> None:
    view = _run(api, ["time__get_current_time"],
                [{"name": "time__get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}])
    assert view.status == TaskStatus.SUCCEEDED, view.error
    result = view.messages[3]
    assert result.name == "time__get_current_time" and not result.is_error, result.content
    assert json.loads(result.content or "{}")["timezone"] == "Asia/Tokyo"


def test_an_mcp_tool_the_server_does_not_offer_fails_the_task_at_plan(
    api: OpspawnClient,
) -> None:
    # Submit checks an MCP name by its server only (the API carries no MCP SDK); Plan lists
    # the server and ends the task naming what it offers.
    task = api.submit({"goal": "use the tools", "model": "scripted",
                       "tools": ["time__no_such_tool"], "scripted_turns": [{"content": "x"}]})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.FAILED
    assert view.error == (
        "UnknownToolError: unknown tool 'time__no_such_tool'; "
        "time__* offers: time__convert_time, time__get_current_time"
    )


def test_a_hung_tool_ends_as_a_timeout_result_not_a_stuck_task(api: OpspawnClient) -> None:
    started = time.monotonic()
    view = _run(api, ["slow__sleep"], [{"name": "slow__sleep", "arguments": {"seconds": 600}}])
    assert view.status == TaskStatus.SUCCEEDED, view.error
    result = view.messages[3]
    assert result.is_error and "timed out after 3 s" in (result.content or "")
    assert time.monotonic() - started < 60


def test_a_one_megabyte_output_is_kept_in_s3(api: OpspawnClient,
                                             offline_stack: StackOutputs) -> None:
    size = 1_048_576
    view = _run(api, ["slow__dump"], [{"name": "slow__dump", "arguments": {"size": size}}])
    assert view.status == TaskStatus.SUCCEEDED, view.error
    result = view.messages[3]
    assert not result.is_error
    assert result.content_ref and result.content_ref.startswith("s3://")
    assert (result.content_bytes or 0) >= size and len(result.content or "") < 3_000
    bucket, _, key = result.content_ref.removeprefix("s3://").partition("/")
    stored = offline_stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored.decode().startswith("line 0000000\nline 0000001\n")
    assert len(stored) == result.content_bytes


def test_a_poison_message_goes_to_the_dead_letter_queue(offline_stack: StackOutputs) -> None:
    sqs = offline_stack.client("sqs")
    queue_url = offline_stack.outputs["ToolQueueUrl"]
    dlq_url = offline_stack.outputs["ToolDeadLetterQueueUrl"]
    sqs.purge_queue(QueueUrl=dlq_url)
    sqs.send_message(QueueUrl=queue_url, MessageBody="{not json: a poison message")
    deadline = time.monotonic() + 90  # 3 deliveries, 5 s visibility apart
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=2,
                                       AttributeNames=["ApproximateReceiveCount"])
        for message in messages.get("Messages", []):
            assert message["Body"] == "{not json: a poison message"
            return
    pytest.fail("the poison message never reached the dead-letter queue")
