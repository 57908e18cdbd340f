"""Schedules and budgets end to end on the offline stack, through the API Gateway URL.

Schedules really fire: LocalStack stores EventBridge Scheduler schedules and the plugin's
scheduler thread (localstack-plugin/opspawn_localstack/scheduler.py) invokes each one's target
at its time, with its role, as Scheduler does. A schedule made through the API submits its task
for its tenant when it fires; nothing here calls the target by hand.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agentkit.models.api import TaskSummary
from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.paths import Layout
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import E2E_TENANT
from tests.support.fake_providers import FakeProviders, Reply

TIMEOUT_S = 120
LOOP = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}],
        "usage": {"input_tokens": 100, "output_tokens": 20}}


def _template(label: str) -> dict[str, object]:
    """A task template whose goal no other task has."""
    return {"goal": f"Scheduled {label} {uuid.uuid4().hex[:8]}: what is 2 ** 5?",
            "model": "scripted", "scripted_turns": [{"content": "32"}]}


def _at(seconds: float, tz: ZoneInfo | None = None) -> tuple[str, datetime]:
    """at(...) `seconds` from now, wall-clock in `tz` (UTC), and that instant."""
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return f"at({when.astimezone(tz or UTC):%Y-%m-%dT%H:%M:%S})", when


def _tasks_with_goal(api: OpspawnClient, goal: object) -> list[TaskSummary]:
    return [t for t in api.list_tasks(limit=100).items if t.goal == goal]


def _wait_for_task(api: OpspawnClient, goal: object) -> TaskSummary:
    """The task the schedule's firing submits (it is made by the scheduled-task function)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if found := _tasks_with_goal(api, goal):
            return found[0]
        time.sleep(0.5)
    pytest.fail(f"no task with goal {goal!r} appeared: the schedule did not fire")


def _created(task: TaskSummary) -> datetime:
    return datetime.fromisoformat(task.created_at.replace("Z", "+00:00"))


def test_a_one_time_schedule_fires_at_its_time_and_runs_a_task_of_its_tenant(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    template = _template("once")
    expression, when = _at(4)
    schedule = api.create_schedule("e2e once", expression, template)
    scheduler = offline_stack.client("scheduler")
    try:
        remote = scheduler.get_schedule(Name=f"opspawn-{schedule.schedule_id}")
        assert remote["ScheduleExpression"] == expression
        assert remote["ActionAfterCompletion"] == "DELETE"
        target = remote["Target"]
        assert target["Arn"].endswith(offline_stack.physical_id("StartScheduledTaskFunction"))
        assert json.loads(target["Input"])["tenant_id"] == E2E_TENANT

        task = _wait_for_task(api, template["goal"])
        assert _created(task) >= when  # fired at its time, not before
        view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
        assert view.status == TaskStatus.SUCCEEDED and view.answer == "32"

        # Fired once; being one-time (ActionAfterCompletion DELETE) it left Scheduler ...
        with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
            scheduler.get_schedule(Name=f"opspawn-{schedule.schedule_id}")
        assert len(_tasks_with_goal(api, template["goal"])) == 1
        # ... while its template stays listed until deleted.
        assert schedule.schedule_id in [s.schedule_id for s in api.list_schedules()]
    finally:
        api.delete_schedule(schedule.schedule_id)
    assert schedule.schedule_id not in [s.schedule_id for s in api.list_schedules()]


def test_at_is_read_in_the_schedules_time_zone(api: OpspawnClient) -> None:
    template = _template("kolkata")
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30, no daylight saving time
    expression, when = _at(4, kolkata)
    response = api.request("POST", "/schedules", json={
        "name": "e2e kolkata", "schedule_expression": expression, "timezone": "Asia/Kolkata",
        "task": template})
    assert response.status_code == 201, response.text
    schedule_id = response.json()["schedule_id"]
    try:
        task = _wait_for_task(api, template["goal"])
        assert _created(task) >= when
        assert api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3).status == (
            TaskStatus.SUCCEEDED)
    finally:
        api.delete_schedule(schedule_id)


def test_a_rate_schedule_fires_when_made_then_every_period(api: OpspawnClient) -> None:
    template = _template("hourly")
    schedule = api.create_schedule("e2e hourly", "rate(1 hour)", template)
    try:
        task = _wait_for_task(api, template["goal"])  # no StartDate: it starts at once
        assert api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3).status == (
            TaskStatus.SUCCEEDED)
        assert len(_tasks_with_goal(api, template["goal"])) == 1  # the next is an hour away
    finally:
        api.delete_schedule(schedule.schedule_id)


def test_a_schedule_whose_role_cannot_be_assumed_invokes_nothing(
    offline_stack: StackOutputs,
) -> None:
    """Scheduler calls the target as the schedule's role: a role that does not exist (or may
    not invoke the target) means no invocation, logged by the scheduler thread."""
    scheduler = offline_stack.client("scheduler")
    name = f"opspawn-e2e-norole-{uuid.uuid4().hex[:8]}"
    function_arn = offline_stack.client("lambda").get_function(
        FunctionName=offline_stack.physical_id("StartScheduledTaskFunction"))["Configuration"][
        "FunctionArn"]
    role_arn = f"arn:aws:iam::{function_arn.split(':')[4]}:role/{name}"
    log = Layout.current().log_file
    offset = log.stat().st_size
    expression, _ = _at(2)
    scheduler.create_schedule(
        Name=name, ScheduleExpression=expression, FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": function_arn, "RoleArn": role_arn, "Input": "{}"},
        ActionAfterCompletion="DELETE")
    deadline = time.monotonic() + 60
    expected = f"did not invoke {function_arn}: role {role_arn} does not exist"
    while expected not in _log_since(log, offset):
        if time.monotonic() > deadline:
            pytest.fail(f"the scheduler thread did not report: {expected}")
        time.sleep(0.5)
    assert f"{name} invoked" not in _log_since(log, offset)


def _log_since(log: Path, offset: int) -> str:
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", errors="replace")


def test_max_turns_budget(api: OpspawnClient) -> None:
    task = api.submit({"goal": "loop", "model": "scripted", "scripted_turns": [LOOP] * 5,
                       "max_turns": 2})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.BUDGET_EXCEEDED and view.turn == 2
    assert view.error == "max_turns (2) reached before a final answer"


def test_max_tokens_budget_keeps_the_partial_result(api: OpspawnClient) -> None:
    task = api.submit({"goal": "loop", "model": "scripted", "scripted_turns": [LOOP] * 5,
                       "max_tokens": 200})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.BUDGET_EXCEEDED
    assert view.usage.total_tokens == 240 and view.turn == 2
    assert view.error == "max_tokens (200) reached: 240 tokens spent before a final answer"
    assert [m.role for m in view.messages].count("tool") == 2  # the partial conversation


def test_max_cost_budget_on_a_priced_model(api: OpspawnClient,
                                           fake_providers: FakeProviders) -> None:
    # openai:gpt-4o-mini at 0.15 / 0.60 USD per M tokens: each turn below costs 0.21 USD.
    turn = Reply(tool_calls=[("calculator", {"expression": "1 + 1"})],
                 input_tokens=1_000_000, output_tokens=100_000)
    fake_providers.script("openai", turn, turn)  # the third call never happens
    task = api.submit({"goal": "spend", "model": "openai:gpt-4o-mini", "max_cost_usd": 0.4})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.BUDGET_EXCEEDED, view.error
    assert view.usage.cost_usd == pytest.approx(0.42) and view.turn == 2
    assert view.error == "max_cost_usd (0.4) reached: $0.420000 spent before a final answer"
