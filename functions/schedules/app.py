"""/schedules (agentkit.http.schedules): create, list and delete a tenant's recurring tasks."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api.schedules import ScheduleTarget
from agentkit.api.task_request import check_request
from agentkit.config import settings
from agentkit.http import schedules
from agentkit.http.resolver import create_resolver, resolve
from agentkit.models import SubmitTaskRequest
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
_config = settings()
_registry = default_registry()


def _check_task(request: SubmitTaskRequest, tenant_id: str) -> object:
    """The same checks as POST /tasks: a schedule that could never start a task is a 400."""
    return check_request(request, registry=_registry, settings=_config, tenant_id=tenant_id)


app = create_resolver(
    schedules.router(
        schedules.ScheduleRoutes(
            store=TaskStore(_config.table_name),
            scheduler=boto3.client("scheduler"),
            target=ScheduleTarget(
                function_arn=os.environ.get("SCHEDULE_TARGET_ARN", ""),
                role_arn=os.environ.get("SCHEDULER_ROLE_ARN", ""),
            ),
            check_task=_check_task,
        )
    )
)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
