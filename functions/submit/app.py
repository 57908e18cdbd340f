"""POST /tasks: validate the body, store the task, start its agent loop."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api import create_resolver, current_tenant, resolve
from agentkit.config import settings
from agentkit.models import SubmitTaskRequest, TaskSummary
from agentkit.steps.submit import step_functions_starter, submit_task
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
metrics = Metrics()
app = create_resolver()

_config = settings()
_store = TaskStore(_config.table_name)
_registry = default_registry()
_start = step_functions_starter(boto3.client("stepfunctions"), _config.state_machine_arn or "")


@app.post("/tasks")
def post_task(request: SubmitTaskRequest) -> Response[dict[str, Any]]:
    task = submit_task(
        request,
        store=_store,
        registry=_registry,
        settings=_config,
        start_execution=_start,
        tenant_id=current_tenant(app),
    )
    logger.info(
        "task submitted",
        extra={"task_id": task.task_id, "model": task.model, "tenant_id": task.tenant_id},
    )
    metrics.add_metric(name="TasksSubmitted", unit=MetricUnit.Count, value=1)
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
