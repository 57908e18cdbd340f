"""Finalize and MarkFailed states: the terminal write of a task."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from agentkit.config import settings
from agentkit.models import TaskRef
from agentkit.steps.finalize import StepError, fail_task, finalize_task
from agentkit.store import TaskStore

logger = Logger()
_store = TaskStore(settings().table_name)


class FinalizeEvent(TaskRef):
    outcome: Literal["succeeded", "failed"]
    error: StepError = Field(default_factory=StepError)


@logger.inject_lambda_context
@event_parser(model=FinalizeEvent)
def lambda_handler(event: FinalizeEvent, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(task_id=event.task_id)
    if event.outcome == "succeeded":
        task = finalize_task(event.task_id, store=_store)
    else:
        task = fail_task(event.task_id, event.error, store=_store)
        logger.warning("task failed", extra={"reason": task.error})
    return {"task_id": task.task_id, "status": task.status.value}
