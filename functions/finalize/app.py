"""Finalize, MarkFailed and ReleaseSlot (the stop path): the terminal write of a task, then
its tenant slot goes to the oldest queued task of that tenant (started here). Before a task
with memory "auto" is marked SUCCEEDED its durable facts become memories (the model, the
router and the embedding model are made at the first such task, not at cold start)."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.admission import ExecutionStarter, step_functions_starter
from agentkit.config import load
from agentkit.config.model_calls import FinalizeSettings
from agentkit.event_parser import event_parser
from agentkit.loop.finalize import end_task
from agentkit.loop.parent_report import report_to_parent, sfn_resumer
from agentkit.loop.runs import RunStarter, step_functions_run_starter
from agentkit.models.domain import Task
from agentkit.models.payloads import FinalizeEvent
from agentkit.observability.metrics import task_end
from agentkit.observability.tracing import traced
from agentkit.store import TaskStore

logger = Logger()
_config = load(FinalizeSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_sfn: Any = None


def _state_machine(state_machine_arn: str | None) -> tuple[Any, str] | None:
    """The Step Functions client (built on first use) and the state machine's ARN: the
    event's, else the deployment's; None without one."""
    global _sfn
    arn = state_machine_arn or _config.state_machine_arn
    if not arn:
        return None
    if _sfn is None:
        _sfn = aws.client("stepfunctions")
    return _sfn, arn


def _starter(state_machine_arn: str | None) -> ExecutionStarter | None:
    target = _state_machine(state_machine_arn)
    return step_functions_starter(*target) if target else None


def _run_starter(state_machine_arn: str | None) -> RunStarter | None:
    """Starts the run of a follow-up queued while the task's run was active."""
    target = _state_machine(state_machine_arn)
    return step_functions_run_starter(*target) if target else None


# Seconds kept back from the Lambda timeout for the terminal write and the slot after an
# extraction.
_MARGIN_S = 15.0
_extraction: list[Callable[[str, float], object]] = []


def _extractor() -> Callable[[str, float], object]:
    """extract(task_id, seconds it may take): the memory extraction of this deployment."""
    if _extraction:
        return _extraction[0]
    from agentkit.llm import get_client, parse_model
    from agentkit.llm.base import LLMRequest, LLMResponse
    from agentkit.llm.router import ModelRouter
    from agentkit.llm.windows import context_window
    from agentkit.memory.extraction import extract_for_finalize
    from agentkit.memory.long_term import memory_provider
    from agentkit.store.provider_state import ProviderStateStore

    router = ModelRouter(
        state=ProviderStateStore(_store.client, _config.table_name),
        limits=_config.provider_limits,
        tenant_weight=_config.weight_for,
    )
    memory = memory_provider(_config, _config.table_name)

    def models(task: Task) -> list[str]:
        return [task.model, *task.fallback_models]

    def extract(task_id: str, seconds: float) -> object:
        deadline = time.monotonic() + seconds

        def complete(task: Task, request: LLMRequest) -> tuple[LLMResponse, str]:
            scripted = _config.scripted_model_enabled
            routed = router.complete(
                models(task), request,
                client_for=lambda model: get_client(
                    model, providers=_config.providers,
                    scripted_turns=(_store.get_script(task.task_id)
                                    if scripted and parse_model(model)[0] == "scripted"
                                    else None),
                    scripted_enabled=scripted,
                ),
                time_budget_s=max(deadline - time.monotonic(), 1.0),
                tenant=task.tenant_id,
            )
            return routed.response, routed.model

        return extract_for_finalize(
            task_id, store=_store, memory=memory, complete_for=complete,
            window_for=lambda task: min(context_window(m, _config.context_windows)
                                        for m in models(task)),
            deadline=deadline,
        )

    _extraction.append(extract)
    return extract


def _extract(task_id: str, remaining_s: float) -> None:
    """The extraction of a task with memory "auto" (the model and embedding clients are
    imported for the first such task only: a read of the task decides)."""
    task = _store.get_task(task_id)
    if task is None or task.memory != "auto":
        return
    _extractor()(task_id, remaining_s - _MARGIN_S)


def _report_to_parent(task: Task) -> bool:
    global _sfn
    if _sfn is None:
        _sfn = aws.client("stepfunctions")
    return report_to_parent(task, store=_store, resume=sfn_resumer(_sfn))


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
        start_run=_run_starter(event.state_machine_arn),
        extract_memories=(
            (lambda task_id: _extract(task_id, context.get_remaining_time_in_millis() / 1000))
            if _config.memory_enabled else None
        ),
        report_to_parent=_report_to_parent,
    )
    task_end(task, event.outcome)  # duration, turns, outcome (EMF)
    if event.outcome == "failed":
        logger.warning("task failed", extra={"reason": task.error})
    if started:
        logger.info("queued task started in the freed slot", extra={"started_task_id": started})
    return {"task_id": task.task_id, "status": task.status.value}


startup.ready()
