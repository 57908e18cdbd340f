"""The schedules function's routes: POST /schedules, GET /schedules,
DELETE /schedules/{schedule_id} (logic: agentkit.api.schedules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from agentkit.api.schedules import (
    CreateScheduleRequest,
    Schedule,
    ScheduleList,
    ScheduleNotFoundError,
    ScheduleTarget,
    create_schedule,
    delete_schedule,
    list_schedules,
)
from agentkit.http.errors import AUTH_REFUSALS, BAD_REQUEST, error_doc, error_response
from agentkit.http.params import ScheduleId
from agentkit.http.resolver import current_tenant
from agentkit.models.api import SubmitTaskRequest
from agentkit.store import TaskStore

logger = Logger(child=True)


@dataclass(frozen=True)
class ScheduleRoutes:
    """What the routes need from their function: the store, the EventBridge Scheduler
    client, what a schedule targets, and the task checks POST /tasks makes (a schedule
    that could never start a task is a 400)."""

    store: TaskStore
    scheduler: Any
    target: ScheduleTarget
    check_task: Callable[[SubmitTaskRequest, str], object]


def router(deps: ScheduleRoutes) -> Router:
    routes = Router()

    @routes.exception_handler(ScheduleNotFoundError)
    def _not_found(error: ScheduleNotFoundError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", str(error))

    @routes.post(
        "/schedules",
        operation_id="createSchedule",
        summary="Create a recurring task",
        tags=["schedules"],
        responses={
            201: {
                "description": "Created.",
                "content": {"application/json": {"model": Schedule}},
            },
            **BAD_REQUEST,
            **AUTH_REFUSALS,
        },
    )
    def post_schedule(request: CreateScheduleRequest) -> Response[dict[str, Any]]:
        schedule = create_schedule(
            request, tenant_id=current_tenant(routes), store=deps.store,
            scheduler=deps.scheduler, target=deps.target, check_task=deps.check_task,
        )
        logger.info("schedule created", extra={"schedule_id": schedule.schedule_id})
        return Response(
            status_code=HTTPStatus.CREATED.value,
            content_type=content_types.APPLICATION_JSON,
            body=schedule.model_dump(mode="json", exclude_none=True),
        )

    @routes.get(
        "/schedules",
        operation_id="listSchedules",
        summary="The tenant's schedules",
        tags=["schedules"],
        responses={200: {"description": "All of them, newest first."}, **AUTH_REFUSALS},
    )
    def get_schedules() -> ScheduleList:
        return ScheduleList(items=list_schedules(tenant_id=current_tenant(routes),
                                                 store=deps.store))

    @routes.delete(
        "/schedules/<schedule_id>",
        operation_id="deleteSchedule",
        summary="Delete a schedule",
        tags=["schedules"],
        responses={
            204: {"description": "Deleted.", "content": {}},
            404: error_doc("No such schedule."),
            **AUTH_REFUSALS,
        },
    )
    def remove_schedule(schedule_id: ScheduleId) -> Response[str]:
        delete_schedule(schedule_id, tenant_id=current_tenant(routes), store=deps.store,
                        scheduler=deps.scheduler)
        return Response(status_code=HTTPStatus.NO_CONTENT.value, body="")

    return routes
