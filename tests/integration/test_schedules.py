"""Schedules: the API function stores a template and an EventBridge Scheduler schedule;
the schedule's own input, delivered to the target function, submits a normal task."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from agentkit.models import TaskStatus
from agentkit.store import TaskStore
from tests.support import FakeLambdaContext, load_event, load_handler

TARGET_ARN = "arn:aws:lambda:us-east-1:123456789012:function:opspawn-ScheduledTaskFunction"
ROLE_ARN = "arn:aws:iam::123456789012:role/opspawn-SchedulerRole"
TEMPLATE = {"goal": "Daily check: what is 2 ** 5?", "model": "scripted",
            "scripted_turns": [{"content": "32"}]}


@pytest.fixture
def schedules_env(store: TaskStore, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SCHEDULE_TARGET_ARN", TARGET_ARN)
    monkeypatch.setenv("SCHEDULER_ROLE_ARN", ROLE_ARN)
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="agent", roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    return arn


def _call(method: str, path: str, tenant: str, body: Any = None) -> tuple[int, Any]:
    event = load_event("schedules_post.json")
    event.update(httpMethod=method, path=path, resource=path,
                 body=None if body is None else json.dumps(body))
    if "/schedules/" in path:
        event["resource"] = "/schedules/{schedule_id}"
        event["pathParameters"] = {"schedule_id": path.rsplit("/", 1)[1]}
    event["requestContext"]["authorizer"] = {"tenant_id": tenant}
    response = load_handler("schedules").lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"] or "null")


def test_create_fire_list_delete(schedules_env: str, store: TaskStore) -> None:
    status, created = _call("POST", "/schedules", "acme", {
        "name": "daily check", "schedule_expression": "rate(1 day)", "task": TEMPLATE})
    assert status == 201, created
    schedule_id = created["schedule_id"]

    scheduler = boto3.client("scheduler")
    remote = scheduler.get_schedule(Name=f"opspawn-{schedule_id}")
    assert remote["ScheduleExpression"] == "rate(1 day)"
    assert remote["Target"]["Arn"] == TARGET_ARN and remote["Target"]["RoleArn"] == ROLE_ARN

    # EventBridge Scheduler would invoke the target with exactly this input.
    fired = json.loads(remote["Target"]["Input"])
    result = load_handler("scheduled").lambda_handler(fired, FakeLambdaContext())
    task = store.require_task(result["task_id"])
    assert task.tenant_id == "acme" and task.goal == TEMPLATE["goal"]
    assert task.status == TaskStatus.QUEUED and task.execution_arn

    status, listing = _call("GET", "/schedules", "acme")
    assert status == 200 and [s["schedule_id"] for s in listing["items"]] == [schedule_id]
    assert _call("GET", "/schedules", "other")[1] == {"items": []}
    assert _call("DELETE", f"/schedules/{schedule_id}", "other")[0] == 404
    assert _call("DELETE", f"/schedules/{schedule_id}", "acme")[0] == 204
    assert _call("GET", "/schedules", "acme")[1] == {"items": []}
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=f"opspawn-{schedule_id}")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "schedule_expression": "every day", "task": TEMPLATE},
         "schedule_expression"),
        ({"name": "x", "schedule_expression": "rate(1 day)", "task": {"model": "scripted"}},
         "task.goal"),
        ({"schedule_expression": "rate(1 day)", "task": TEMPLATE}, "name"),
    ],
)
def test_bad_schedules_name_the_field(schedules_env: str, body: dict[str, Any],
                                      field: str) -> None:
    status, answer = _call("POST", "/schedules", "acme", body)
    assert status == 400
    assert field in {f["field"] for f in answer["fields"]}
