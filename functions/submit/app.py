"""POST /tasks: validate the body, store the task, start its agent loop.

With an `Idempotency-Key` header the submit runs once per (tenant, key) for 24 h: a retry
with the same body answers the same task, with a different body 409."""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api import create_resolver, current_tenant, error_response, resolve
from agentkit.config import settings
from agentkit.models import SubmitTaskRequest, Task, TaskSummary
from agentkit.openapi import IdempotencyKey, route_doc
from agentkit.steps.submit import (
    IdempotencyConflictError,
    IdempotentSubmitter,
    step_functions_starter,
    submit_task,
)
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
metrics = Metrics()
app = create_resolver()

_config = settings()
_store = TaskStore(_config.table_name)
_registry = default_registry()
_start = step_functions_starter(boto3.client("stepfunctions"), _config.state_machine_arn or "")


def _submit(request: SubmitTaskRequest, tenant_id: str) -> Task:
    task = submit_task(
        request,
        store=_store,
        registry=_registry,
        settings=_config,
        start_execution=_start,
        tenant_id=tenant_id,
    )
    logger.info(
        "task submitted",
        extra={"task_id": task.task_id, "model": task.model, "tenant_id": task.tenant_id,
               # no execution yet: the tenant is at its cap, the task waits for a slot
               "queued": task.execution_arn is None},
    )
    metrics.add_metric(name="TasksSubmitted", unit=MetricUnit.Count, value=1)
    return task


_idempotent_submit = IdempotentSubmitter(
    _submit, table_name=os.environ.get("IDEMPOTENCY_TABLE_NAME", "")
)


@app.exception_handler(IdempotencyConflictError)
def _key_conflict(error: IdempotencyConflictError) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.CONFLICT, "conflict", str(error))


@app.post("/tasks", **route_doc("POST", "/tasks"))
def post_task(
    request: SubmitTaskRequest, idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    tenant_id = current_tenant(app)
    if idempotency_key is None:
        task = _submit(request, tenant_id)
    else:
        _idempotent_submit.config.register_lambda_context(app.lambda_context)
        task_id = _idempotent_submit(request, tenant_id=tenant_id, key=idempotency_key)
        task = _store.require_task(task_id)  # as it is now (a retry may find it running)
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=content_types.APPLICATION_JSON,
        body=TaskSummary.of(task).model_dump(mode="json"),
        headers={"Location": f"/tasks/{task.task_id}"},
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
