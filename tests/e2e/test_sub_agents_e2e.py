"""Sub-agents on the offline stack: a scripted parent delegates, its sub-tasks run as their
own executions of the state machine, in parallel, while the parent waits on a task token
(WaitForChildren); their answers come back as the call's result, their usage in the
parent's; a failed sub-task is an error result; a cancel ends the whole tree."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import ended_execution, until

TIMEOUT_S = 180


def _usage(tokens: int) -> dict[str, int]:
    return {"input_tokens": tokens, "output_tokens": tokens}


def _child(expression: str, answer: str, tokens: int) -> list[dict[str, Any]]:
    """A sub-task's script: one tool turn, then its answer (two model calls)."""
    return [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": expression}}],
         "usage": _usage(tokens)},
        {"content": answer, "usage": _usage(tokens)},
    ]


def _delegate(goals: list[str], scripts: list[list[dict[str, Any]]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": "delegate",
                            "arguments": {"tasks": [{"goal": goal} for goal in goals]},
                            "child_scripts": scripts}],
            "usage": _usage(100)}


def _window(offline_stack: StackOutputs, task_id: str) -> tuple[datetime, datetime]:
    execution = ended_execution(offline_stack, task_id, timeout_s=TIMEOUT_S)
    return execution["startDate"], execution["stopDate"]


def _entered(offline_stack: StackOutputs, task_id: str) -> list[str]:
    sfn = offline_stack.client("stepfunctions")
    arn = ended_execution(offline_stack, task_id, timeout_s=TIMEOUT_S)["executionArn"]
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [e["stateEnteredEventDetails"]["name"] for page in pages for e in page["events"]
            if e["type"].endswith("StateEntered")]


def test_three_sub_goals_run_concurrently_and_answer_the_parent(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    goals = ["What is 6 * 7?", "What is 12 * 12?", "What is 9 * 9?"]
    scripts = [_child("6 * 7", "42", 10), _child("12 * 12", "144", 20),
               _child("9 * 9", "81", 30)]
    parent = api.submit({
        "goal": "Work out three products, in parallel.", "model": "scripted",
        "tools": ["delegate", "calculator"], "max_tokens": 100_000,
        "scripted_turns": [_delegate(goals, scripts),
                           {"content": "42, 144 and 81.", "usage": _usage(200)}],
    })
    view = api.wait(parent.task_id, timeout_s=TIMEOUT_S, poll_s=0.5)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "42, 144 and 81."

    # The call's result is the sub-tasks' answers, in order.
    [result] = [m for m in view.messages if m.role == "tool"]
    assert result.name == "delegate" and not result.is_error
    results = json.loads(result.content or "")["results"]
    assert [(r["goal"], r["status"], r["answer"]) for r in results] == [
        (goal, "SUCCEEDED", answer) for goal, answer in zip(goals, ["42", "144", "81"],
                                                             strict=True)]

    # Children: listed on the parent, carrying parent_id, filterable on GET /tasks.
    children = [child.task_id for child in view.children]
    assert children == [r["task_id"] for r in results]
    assert all(c.parent_id == parent.task_id and c.depth == 1 for c in view.children)
    listed = api.list_tasks(parent_id=parent.task_id)
    assert sorted(item.task_id for item in listed.items) == sorted(children)
    assert all(item.parent_id == parent.task_id for item in listed.items)
    for child_id in children:
        child = api.get(child_id)
        assert child.status == TaskStatus.SUCCEEDED and child.parent_id == parent.task_id
        assert child.tools == ["delegate", "calculator"]
        assert child.max_tokens == (100_000 - 200) // 3  # its share of what was left

    # Usage rolled up: the parent's two calls (200 + 400 tokens) and its children's
    # (2 calls each: 2 x 2 x 10, 2 x 2 x 20, 2 x 2 x 30).
    assert view.usage.total_tokens == 200 + 400 + 40 + 80 + 120
    assert view.usage.model_calls == 2 + 3 * 2

    # They ran at the same time: each started before any of them stopped (the times
    # Step Functions stored for their executions).
    windows = [_window(offline_stack, child_id) for child_id in children]
    assert max(start for start, _ in windows) < min(stop for _, stop in windows), windows
    # The parent waited on a task token, not in a Lambda, between its two model turns.
    assert _entered(offline_stack, parent.task_id) == [
        "Plan",
        "CallModel", "Decide", "WaitForChildren", "RunTools",
        "CallModel", "Decide", "Finalize", "Succeeded",
    ]


def test_a_failed_sub_task_reaches_the_parent_as_an_error_result(api: OpspawnClient) -> None:
    failing = [{"error": {"kind": "fatal", "message": "this sub-goal cannot be done"}}]
    parent = api.submit({
        "goal": "Try two things.", "model": "scripted", "tools": ["delegate", "calculator"],
        "scripted_turns": [_delegate(["What is 2 + 2?", "Do the impossible."],
                                     [_child("2 + 2", "4", 5), failing]),
                           {"content": "2 + 2 is 4; the other could not be done."}],
    })
    view = api.wait(parent.task_id, timeout_s=TIMEOUT_S, poll_s=0.5)
    assert view.status == TaskStatus.SUCCEEDED, view.error  # not the parent's failure
    [result] = [m for m in view.messages if m.role == "tool"]
    assert result.is_error and "1 of 2 sub-task(s) did not succeed" in (result.content or "")
    assert "this sub-goal cannot be done" in (result.content or "")
    assert [c.status for c in view.children] == [TaskStatus.SUCCEEDED, TaskStatus.FAILED]


def test_cancelling_the_parent_ends_its_sub_tasks(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    # Each sub-task waits for a human's approval of its call (the e2e policy: http_fetch
    # needs one; ApprovalTimeoutSeconds 60): it stays active, with no compute.
    fetch = {"name": "http_fetch", "arguments": {"url": "http://127.0.0.1:9/"}}
    held: list[dict[str, Any]] = [{"tool_calls": [fetch]}, {"content": "late"}]
    parent = api.submit({
        "goal": "Start two slow sub-tasks.", "model": "scripted",
        "tools": ["delegate", "http_fetch"],
        "scripted_turns": [_delegate(["slow one", "slow two"], [held, held]),
                           {"content": "never"}],
    })
    waiting = until(api, parent.task_id,
                    lambda v: len(v.children) == 2
                    and all(c.status == TaskStatus.WAITING_APPROVAL for c in v.children),
                    timeout_s=TIMEOUT_S)
    children = [c.task_id for c in waiting.children]
    assert api.cancel(parent.task_id).status == TaskStatus.CANCELLED
    for child_id in children:
        child = api.get(child_id)
        assert child.status == TaskStatus.CANCELLED, child_id
        assert "parent was cancelled" in (child.error or "")
        assert [a.status for a in child.approvals] == ["DENIED"]
    for task_id in (*children, parent.task_id):
        _assert_stopped(offline_stack, task_id)


def _assert_stopped(offline_stack: StackOutputs, task_id: str) -> None:
    """Ended by the cancel, nothing after its wait run. On AWS StopExecution ends it at
    once (ABORTED); LocalStack 4.8.1 applies a stop once a pending callback wait returns
    (the cancel answers them), then FAILED (see test_lifecycle_e2e._assert_stopped)."""
    execution = ended_execution(offline_stack, task_id, timeout_s=60)
    if execution["status"] != "ABORTED":
        assert execution["status"] == "FAILED", execution
        assert execution.get("error") in {"States.Runtime", "TaskCancelled"}, execution
    assert "Finalize" not in _entered(offline_stack, task_id)
