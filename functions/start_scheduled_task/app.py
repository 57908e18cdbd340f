"""EventBridge Scheduler target: a schedule fired; start its task for its tenant
(agentkit.api.schedules.start_scheduled_task)."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.api.schedules import ScheduleFired, start_scheduled_task
from agentkit.api.submit import step_functions_starter, submit_task
from agentkit.config import load
from agentkit.config.tools import StartScheduledTaskSettings
from agentkit.event_parser import event_parser
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
_config = load(StartScheduledTaskSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_registry = default_registry(
    _config.mcp_servers, policy=_config.security_policy, secret_sources=_config.secret_sources,
    memory=_config.memory_enabled,
)
_security = SecurityManager(_config.security_policy)
_start = step_functions_starter(aws.client("stepfunctions"), _config.state_machine_arn or "")


def _submit(request: SubmitTaskRequest, *, tenant_id: str) -> Task:
    return submit_task(
        request,
        store=_store,
        registry=_registry,
        settings=_config,
        security=_security,
        start_execution=_start,
        tenant_id=tenant_id,
    )


@traced
@logger.inject_lambda_context
@event_parser(model=ScheduleFired)
def lambda_handler(event: ScheduleFired, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(schedule_id=event.schedule_id, tenant_id=event.tenant_id)
    task = start_scheduled_task(event, store=_store, submit=_submit)
    logger.info("scheduled task submitted",
                extra={"task_id": task.task_id, "queued": task.execution_arn is None})
    return {"task_id": task.task_id, "status": task.status.value}


startup.ready()
