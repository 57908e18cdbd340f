"""The task routes (agentkit.http.tasks): GET /tasks, GET /tasks/{task_id},
GET /tasks/{task_id}/events, POST /tasks/{task_id}/cancel; and the public GET /openapi.json
of the whole API (agentkit.http.openapi)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.admission import step_functions_starter
from agentkit.api.tasks import step_functions_releaser, step_functions_stopper
from agentkit.config import TasksSettings, load
from agentkit.http import tasks
from agentkit.http.openapi import document_router
from agentkit.http.resolver import create_resolver, resolve
from agentkit.observability.tracing import traced
from agentkit.store import TaskStore

logger = Logger()
_config = load(TasksSettings)
_sfn = aws.client("stepfunctions")

app = create_resolver(
    tasks.router(
        tasks.TaskRoutes(
            store=TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket),
            stop_execution=step_functions_stopper(_sfn),
            release_wait=step_functions_releaser(_sfn),
            # A cancel frees the task's tenant slot and starts the tenant's oldest queued
            # task in it.
            start_execution=(
                step_functions_starter(_sfn, _config.state_machine_arn)
                if _config.state_machine_arn else None
            ),
            max_running_for=_config.max_running_for,
        )
    ),
    document_router(),
)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
