"""GET /tasks/{task_id}: the task, its conversation and its usage."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api import create_resolver, current_tenant, resolve
from agentkit.config import settings
from agentkit.models import TaskView
from agentkit.steps.view import get_task_view
from agentkit.store import TaskStore

logger = Logger()
app = create_resolver()
_store = TaskStore(settings().table_name)


@app.get("/tasks/<task_id>")
def get_task(task_id: Annotated[str, Path(min_length=1, max_length=64)]) -> TaskView:
    return get_task_view(task_id, store=_store, tenant_id=current_tenant(app))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
