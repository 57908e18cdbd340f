"""What the agent loop costs in state transitions, read from Step Functions' own history.

The design (docs/state-machine.md): CallModel decides every tool call of its turn (the
gate), so the state machine only routes. A tool-using turn enters CallModel, Decide and
RunTools, whatever its number of calls: 3 transitions, within the promised 3 + n. A turn
with calls that need approval adds only their wait: the AwaitApprovals Map and one
WaitForApproval per such call.
"""

from __future__ import annotations

import json
from typing import Any

from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import ended_execution, until

TIMEOUT_S = 120

THREE_TURNS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}},
                    {"name": "current_time", "arguments": {"timezone": "UTC"}}]},
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "391 + 1"}}]},
    {"content": "17 * 23 = 391, plus one is 392."},
]
#: The promise: Plan, then per tool-using turn at most 3 + n (n = its calls), then the
#: answer turn (CallModel, Decide, Finalize, Succeeded).
PROMISED_MAX = 1 + (3 + 2) + (3 + 1) + 4
#: What the design does: a tool turn is CallModel, Decide, RunTools whatever n is.
EXPECTED_STATES = [
    "Plan",
    "CallModel", "Decide", "RunTools",
    "CallModel", "Decide", "RunTools",
    "CallModel", "Decide", "Finalize", "Succeeded",
]


def _history(offline_stack: StackOutputs, task_id: str) -> list[dict[str, Any]]:
    """The ended execution's history (Finalize writes the task's status a moment before
    the execution itself ends)."""
    sfn = offline_stack.client("stepfunctions")
    execution = ended_execution(offline_stack, task_id)
    assert execution["status"] == "SUCCEEDED"
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution["executionArn"])
    return [event for page in pages for event in page["events"]]


def _entered(history: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history
            if e["type"].endswith("StateEntered")]


def test_a_three_turn_task_enters_the_promised_number_of_states(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    task = api.submit({"goal": "What is 17 * 23, plus one, and what time is it?",
                       "model": "scripted", "tools": ["calculator", "current_time"],
                       "scripted_turns": THREE_TURNS})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    tools = [m for m in view.messages if m.role == "tool"]
    assert [(m.name, m.content, m.is_error) for m in tools][::2] == [
        ("calculator", "391", False), ("calculator", "392", False)]
    assert tools[1].name == "current_time" and not tools[1].is_error

    history = _history(offline_stack, task.task_id)
    entered = _entered(history)
    assert entered == EXPECTED_STATES
    assert len(entered) == 11 <= PROMISED_MAX  # before the lean loop: 20
    # Tasks the state machine schedules: Plan, one Lambda per model turn, one SQS message
    # per tool turn (its calls run in one RunTools invocation), Finalize.
    scheduled = [e["taskScheduledEventDetails"] for e in history
                 if e["type"] == "TaskScheduled"]
    assert [d["resourceType"] for d in scheduled] == [
        "lambda", "lambda", "sqs", "lambda", "sqs", "lambda", "lambda"]
    messages = [e for e in history if e["type"] == "TaskScheduled"
                and e["taskScheduledEventDetails"]["resourceType"] == "sqs"]
    bodies = [json.loads(e["taskScheduledEventDetails"]["parameters"])["MessageBody"]
              for e in messages]
    bodies = [json.loads(b) if isinstance(b, str) else b for b in bodies]
    assert [len(body["tool_calls"]) for body in bodies] == [2, 1]  # one message per turn


def test_a_call_that_needs_approval_adds_only_its_wait(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    # The e2e policy: http_fetch needs approval (and only 127.0.0.1). Nothing listens on
    # port 9: the approved call runs and fails, which is all the model needs here.
    fetch = {"name": "http_fetch", "arguments": {"url": "http://127.0.0.1:9/page"}}
    clock = {"name": "current_time", "arguments": {"timezone": "UTC"}}
    task = api.submit({"goal": "Fetch the page and tell the time.", "model": "scripted",
                       "tools": ["http_fetch", "current_time"],
                       "scripted_turns": [{"tool_calls": [fetch, clock]},
                                          {"content": "Done."}]})
    waiting = until(api, task.task_id, lambda v: v.status == TaskStatus.WAITING_APPROVAL
                     and any(a.status == "PENDING" for a in v.approvals))
    [approval] = waiting.approvals
    response = api.request("POST", f"/tasks/{task.task_id}/approvals/{approval.approval_id}",
                           content=json.dumps({"decision": "approve"}))
    assert response.status_code == 200, response.text
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    fetched, timed = [m for m in view.messages if m.role == "tool"]
    assert fetched.name == "http_fetch" and fetched.is_error  # ran (approved), port closed
    assert "denied" not in (fetched.content or "")
    assert timed.name == "current_time" and not timed.is_error

    entered = _entered(_history(offline_stack, task.task_id))
    assert entered == [
        "Plan",
        "CallModel", "Decide", "AwaitApprovals", "WaitForApproval", "RunTools",
        "CallModel", "Decide", "Finalize", "Succeeded",
    ]
