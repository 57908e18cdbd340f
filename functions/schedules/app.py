"""/schedules (agentkit.http.schedules): create, list and delete a tenant's recurring tasks."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.api.schedules import ScheduleTarget
from agentkit.api.task_request import check_request
from agentkit.config import load
from agentkit.config.tools import SchedulesSettings
from agentkit.http import schedules
from agentkit.http.resolver import create_resolver, resolve
from agentkit.models.api import SubmitTaskRequest
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
_config = load(SchedulesSettings)
_registry = default_registry(
    _config.mcp_servers, policy=_config.security_policy, secret_sources=_config.secret_sources,
    memory=_config.memory_enabled,
)
_security = SecurityManager(_config.security_policy)


def _check_task(request: SubmitTaskRequest, tenant_id: str) -> object:
    """The same checks as POST /tasks: a schedule that could never start a task is a 400."""
    return check_request(request, registry=_registry, settings=_config, tenant_id=tenant_id,
                         security=_security)


app = create_resolver(
    schedules.router(
        schedules.ScheduleRoutes(
            store=TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket),
            scheduler=aws.deferred_client("scheduler"),
            target=ScheduleTarget(
                function_arn=_config.schedule_target_arn,
                role_arn=_config.scheduler_role_arn,
            ),
            check_task=_check_task,
        )
    )
)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


startup.ready()
