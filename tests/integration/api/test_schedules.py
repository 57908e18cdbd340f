"""Schedules: the API function stores a template and an EventBridge Scheduler schedule;
the schedule's own input, delivered to the target function, submits a normal task.

Expressions and time zones are validated as EventBridge Scheduler validates them (moto accepts
anything, AWS would answer the create with a ValidationException: a 500 here); text meant for
a model is refused if providers would refuse it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from agentkit.models.domain import TaskStatus
from agentkit.store import TaskStore
from tests.support.aws import FakeLambdaContext, load_event, load_handler

TARGET_ARN = "arn:aws:lambda:us-east-1:123456789012:function:opspawn-StartScheduledTaskFunction"
ROLE_ARN = "arn:aws:iam::123456789012:role/opspawn-SchedulerRole"
TEMPLATE = {"goal": "Daily check: what is 2 ** 5?", "model": "scripted",
            "scripted_turns": [{"content": "32"}]}


@pytest.fixture
def schedules_env(store: TaskStore, state_machine_arn: str,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SCHEDULE_TARGET_ARN", TARGET_ARN)
    monkeypatch.setenv("SCHEDULER_ROLE_ARN", ROLE_ARN)
    return state_machine_arn


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
    result = load_handler("start_scheduled_task").lambda_handler(fired, FakeLambdaContext())
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


def test_a_one_time_schedule_in_a_time_zone_deletes_itself_after_firing(
    schedules_env: str,
) -> None:
    when = datetime.now(UTC) + timedelta(days=2)
    expression = f"at({when.astimezone(ZoneInfo('Asia/Tokyo')):%Y-%m-%dT%H:%M:%S})"
    status, created = _call("POST", "/schedules", "acme", {
        "name": "once", "schedule_expression": expression, "timezone": "Asia/Tokyo",
        "task": TEMPLATE})
    assert status == 201, created
    assert created["timezone"] == "Asia/Tokyo"
    remote = boto3.client("scheduler").get_schedule(Name=f"opspawn-{created['schedule_id']}")
    assert remote["ScheduleExpression"] == expression
    assert remote["ScheduleExpressionTimezone"] == "Asia/Tokyo"
    assert remote["ActionAfterCompletion"] == "DELETE"

    status, created = _call("POST", "/schedules", "acme", {
        "name": "weekdays", "schedule_expression": "cron(0 9 ? * MON-FRI *)", "task": TEMPLATE})
    assert status == 201, created
    remote = boto3.client("scheduler").get_schedule(Name=f"opspawn-{created['schedule_id']}")
    assert remote["ScheduleExpressionTimezone"] == "UTC"
    assert remote["ActionAfterCompletion"] == "NONE"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(aaaaaaaaa)", "six fields"),
        ("rate(1 minutes)", "a rate of 1 takes the singular unit: rate(1 minute)"),
        ("at(2026-13-45T99:99:99)", "not a real date and time"),
        ("at(2020-01-01T00:00:00)", "is in the past"),
        ("rate(5 seconds)", "unknown rate unit"),
    ],
)
def test_expressions_scheduler_would_refuse_are_a_400_naming_the_field(
    schedules_env: str, store: TaskStore, expression: str, problem: str
) -> None:
    status, answer = _call("POST", "/schedules", "acme", {
        "name": "x", "schedule_expression": expression, "task": TEMPLATE})
    assert status == 400, answer
    assert answer["error"] == "validation_error"
    fields = {f["field"]: f["problem"] for f in answer["fields"]}
    assert list(fields) == ["schedule_expression"] and problem in fields["schedule_expression"]
    assert store.client.scan(TableName=store.table_name)["Count"] == 0  # nothing stored
    assert boto3.client("scheduler").list_schedules()["Schedules"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "schedule_expression": "every day", "task": TEMPLATE},
         "schedule_expression"),
        ({"name": "x", "schedule_expression": "rate(1 day)", "timezone": "Mars/Olympus",
          "task": TEMPLATE}, "timezone"),
        ({"name": "x", "schedule_expression": "rate(1 day)",
          "task": {**TEMPLATE, "goal": "check\x00this"}}, "task.goal"),
        ({"name": "x", "schedule_expression": "rate(1 day)", "task": {"model": "scripted"}},
         "task.goal"),
        ({"schedule_expression": "rate(1 day)", "task": TEMPLATE}, "name"),
        # The task is checked as POST /tasks checks it: a schedule that could never start
        # a task is refused now, not at every firing.
        ({"name": "x", "schedule_expression": "rate(1 day)",
          "task": {**TEMPLATE, "tools": ["no_such_tool"]}}, "task.tools"),
        ({"name": "x", "schedule_expression": "rate(1 day)",
          "task": {"goal": "g", "model": "nobody:model-x"}}, "task.model"),
    ],
)
def test_bad_schedules_name_the_field(schedules_env: str, body: dict[str, Any],
                                      field: str) -> None:
    status, answer = _call("POST", "/schedules", "acme", body)
    assert status == 400
    assert field in {f["field"] for f in answer["fields"]}


@pytest.mark.parametrize(
    ("goal", "problem"),
    [
        ("What is\x00 2 + 2?", "control character U+0000"),
        ("\x1b[31mred\x1b[0m", "control character U+001B"),
        ("half a pair: \ud83d", "lone surrogate (U+D83D)"),
    ],
)
def test_submit_refuses_a_goal_a_model_provider_would_reject(
    schedules_env: str, store: TaskStore, goal: str, problem: str
) -> None:
    event = load_event("submit_post_tasks.json")
    event["body"] = json.dumps({"goal": goal})  # \u0000 / \ud83d escapes, as a client sends them
    event["requestContext"]["authorizer"] = {"tenant_id": "acme"}
    response = load_handler("submit").lambda_handler(event, FakeLambdaContext())
    answer = json.loads(response["body"])
    assert response["statusCode"] == 400, answer
    fields = {f["field"]: f["problem"] for f in answer["fields"]}
    assert list(fields) == ["goal"] and problem in fields["goal"]
    assert store.client.scan(TableName=store.table_name)["Count"] == 0  # nothing stored
