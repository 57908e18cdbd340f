"""The task routes (agentkit.http.tasks): GET /tasks, GET /tasks/{task_id},
GET /tasks/{task_id}/events, POST /tasks/{task_id}/cancel, POST /tasks/{task_id}/messages;
and the public GET /openapi.json of the whole API (agentkit.http.openapi)."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.admission import step_functions_starter
from agentkit.api.follow_ups import IdempotentFollowUp, post_follow_up
from agentkit.api.tasks import (
    step_functions_releaser,
    step_functions_resumer,
    step_functions_stopper,
)
from agentkit.config import TasksSettings, load
from agentkit.http import tasks
from agentkit.http.openapi import document_router
from agentkit.http.resolver import create_resolver, resolve
from agentkit.loop.runs import step_functions_run_starter
from agentkit.models.api import (
    FollowUpAccepted,
    FollowUpRequest,
    TaskEventList,
    TaskPage,
    TaskView,
)
from agentkit.observability.tracing import traced
from agentkit.store import TaskStore

logger = Logger()
_config = load(TasksSettings)
_sfn = aws.deferred_client("stepfunctions")
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_start_run = (step_functions_run_starter(_sfn, _config.state_machine_arn)
              if _config.state_machine_arn else None)
_idempotent: IdempotentFollowUp | None = None


def _post(task_id: str, request: FollowUpRequest, tenant_id: str) -> FollowUpAccepted:
    return post_follow_up(task_id, request, store=_store, tenant_id=tenant_id,
                          start_run=_start_run)


def _idempotent_follow_up() -> IdempotentFollowUp:
    """Built on the first follow-up with an Idempotency-Key (keeps it off cold start)."""
    global _idempotent
    if _idempotent is None:
        # The store's DynamoDB client: Powertools would build its own in a new session.
        _idempotent = IdempotentFollowUp(_post, table_name=_config.idempotency_table_name,
                                         client=_store.client)
    return _idempotent


app = create_resolver(
    tasks.router(
        tasks.TaskRoutes(
            store=_store,
            stop_execution=step_functions_stopper(_sfn),
            release_wait=step_functions_releaser(_sfn),
            # A cancel frees the task's tenant slot and starts the tenant's oldest queued
            # task in it.
            start_execution=(
                step_functions_starter(_sfn, _config.state_machine_arn)
                if _config.state_machine_arn else None
            ),
            max_running_for=_config.max_running_for,
            start_run=_start_run,
            idempotent_follow_up=_idempotent_follow_up,
            resume_wait=step_functions_resumer(_sfn),
        )
    ),
    document_router(),
)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


startup.ready(TaskEventList, TaskPage, TaskView, FollowUpAccepted, FollowUpRequest)
