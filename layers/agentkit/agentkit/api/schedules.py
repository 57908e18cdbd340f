"""Recurring tasks: a stored task template per tenant, fired by EventBridge Scheduler.

A schedule is a stored template (agentkit.store.schedules) plus an EventBridge Scheduler
schedule whose target is the start_scheduled_task function with the input
`{"schedule_id", "tenant_id"}`. When it fires, the template is submitted as a normal task
of that tenant (same validation, same loop).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agentkit.errors import InputError
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task, utc_now
from agentkit.schedule_expressions import At, ScheduleExpressionError, parse, zone
from agentkit.store import TaskStore
from agentkit.store.schedules import Schedule, ScheduleStore
from agentkit.store.schedules import (  # re-exported: the schedules handler imports it here
    ScheduleNotFoundError as ScheduleNotFoundError,
)


class CreateScheduleRequest(BaseModel):
    """Body of POST /schedules."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    # Before schedule_expression: an at(...) is read in this zone.
    timezone: str = Field(
        default="UTC",
        max_length=50,
        description="IANA time zone the expression is evaluated in (`Europe/Paris`); UTC by "
        "default. Daylight saving time: a skipped time does not fire, a repeated one fires once.",
    )
    schedule_expression: str = Field(
        max_length=256,
        description="As EventBridge Scheduler reads it: `rate(1 hour)` / `rate(5 minutes)` "
        "(singular unit only for 1), `cron(0 9 ? * MON-FRI *)` (six fields: minutes hours "
        "day-of-month month day-of-week year; one of the two day fields is `?`), or a one-time "
        "`at(2026-12-01T09:00:00)` (in `timezone`, not in the past).",
    )
    task: SubmitTaskRequest

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone(value)
        except ScheduleExpressionError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("schedule_expression")
    @classmethod
    def _expression(cls, value: str, info: ValidationInfo) -> str:
        try:
            expression = parse(value)
        except ScheduleExpressionError as exc:
            raise ValueError(f"{value[:80]}: {exc}") from None
        if isinstance(expression, At):
            # A one-time schedule whose time has passed would never run: refuse it now.
            tz = zone(info.data.get("timezone") or "UTC")  # absent: the zone was refused
            if expression.when.replace(tzinfo=tz) <= datetime.now(UTC):
                raise ValueError(f"{value}: that time ({tz}) is in the past")
        return value


class ScheduleList(BaseModel):
    """GET /schedules: all of the tenant's schedules, newest first (one page)."""

    items: list[Schedule]


class ScheduleFired(BaseModel):
    """The input EventBridge Scheduler hands the start_scheduled_task function."""

    schedule_id: str = Field(min_length=1, max_length=64)
    tenant_id: str = Field(min_length=1, max_length=128)


def scheduler_name(schedule_id: str) -> str:
    return f"opspawn-{schedule_id}"


class ScheduleTarget(BaseModel):
    """Where fired schedules go: the scheduled-task function, invoked with this role."""

    function_arn: str
    role_arn: str
    group: str = "default"


def create_schedule(
    request: CreateScheduleRequest,
    *,
    tenant_id: str,
    store: TaskStore,
    scheduler: Any,
    target: ScheduleTarget,
    check_task: Callable[[SubmitTaskRequest, str], object] | None = None,
) -> Schedule:
    """Store the schedule and create its EventBridge Scheduler schedule. `check_task` (the
    submit checks: model, tools, policy, budgets) refuses a task that could never start,
    naming the field under `task.`, before anything is stored."""
    if check_task is not None:
        try:
            check_task(request.task, tenant_id)
        except InputError as error:
            raise InputError(f"task.{error.field}", error.problem) from None
    schedule = Schedule(
        schedule_id="sch_" + secrets.token_hex(8),
        name=request.name,
        schedule_expression=request.schedule_expression,
        timezone=request.timezone,
        task=request.task,
        created_at=utc_now(),
    )
    ScheduleStore(store).put(tenant_id, schedule)
    fired = ScheduleFired(schedule_id=schedule.schedule_id, tenant_id=tenant_id)
    one_time = isinstance(parse(schedule.schedule_expression), At)
    try:
        scheduler.create_schedule(
            Name=scheduler_name(schedule.schedule_id),
            GroupName=target.group,
            ScheduleExpression=schedule.schedule_expression,
            ScheduleExpressionTimezone=schedule.timezone,
            # A one-time schedule removes itself from Scheduler once it has fired (its
            # template stays listed here until DELETE /schedules/{id}).
            ActionAfterCompletion="DELETE" if one_time else "NONE",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": target.function_arn,
                "RoleArn": target.role_arn,
                "Input": fired.model_dump_json(),
            },
            State="ENABLED",
            Description=f"opspawn schedule {schedule.name} ({tenant_id})"[:512],
        )
    except Exception:
        # No half-made schedule: without its trigger the stored template is removed again.
        ScheduleStore(store).delete(tenant_id, schedule.schedule_id)
        raise
    return schedule


def list_schedules(*, tenant_id: str, store: TaskStore) -> list[Schedule]:
    return ScheduleStore(store).list_schedules(tenant_id)


def get_schedule(schedule_id: str, *, tenant_id: str, store: TaskStore) -> Schedule:
    return ScheduleStore(store).require(tenant_id, schedule_id)


def delete_schedule(
    schedule_id: str, *, tenant_id: str, store: TaskStore, scheduler: Any, group: str = "default"
) -> None:
    get_schedule(schedule_id, tenant_id=tenant_id, store=store)  # 404 for other tenants too
    # Already gone is fine: deleting is idempotent.
    with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
        scheduler.delete_schedule(Name=scheduler_name(schedule_id), GroupName=group)
    ScheduleStore(store).delete(tenant_id, schedule_id)


def start_scheduled_task(fired: ScheduleFired, *, store: TaskStore, submit: Any) -> Task:
    """A schedule fired: submit its stored template as a normal task of its tenant."""
    schedule = get_schedule(fired.schedule_id, tenant_id=fired.tenant_id, store=store)
    task: Task = submit(schedule.task, tenant_id=fired.tenant_id)
    return task
