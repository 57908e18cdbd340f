"""/schedules: create, list and delete a tenant's recurring tasks."""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api import create_resolver, current_tenant, error_response, resolve
from agentkit.config import settings
from agentkit.models import SubmitTaskRequest
from agentkit.openapi import route_doc
from agentkit.steps.schedules import (
    CreateScheduleRequest,
    Schedule,
    ScheduleNotFoundError,
    ScheduleTarget,
    create_schedule,
    delete_schedule,
    list_schedules,
)
from agentkit.steps.task_request import check_request
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
app = create_resolver()
_config = settings()
_store = TaskStore(_config.table_name)
_registry = default_registry()
_scheduler = boto3.client("scheduler")
_target = ScheduleTarget(
    function_arn=os.environ.get("SCHEDULE_TARGET_ARN", ""),
    role_arn=os.environ.get("SCHEDULER_ROLE_ARN", ""),
)


def _check_task(request: SubmitTaskRequest, tenant_id: str) -> object:
    """The same checks as POST /tasks: a schedule that could never start a task is a 400."""
    return check_request(request, registry=_registry, settings=_config, tenant_id=tenant_id)


@app.exception_handler(ScheduleNotFoundError)
def _not_found(error: ScheduleNotFoundError) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", str(error))


@app.post("/schedules", **route_doc("POST", "/schedules"))
def post_schedule(request: CreateScheduleRequest) -> Response[dict[str, Any]]:
    schedule = create_schedule(
        request, tenant_id=current_tenant(app), store=_store, scheduler=_scheduler,
        target=_target, check_task=_check_task,
    )
    logger.info("schedule created", extra={"schedule_id": schedule.schedule_id})
    return Response(
        status_code=HTTPStatus.CREATED.value,
        content_type=content_types.APPLICATION_JSON,
        body=schedule.model_dump(mode="json", exclude_none=True),
    )


@app.get("/schedules", **route_doc("GET", "/schedules"))
def get_schedules() -> dict[str, list[Schedule]]:
    return {"items": list_schedules(tenant_id=current_tenant(app), store=_store)}


@app.delete("/schedules/<schedule_id>", **route_doc("DELETE", "/schedules/<schedule_id>"))
def remove_schedule(schedule_id: str) -> Response[str]:
    delete_schedule(schedule_id, tenant_id=current_tenant(app), store=_store, scheduler=_scheduler)
    return Response(status_code=HTTPStatus.NO_CONTENT.value, body="")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
