"""POST /tasks/{id}/messages through the tasks function's handler on moto: a follow-up
starts a new run (its own execution), is refused (409) or queued while a run is active,
works once per Idempotency-Key, names the field of a bad body; a cancel discards what was
queued; GET /tasks/{id} lists the runs."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from agentkit.loop.finalize import end_task
from agentkit.loop.runs import step_functions_run_starter
from agentkit.models.domain import Message, Task, TaskStatus, Usage
from agentkit.store import TaskStore
from tests.support.api_events import EXAMPLE_TENANT, call_handler, keyed, task_event
from tests.support.aws import load_handler

TASK = "tsk_followup"


@pytest.fixture
def ended(store: TaskStore, state_machine_arn: str) -> Task:
    task = Task(task_id=TASK, tenant_id=EXAMPLE_TENANT, goal="What is 2 + 2?",
                model="scripted", max_turns=3, status=TaskStatus.SUCCEEDED, turn=1,
                answer="4", usage=Usage(input_tokens=40, output_tokens=2, model_calls=1))
    store.create_task(task)
    store.put_message(TASK, 1, 0, Message(role="assistant", content="4"))
    return task


def _message_event(body: Any, tenant: str = EXAMPLE_TENANT, task_id: str = TASK,
                   key: str | None = None) -> dict[str, Any]:
    event = task_event("tasks_cancel.json", task_id, tenant)
    event.update(path=f"/tasks/{task_id}/messages", resource="/tasks/{task_id}/messages",
                 body=body if isinstance(body, str) else json.dumps(body))
    event.setdefault("headers", {}).setdefault("Content-Type", "application/json")
    event.setdefault("multiValueHeaders", {}).setdefault("Content-Type", ["application/json"])
    return keyed(event, key)


def _post(body: Any, **options: Any) -> tuple[int, dict[str, Any]]:
    return call_handler(load_handler("tasks"), _message_event(body, **options))


def test_a_follow_up_starts_a_run_of_its_own_and_get_lists_the_runs(
    ended: Task, store: TaskStore, state_machine_arn: str
) -> None:
    status, body = _post({"content": "And 2 + 3?"})
    assert status == 202, body
    assert (body["follow_up"], body["state"], body["run"]) == (1, "started", 2)
    assert body["task"]["run"] == 2 and body["task"]["status"] == "QUEUED"
    task = store.require_task(TASK)
    execution = boto3.client("stepfunctions").describe_execution(
        executionArn=task.execution_arn)
    assert execution["name"] == f"{TASK}-run-2"
    assert json.loads(execution["input"]) == {"task_id": TASK, "run": 2}

    status, view = call_handler(load_handler("tasks"), task_event("tasks_get_task.json", TASK))
    assert status == 200, view
    assert [(r["run"], r["follow_up"], r["status"]) for r in view["runs"]] == [
        (1, None, "SUCCEEDED"), (2, 1, "QUEUED")]
    assert view["runs"][0]["usage"]["input_tokens"] == 40 and view["runs"][0]["answer"] == "4"
    assert view["usage"]["input_tokens"] == 40 and view["queued_follow_ups"] == 0


def test_while_a_run_is_active_a_follow_up_is_refused_or_queued_then_runs_after_it(
    ended: Task, store: TaskStore, state_machine_arn: str
) -> None:
    assert _post({"content": "first"})[0] == 202  # run 2 is now active
    status, body = _post({"content": "too soon"})
    assert status == 409
    assert body["error"] == "task_busy" and "QUEUED (run 2)" in body["message"]
    assert store.require_task(TASK).follow_ups == 1  # the refused one was not stored

    status, body = _post({"content": "after that", "on_busy": "enqueue"})
    assert status == 202, body
    assert (body["follow_up"], body["state"], body["run"]) == (2, "queued", None)

    # Run 2 ends (Finalize): the queued follow-up starts run 3.
    store.update_task(TASK, changes={"status": "RUNNING"})
    end_task(TASK, "succeeded", store=store, start_execution=None,
             max_running_for=lambda _: 1,
             start_run=step_functions_run_starter(boto3.client("stepfunctions"),
                                                  state_machine_arn))
    task = store.require_task(TASK)
    assert (task.run, task.run_follow_up, task.status) == (3, 2, TaskStatus.QUEUED)
    assert task.execution_arn and task.execution_arn.endswith(f":{TASK}-run-3")
    assert store.get_follow_up(TASK, 2).state == "started"  # type: ignore[union-attr]


def test_failed_and_cancelled_tasks_take_follow_ups(store: TaskStore,
                                                   state_machine_arn: str) -> None:
    for task_id, status in (("tsk_failed", TaskStatus.FAILED),
                            ("tsk_cancelled", TaskStatus.CANCELLED),
                            ("tsk_budget", TaskStatus.BUDGET_EXCEEDED)):
        store.create_task(Task(task_id=task_id, tenant_id=EXAMPLE_TENANT, goal="g",
                               model="scripted", max_turns=3, status=status, error="why"))
        code, body = _post({"content": "try again"}, task_id=task_id)
        assert code == 202, body
        assert body["state"] == "started" and body["task"]["error"] is None


def test_a_cancel_discards_the_follow_ups_queued_before_it(
    ended: Task, store: TaskStore, state_machine_arn: str
) -> None:
    assert _post({"content": "first"})[0] == 202
    assert _post({"content": "queued", "on_busy": "enqueue"})[0] == 202
    status, body = call_handler(load_handler("tasks"), task_event("tasks_cancel.json", TASK))
    assert status == 200, body
    task = store.require_task(TASK)
    assert (task.status, task.run, task.queued_follow_ups) == (TaskStatus.CANCELLED, 2, 0)
    assert store.get_follow_up(TASK, 2).state == "discarded"  # type: ignore[union-attr]
    # One sent after the cancel continues the cancelled task.
    status, body = _post({"content": "start over"})
    assert status == 202 and (body["follow_up"], body["run"]) == (3, 3)


def test_idempotency_key_answers_the_same_follow_up(
    ended: Task, store: TaskStore, state_machine_arn: str
) -> None:
    first = _post({"content": "once", "on_busy": "enqueue"}, key="reply-1")
    again = _post({"content": "once", "on_busy": "enqueue"}, key="reply-1")
    assert first[0] == again[0] == 202
    assert first[1]["follow_up"] == again[1]["follow_up"] == 1
    assert store.require_task(TASK).follow_ups == 1
    status, body = _post({"content": "something else", "on_busy": "enqueue"}, key="reply-1")
    assert status == 409 and body["error"] == "conflict"
    assert "different request body" in body["message"]
    # The same key on another task is another follow-up.
    store.create_task(Task(task_id="tsk_other", tenant_id=EXAMPLE_TENANT, goal="g",
                           model="scripted", max_turns=3, status=TaskStatus.SUCCEEDED))
    status, body = _post({"content": "once", "on_busy": "enqueue"}, key="reply-1",
                         task_id="tsk_other")
    assert status == 202 and body["task_id"] == "tsk_other"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "content"),
    ({"content": ""}, "content"),
    ({"content": "a\x00b"}, "content"),
    ({"content": "x" * 16_001}, "content"),
    ({"content": "ok", "on_busy": "later"}, "on_busy"),
    ({"content": "ok", "model": "scripted"}, "model"),
])
def test_a_bad_body_is_a_400_naming_the_field(ended: Task, body: dict[str, Any],
                                              field: str) -> None:
    status, answer = _post(body)
    assert status == 400, answer
    assert answer["error"] == "validation_error"
    assert [f["field"] for f in answer["fields"]] == [field]


def test_another_tenants_task_or_an_unknown_one_is_404(ended: Task, store: TaskStore) -> None:
    status, body = _post({"content": "hi"}, tenant="intruder")
    assert status == 404 and body == {"error": "not_found",
                                      "message": f"task '{TASK}' not found"}
    status, body = _post({"content": "hi"}, task_id="tsk_nope")
    assert status == 404
    assert store.require_task(TASK).follow_ups == 0
