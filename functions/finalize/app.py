"""Finalize, MarkFailed and ReleaseSlot (the stop path): the terminal write of a task, then
its tenant slot goes to the oldest queued task of that tenant (started here)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.admission import ExecutionStarter, step_functions_starter
from agentkit.config import FinalizeSettings, load
from agentkit.event_parser import event_parser
from agentkit.loop.finalize import end_task
from agentkit.models.payloads import FinalizeEvent
from agentkit.observability.metrics import task_end
from agentkit.observability.tracing import traced
from agentkit.store import TaskStore

logger = Logger()
_config = load(FinalizeSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_sfn: Any = None


def _starter(state_machine_arn: str | None) -> ExecutionStarter | None:
    global _sfn
    arn = state_machine_arn or _config.state_machine_arn
    if not arn:
        return None
    if _sfn is None:
        _sfn = aws.client("stepfunctions")
    return step_functions_starter(_sfn, arn)


@traced
@logger.inject_lambda_context
@event_parser(model=FinalizeEvent)
def lambda_handler(event: FinalizeEvent, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(task_id=event.task_id)
    start = _starter(event.state_machine_arn)
    if start is None:
        logger.warning("no state machine ARN: the slot is freed but no queued task is started")
    task, started = end_task(
        event.task_id,
        event.outcome,
        store=_store,
        error=event.error,
        start_execution=start,
        max_running_for=_config.max_running_for,
    )
    task_end(task, event.outcome)  # duration, turns, outcome (EMF)
    if event.outcome == "failed":
        logger.warning("task failed", extra={"reason": task.error})
    if started:
        logger.info("queued task started in the freed slot", extra={"started_task_id": started})
    return {"task_id": task.task_id, "status": task.status.value}
