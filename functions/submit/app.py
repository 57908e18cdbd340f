"""POST /tasks (the route: agentkit.http.submit): validate the body, store the task, start
its agent loop. With an `Idempotency-Key` header the submit runs once per (tenant, key)."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.api.submit import IdempotentSubmitter, step_functions_starter, submit_task
from agentkit.config import load
from agentkit.config.tools import SubmitSettings
from agentkit.http import submit
from agentkit.http.resolver import create_resolver, resolve
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
metrics = Metrics()

_config = load(SubmitSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_registry = default_registry(
    _config.mcp_servers, policy=_config.security_policy, secret_sources=_config.secret_sources,
    memory=_config.memory_enabled,
)
_security = SecurityManager(_config.security_policy)
_start = step_functions_starter(aws.client("stepfunctions"), _config.state_machine_arn or "")


def _submit(request: SubmitTaskRequest, tenant_id: str) -> Task:
    task = submit_task(
        request,
        store=_store,
        registry=_registry,
        settings=_config,
        security=_security,
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


app = create_resolver(
    submit.router(
        submit.SubmitRoutes(
            submit=_submit,
            # The store's DynamoDB client: Powertools would build its own in a new session
            # (the service models loaded a second time at cold start).
            idempotent_submit=IdempotentSubmitter(
                _submit, table_name=_config.idempotency_table_name, client=_store.client
            ),
            require_task=_store.require_task,
        )
    )
)


@traced
@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


startup.ready()
