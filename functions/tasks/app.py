"""The task routes: GET /tasks, GET /tasks/{task_id}, GET /tasks/{task_id}/events,
POST /tasks/{task_id}/cancel; and the public GET /openapi.json of the whole API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api import create_resolver, current_tenant, error_response, resolve
from agentkit.config import settings
from agentkit.models import TaskEventList, TaskPage, TaskSummary, TaskView
from agentkit.openapi import Cursor, Limit, StatusFilter, TaskId, document_text, route_doc
from agentkit.steps.cancel import (
    TaskAlreadyFinishedError,
    cancel_tenant_task,
    step_functions_releaser,
    step_functions_stopper,
)
from agentkit.steps.slots import step_functions_starter
from agentkit.steps.view import get_task_events, get_task_view, list_task_page
from agentkit.store import TaskStore

logger = Logger()
app = create_resolver()
_config = settings()
_store = TaskStore(_config.table_name)
_sfn = boto3.client("stepfunctions")
_stop = step_functions_stopper(_sfn)
_release = step_functions_releaser(_sfn)
# A cancel frees the task's tenant slot and starts the tenant's oldest queued task in it.
_start = (
    step_functions_starter(_sfn, _config.state_machine_arn) if _config.state_machine_arn else None
)


@app.exception_handler(TaskAlreadyFinishedError)
def _already_finished(error: TaskAlreadyFinishedError) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.CONFLICT, "conflict", str(error))


@app.get("/tasks", **route_doc("GET", "/tasks"))
def list_tasks(status: StatusFilter = None, limit: Limit = 20, cursor: Cursor = None) -> TaskPage:
    return list_task_page(
        store=_store, tenant_id=current_tenant(app), status=status, limit=limit, cursor=cursor
    )


@app.get("/tasks/<task_id>", **route_doc("GET", "/tasks/<task_id>"))
def get_task(task_id: TaskId) -> TaskView:
    return get_task_view(task_id, store=_store, tenant_id=current_tenant(app))


@app.get("/tasks/<task_id>/events", **route_doc("GET", "/tasks/<task_id>/events"))
def get_events(task_id: TaskId) -> TaskEventList:
    return get_task_events(task_id, store=_store, tenant_id=current_tenant(app))


@app.post("/tasks/<task_id>/cancel", **route_doc("POST", "/tasks/<task_id>/cancel"))
def cancel_task(task_id: TaskId) -> TaskSummary:
    tenant_id = current_tenant(app)
    summary = cancel_tenant_task(
        task_id, store=_store, tenant_id=tenant_id, stop_execution=_stop,
        release_wait=_release, start_execution=_start,
        max_running=_config.max_running_for(tenant_id),
    )
    logger.info("task cancelled", extra={"task_id": task_id})
    return summary


# Public (the template's event says `Auth: {Authorizer: NONE}`): no tenant is read here.
@app.get("/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type=content_types.APPLICATION_JSON,
        body=document_text(),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
