"""The submit function's route, POST /tasks (logic: agentkit.api.submit).

With an `Idempotency-Key` header the submit runs once per (tenant, key) for 24 h: a retry
with the same body answers the same task, with a different body 409."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from agentkit.api.idempotency import IdempotencyConflictError
from agentkit.api.submit import IdempotentSubmitter
from agentkit.http.errors import AUTH_REFUSALS, BAD_REQUEST, error_doc, error_response
from agentkit.http.params import IdempotencyKey
from agentkit.http.resolver import MAX_BODY_BYTES, current_tenant
from agentkit.models.api import SubmitTaskRequest, TaskSummary
from agentkit.models.domain import Task


@dataclass(frozen=True)
class SubmitRoutes:
    """What the route needs from its function: the submit (tenant id as second argument),
    the same behind an Idempotency-Key, and the stored task by id."""

    submit: Callable[[SubmitTaskRequest, str], Task]
    idempotent_submit: IdempotentSubmitter
    require_task: Callable[[str], Task]


def router(deps: SubmitRoutes) -> Router:
    routes = Router()

    @routes.exception_handler(IdempotencyConflictError)
    def _key_conflict(error: IdempotencyConflictError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.CONFLICT, "conflict", str(error))

    @routes.post(
        "/tasks",
        operation_id="submitTask",
        summary="Submit a task",
        tags=["tasks"],
        responses={
            202: {
                "description": "Accepted: the task is stored and its agent loop started "
                               "(or it waits QUEUED while its tenant runs its cap of tasks).",
                "headers": {
                    "Location": {
                        "description": "The task's URL path, `/tasks/{task_id}`.",
                        "schema": {"type": "string"},
                    }
                },
                "content": {"application/json": {"model": TaskSummary}},
            },
            **BAD_REQUEST,
            **AUTH_REFUSALS,
            409: error_doc("The Idempotency-Key was used with a different body."),
            413: error_doc(f"The body is over {MAX_BODY_BYTES // 1024} KB."),
        },
    )
    def post_task(
        request: SubmitTaskRequest, idempotency_key: IdempotencyKey = None
    ) -> Response[dict[str, Any]]:
        tenant_id = current_tenant(routes)
        if idempotency_key is None:
            task = deps.submit(request, tenant_id)
        else:
            task_id = deps.idempotent_submit(
                request, tenant_id=tenant_id, key=idempotency_key,
                lambda_context=routes.lambda_context,
            )
            task = deps.require_task(task_id)  # as it is now (a retry may find it running)
        return Response(
            status_code=HTTPStatus.ACCEPTED.value,
            content_type=content_types.APPLICATION_JSON,
            body=TaskSummary.of(task).model_dump(mode="json"),
            headers={"Location": f"/tasks/{task.task_id}"},
        )

    return routes
