"""The tasks function's routes: GET /tasks, GET /tasks/{task_id}, GET /tasks/{task_id}/events,
POST /tasks/{task_id}/cancel (logic: agentkit.api.tasks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from agentkit.admission import ExecutionStarter
from agentkit.api.tasks import (
    TaskAlreadyFinishedError,
    cancel_tenant_task,
    get_task_events,
    get_task_view,
    list_task_page,
)
from agentkit.http.errors import (
    AUTH_REFUSALS,
    BAD_REQUEST,
    TASK_NOT_FOUND,
    error_doc,
    error_response,
)
from agentkit.http.params import Cursor, Limit, ParentIdFilter, StatusFilter, TaskId
from agentkit.http.resolver import current_tenant
from agentkit.models.api import TaskEventList, TaskPage, TaskSummary, TaskView
from agentkit.store import TaskStore

logger = Logger(child=True)


@dataclass(frozen=True)
class TaskRoutes:
    """What the routes need from their function."""

    store: TaskStore
    stop_execution: Callable[[str], None]
    release_wait: Callable[[str], None]
    #: A cancel frees the task's tenant slot and starts the tenant's oldest queued task in it.
    start_execution: ExecutionStarter | None
    max_running_for: Callable[[str], int]
    #: A cancelled sub-task that was the last of its turn resumes its waiting parent.
    resume_wait: Callable[[str], None] | None = None


def router(deps: TaskRoutes) -> Router:
    routes = Router()

    @routes.exception_handler(TaskAlreadyFinishedError)
    def _already_finished(error: TaskAlreadyFinishedError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.CONFLICT, "conflict", str(error))

    @routes.get(
        "/tasks",
        operation_id="listTasks",
        summary="List the tenant's tasks, newest first",
        tags=["tasks"],
        responses={
            200: {
                "description": (
                    "One page; `next_cursor` leads on. A page may hold fewer than `limit` "
                    "tasks, or none, while `next_cursor` is set (a `status` filter applies "
                    "after the page is read): follow `next_cursor` until it is null."
                )
            },
            **BAD_REQUEST,
            **AUTH_REFUSALS,
        },
    )
    def list_tasks(
        status: StatusFilter = None, limit: Limit = 20, cursor: Cursor = None,
        parent_id: ParentIdFilter = None,
    ) -> TaskPage:
        return list_task_page(store=deps.store, tenant_id=current_tenant(routes),
                              status=status, limit=limit, cursor=cursor, parent_id=parent_id)

    @routes.get(
        "/tasks/<task_id>",
        operation_id="getTask",
        summary="A task with its conversation, usage and approvals",
        tags=["tasks"],
        responses={200: {"description": "The task."}, **TASK_NOT_FOUND, **AUTH_REFUSALS},
    )
    def get_task(task_id: TaskId) -> TaskView:
        return get_task_view(task_id, store=deps.store, tenant_id=current_tenant(routes))

    @routes.get(
        "/tasks/<task_id>/events",
        operation_id="getTaskEvents",
        summary="A task's timeline: model calls, tool calls, approvals, status changes",
        tags=["tasks"],
        responses={
            200: {"description": "The timeline, oldest first."},
            **TASK_NOT_FOUND,
            **AUTH_REFUSALS,
        },
    )
    def get_events(task_id: TaskId) -> TaskEventList:
        return get_task_events(task_id, store=deps.store, tenant_id=current_tenant(routes))

    @routes.post(
        "/tasks/<task_id>/cancel",
        operation_id="cancelTask",
        summary="Cancel a task; its conversation and usage so far are kept",
        tags=["tasks"],
        responses={
            200: {"description": "The task, now CANCELLED; the execution is stopped, and "
                  "so are its sub-tasks'."},
            **TASK_NOT_FOUND,
            **AUTH_REFUSALS,
            409: error_doc("The task has already ended."),
        },
    )
    def cancel_task(task_id: TaskId) -> TaskSummary:
        tenant_id = current_tenant(routes)
        summary = cancel_tenant_task(
            task_id, store=deps.store, tenant_id=tenant_id,
            stop_execution=deps.stop_execution, release_wait=deps.release_wait,
            start_execution=deps.start_execution, max_running=deps.max_running_for(tenant_id),
            resume_wait=deps.resume_wait,
        )
        logger.info("task cancelled", extra={"task_id": task_id})
        return summary

    return routes
