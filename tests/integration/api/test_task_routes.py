"""GET /tasks, GET /tasks/{id}/events, POST /tasks/{id}/cancel, POST /tasks with an
Idempotency-Key and GET /openapi.json: the handlers fed their sample events, on moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from agentkit.models.domain import Task, TaskEvent, TaskStatus, Usage
from agentkit.store import TaskStore
from tests.conftest import IDEMPOTENCY_TABLE
from tests.support.api_events import (
    EXAMPLE_ID,
    EXAMPLE_TENANT,
    as_tenant,
    call_handler,
    keyed,
    submit_event,
    task_event,
)
from tests.support.aws import FakeLambdaContext, load_event, load_handler


@pytest.fixture
def idempotency_table(aws: None) -> str:
    """Created by the `aws` fixture from template.yaml's IdempotencyTable."""
    return IDEMPOTENCY_TABLE


def _seed(store: TaskStore, task_id: str, *, tenant: str = EXAMPLE_TENANT, minute: int = 0,
          status: TaskStatus = TaskStatus.QUEUED, execution_arn: str | None = None) -> Task:
    task = Task(task_id=task_id, tenant_id=tenant, goal=f"goal of {task_id}", model="scripted",
                max_turns=3, status=status, execution_arn=execution_arn,
                created_at=f"2026-11-24T00:{minute:02d}:00.000Z")
    store.create_task(task)
    return task


def _list_event(tenant: str = EXAMPLE_TENANT, **query: str) -> dict[str, Any]:
    event = as_tenant(load_event("tasks_list.json"), tenant)
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    return event


def test_the_sample_list_event_lists_running_tasks(store: TaskStore) -> None:
    _seed(store, EXAMPLE_ID, status=TaskStatus.RUNNING)
    _seed(store, "tsk_queued", minute=1)
    status, body = call_handler(load_handler("tasks"), load_event("tasks_list.json"))
    assert status == 200, body
    assert [item["task_id"] for item in body["items"]] == [EXAMPLE_ID]
    assert body["next_cursor"] is None


def test_list_is_newest_first_tenant_scoped_and_the_cursor_round_trips(store: TaskStore) -> None:
    tasks = load_handler("tasks")
    mine = [_seed(store, f"tsk_mine_{i}", minute=i).task_id for i in range(5)]
    _seed(store, "tsk_theirs", tenant="intruder", minute=9)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body = call_handler(tasks, _list_event(**query))
        assert status == 200, body
        assert len(body["items"]) <= 2
        seen += [item["task_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(mine)) and pages >= 3
    # the other tenant sees only its own task, and cannot use this tenant's cursor
    status, theirs = call_handler(tasks, _list_event("intruder"))
    assert [item["task_id"] for item in theirs["items"]] == ["tsk_theirs"]
    _, first = call_handler(tasks, _list_event(limit="2"))
    status, refused = call_handler(tasks, _list_event("intruder", cursor=first["next_cursor"]))
    assert status == 400 and refused["fields"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "SLEEPING"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJwayI6ICJ4In0="}, "cursor"),  # base64 JSON of the wrong shape
    ],
)
def test_list_rejects_bad_query_naming_the_parameter(
    store: TaskStore, query: dict[str, str], field: str
) -> None:
    status, body = call_handler(load_handler("tasks"), _list_event(**query))
    assert status == 400, body
    assert body["error"] == "validation_error"
    assert [item["field"] for item in body["fields"]] == [field]


def test_events_are_the_timeline_and_tenant_scoped(store: TaskStore) -> None:
    _seed(store, EXAMPLE_ID)
    store.add_event(EXAMPLE_ID, TaskEvent(kind="model_call", turn=1, name="scripted",
                                          at="2026-11-24T00:00:01.000Z", duration_ms=12,
                                          usage=Usage(input_tokens=10, output_tokens=2)))
    store.add_event(EXAMPLE_ID, TaskEvent(kind="tool_call", turn=1, name="calculator",
                                          call_id="call_1_0", at="2026-11-24T00:00:02.000Z",
                                          duration_ms=3))
    tasks = load_handler("tasks")
    status, body = call_handler(tasks, load_event("tasks_events.json"))
    assert status == 200, body
    assert [(e["kind"], e["name"]) for e in body["items"]] == [
        ("model_call", "scripted"), ("tool_call", "calculator")]
    assert body["items"][0]["usage"]["input_tokens"] == 10
    assert body["items"][1]["duration_ms"] == 3
    # a waterfall's bar: started_at to at
    assert [(e["started_at"], e["at"]) for e in body["items"]] == [
        ("2026-11-24T00:00:00.988Z", "2026-11-24T00:00:01.000Z"),
        ("2026-11-24T00:00:01.997Z", "2026-11-24T00:00:02.000Z")]

    status, theirs = call_handler(tasks, task_event("tasks_events.json", EXAMPLE_ID, "intruder"))
    unknown_status, unknown = call_handler(tasks, task_event("tasks_events.json", "tsk_nope"))
    assert status == unknown_status == 404
    assert theirs == {"error": "not_found", "message": f"task '{EXAMPLE_ID}' not found"}
    assert unknown == {"error": "not_found", "message": "task 'tsk_nope' not found"}


def test_cancel_stops_the_execution_keeps_the_work_and_is_409_once_ended(
    state_machine_arn: str,
    store: TaskStore,
    idempotency_table: str,
) -> None:
    status, submitted = call_handler(load_handler("submit"), submit_event())
    assert status == 202
    task_id = submitted["task_id"]
    store.update_task(task_id, changes={"status": "RUNNING", "turn": 1,
                                        "usage": Usage(input_tokens=50).model_dump()})
    tasks = load_handler("tasks")

    # another tenant: not found, and nothing changes
    status, theirs = call_handler(tasks, task_event("tasks_cancel.json", task_id, "intruder"))
    assert status == 404 and theirs["error"] == "not_found"
    assert store.require_task(task_id).status == TaskStatus.RUNNING

    status, body = call_handler(tasks, task_event("tasks_cancel.json", task_id))
    assert status == 200, body
    assert body["status"] == "CANCELLED" and body["usage"]["input_tokens"] == 50
    assert body["turn"] == 1
    task = store.require_task(task_id)
    assert task.status == TaskStatus.CANCELLED and task.error == "cancelled by the caller"
    execution = boto3.client("stepfunctions").describe_execution(executionArn=task.execution_arn)
    assert execution["status"] == "ABORTED"
    assert [(e.kind, e.name) for e in store.list_events(task_id)] == [
        ("admission", "started"), ("status", "CANCELLED")]

    status, again = call_handler(tasks, task_event("tasks_cancel.json", task_id))
    assert status == 409
    assert again == {"error": "conflict",
                     "message": f"task '{task_id}' already ended as CANCELLED"}


def test_cancel_of_a_finished_task_is_409_and_unknown_is_404(store: TaskStore) -> None:
    _seed(store, EXAMPLE_ID, status=TaskStatus.SUCCEEDED)
    tasks = load_handler("tasks")
    status, body = call_handler(tasks, load_event("tasks_cancel.json"))
    assert status == 409 and body["error"] == "conflict" and "SUCCEEDED" in body["message"]
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.SUCCEEDED
    status, body = call_handler(tasks, task_event("tasks_cancel.json", "tsk_nope"))
    assert status == 404


def _tasks_in_table(store: TaskStore) -> int:
    items = store.client.scan(TableName=store.table_name)["Items"]
    return sum(1 for item in items if item["sk"]["S"] == "META"
               and item["pk"]["S"].startswith("TASK#"))


def test_idempotent_submit_same_body_same_task_different_body_409(
    state_machine_arn: str,
    store: TaskStore,
    idempotency_table: str,
) -> None:
    submit = load_handler("submit")
    status, first = call_handler(submit, keyed(submit_event(), "order-42"))
    assert status == 202, first
    # the same body, formatted differently: the same task, no second execution
    same = json.dumps(json.loads(submit_event()["body"]), indent=4)
    status, again = call_handler(submit, keyed(submit_event(same), "order-42"))
    assert status == 202 and again["task_id"] == first["task_id"]
    assert _tasks_in_table(store) == 1
    sfn = boto3.client("stepfunctions")
    assert len(sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]) == 1

    other = json.dumps({"goal": "something else", "model": "scripted",
                        "scripted_turns": [{"content": "x"}]})
    status, conflict = call_handler(submit, keyed(submit_event(other), "order-42"))
    assert status == 409 and conflict["error"] == "conflict"
    assert "order-42" in conflict["message"] and "different" in conflict["message"]
    assert _tasks_in_table(store) == 1

    # keys are per tenant; no key: a new task each time
    status, theirs = call_handler(submit, as_tenant(keyed(submit_event(), "order-42"),
                                              "acme"))
    assert status == 202 and theirs["task_id"] != first["task_id"]
    call_handler(submit, keyed(submit_event(), None))
    call_handler(submit, keyed(submit_event(), None))
    assert _tasks_in_table(store) == 4


def test_a_malformed_idempotency_key_is_400_naming_it(
    state_machine_arn: str,
    store: TaskStore,
    idempotency_table: str,
) -> None:
    status, body = call_handler(load_handler("submit"),
                         keyed(submit_event(), "has spaces in it"))
    assert status == 400, body
    assert body["fields"][0]["field"].lower() == "idempotency-key"
    assert _tasks_in_table(store) == 0


def test_openapi_document_is_public_and_lists_every_route(store: TaskStore) -> None:
    event = as_tenant(load_event("tasks_list.json"), None)  # no authorizer in front
    event.update(path="/openapi.json", resource="/openapi.json", queryStringParameters=None,
                 multiValueQueryStringParameters=None)
    response = load_handler("tasks").lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    document = json.loads(response["body"])
    assert set(document["paths"]) >= {
        "/tasks", "/tasks/{task_id}", "/tasks/{task_id}/events", "/tasks/{task_id}/cancel",
        "/tasks/{task_id}/approvals/{approval_id}", "/schedules", "/schedules/{schedule_id}"}
