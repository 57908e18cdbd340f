"""The tasks function's routes: GET /tasks, GET /tasks/{task_id}, GET /tasks/{task_id}/events,
POST /tasks/{task_id}/cancel (logic: agentkit.api.tasks) and POST /tasks/{task_id}/messages
(a follow-up: agentkit.api.follow_ups)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from agentkit.admission import ExecutionStarter
from agentkit.api.follow_ups import IdempotentFollowUp, accepted, post_follow_up
from agentkit.api.idempotency import IdempotencyConflictError
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
from agentkit.http.params import (
    Cursor,
    FollowUpIdempotencyKey,
    Limit,
    ParentIdFilter,
    StatusFilter,
    TaskId,
)
from agentkit.http.resolver import current_tenant
from agentkit.loop.runs import RunStarter
from agentkit.models.api import (
    FollowUpAccepted,
    FollowUpRequest,
    TaskEventList,
    TaskPage,
    TaskSummary,
    TaskView,
)
from agentkit.store import TaskStore
from agentkit.store.errors import TaskBusyError

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
    #: Starts a follow-up's run (agentkit.loop.runs); None: follow-ups are stored, not run.
    start_run: RunStarter | None = None
    #: The follow-up behind an Idempotency-Key (built on first use: Powertools'
    #: idempotency package is imported only then).
    idempotent_follow_up: Callable[[], IdempotentFollowUp] | None = None
    #: A cancelled sub-task that was the last of its turn resumes its waiting parent.
    resume_wait: Callable[[str], None] | None = None


def router(deps: TaskRoutes) -> Router:
    routes = Router()

    @routes.exception_handler(TaskAlreadyFinishedError)
    def _already_finished(error: TaskAlreadyFinishedError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.CONFLICT, "conflict", str(error))

    @routes.exception_handler(TaskBusyError)
    def _busy(error: TaskBusyError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.CONFLICT, "task_busy", str(error))

    @routes.exception_handler(IdempotencyConflictError)
    def _key_conflict(error: IdempotencyConflictError) -> Response[dict[str, Any]]:
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
            start_run=deps.start_run,
            resume_wait=deps.resume_wait,
        )
        logger.info("task cancelled", extra={"task_id": task_id})
        return summary

    def _post(task_id: str, request: FollowUpRequest, tenant_id: str) -> FollowUpAccepted:
        return post_follow_up(task_id, request, store=deps.store, tenant_id=tenant_id,
                              start_run=deps.start_run)

    @routes.post(
        "/tasks/<task_id>/messages",
        operation_id="postFollowUp",
        summary="Continue an ended task with a follow-up message, as a new run",
        description=(
            "The task's model gets the whole conversation plus this message, in a new run "
            "of the task (its own execution; max_turns, max_tokens and max_cost_usd apply "
            "to each run; the task's usage adds up every run). Any ended task may be "
            "continued (SUCCEEDED, FAILED, BUDGET_EXCEEDED, CANCELLED). While a run is "
            "active, or follow-ups wait, `on_busy` decides: `reject` (409 `task_busy`) or "
            "`enqueue` (it runs when the runs before it end). A cancel discards the "
            "follow-ups queued before it."
        ),
        tags=["tasks"],
        responses={
            202: {
                "description": "Accepted: the message is stored; its run started, or it waits "
                               "for the active run to end (`state`).",
                "content": {"application/json": {"model": FollowUpAccepted}},
            },
            **BAD_REQUEST,
            **TASK_NOT_FOUND,
            **AUTH_REFUSALS,
            409: error_doc("A run is active (or follow-ups wait) and on_busy is `reject` "
                           "(`task_busy`), or the Idempotency-Key was used with a different "
                           "body."),
        },
    )
    def post_message(
        task_id: TaskId, request: FollowUpRequest,
        idempotency_key: FollowUpIdempotencyKey = None,
    ) -> Response[dict[str, Any]]:
        tenant_id = current_tenant(routes)
        if idempotency_key is None or deps.idempotent_follow_up is None:
            answer = _post(task_id, request, tenant_id)
        else:
            number = deps.idempotent_follow_up()(
                task_id, request, tenant_id=tenant_id, key=idempotency_key,
                lambda_context=routes.lambda_context,
            )
            answer = accepted(task_id, number, store=deps.store)  # as it is now
        logger.info("follow-up accepted", extra={"task_id": task_id,
                                                 "follow_up": answer.follow_up,
                                                 "state": answer.state})
        return Response(
            status_code=HTTPStatus.ACCEPTED.value,
            content_type=content_types.APPLICATION_JSON,
            body=answer.model_dump(mode="json"),
        )

    return routes
