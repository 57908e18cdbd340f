"""Runs of a task: a follow-up message (POST /tasks/{id}/messages) continues an ended task
with its whole conversation as a new run, in an execution of its own.

* `start_next_run` begins the run of the oldest queued follow-up once the task has no run
  active (the API right after accepting a message; Finalize, MarkFailed and the stop path
  after a run ends; a cancel) and starts its execution, named `<task id>-run-<n>` so a
  repeated start is harmless. Every step is a conditional write (agentkit.store.tasks), so
  callers racing for the same run begin it once; a caller that dies between beginning the
  run and starting its execution leaves it QUEUED without one, and the next caller (or the
  next follow-up) starts it.
* `plan_or_continue` is the Plan state: the first run plans (agentkit.loop.plan), a later
  one (`continue_run`) adds its follow-up to the conversation as a user message after the
  turn it continues from, rewriting nothing, and the loop goes on from that turn.

Budgets apply per run: max_turns counts the run's own turns (from `run_first_turn`),
max_tokens and max_cost_usd what the run spent (`Task.run_usage`); the task's usage adds up
every run. Patience (max_wait_seconds) starts afresh with each run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from agentkit.models.domain import Message, Task, TaskEvent, TaskStatus
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.store import TaskStore
from agentkit.store.tasks import FOLLOW_UP_SEQ, MAX_FOLLOW_UP_SEQ

if TYPE_CHECKING:
    from agentkit.tools import ToolRegistry

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 2000


class RunStarter(Protocol):
    def __call__(self, task_id: str, run: int) -> str:
        """Start the execution of run `run` of a task; return its ARN."""
        ...


def execution_name(task_id: str, run: int) -> str:
    """Run 1's execution is named after the task (agentkit.admission); run n after both."""
    return task_id if run == 1 else f"{task_id}-run-{run}"


def step_functions_run_starter(client: Any, state_machine_arn: str) -> RunStarter:
    """Starts run n of a task as execution `<task id>-run-<n>`: a repeated start of the same
    run is a no-op, and each run has its own execution."""
    from botocore.exceptions import ClientError

    def start(task_id: str, run: int) -> str:
        name = execution_name(task_id, run)
        try:
            response = client.start_execution(
                stateMachineArn=state_machine_arn, name=name,
                input=json.dumps({"task_id": task_id, "run": run}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            execution_arn = state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{execution_arn}:{name}"
        return str(response["executionArn"])

    return start


def start_next_run(task_id: str, *, store: TaskStore, start_run: RunStarter | None) -> int | None:
    """Begin and start the next queued follow-up's run if the task has none active. Returns
    the run number started (None: nothing to start). A start that fails ends the run FAILED
    with the reason, and the next queued follow-up (if any) gets its turn."""
    if start_run is None:
        return None
    for _ in range(100):  # each round starts a run or ends one that could not start
        task = store.require_task(task_id)
        if not (task.status == TaskStatus.QUEUED and task.run > 1 and not task.execution_arn):
            if not task.status.is_terminal or not task.queued_follow_ups:
                return None  # the common end of a task: one read, nothing queued
            begun = store.begin_next_run(task_id)
            if begun is None:
                return None
            task = begun
        # else: begun by a caller that died before starting it; starts are idempotent
        try:
            execution_arn = start_run(task_id, task.run)
        except Exception as error:
            reason = f"could not start run {task.run}: {type(error).__name__}: {error}"
            logger.warning("task %s: %s", task_id, reason)
            if store.finish_task(task_id, TaskStatus.FAILED, error=reason[:MAX_REASON_CHARS]):
                store.add_event(task_id, TaskEvent(kind="status", turn=task.turn,
                                                   name=TaskStatus.FAILED.value, error=reason,
                                                   detail={"run": task.run}))
            continue
        store.set_run_execution(task_id, task.run, execution_arn)
        return task.run
    return None


def continue_run(task: Task, *, store: TaskStore) -> TurnRef:
    """The Plan step of a follow-up run: mark it RUNNING and add its follow-up message to
    the conversation after the turn it continues from. Write-once: a retried step changes
    nothing. The turn's missing tool results (a run that ended mid-turn) are filled by
    CallModel before the call, as for any turn."""
    ref = TurnRef(task_id=task.task_id, turn=task.run_first_turn)
    if task.status.is_terminal:
        return ref  # cancelled before it began: it adds nothing (CallModel stops)
    if task.status == TaskStatus.QUEUED:
        store.update_task(task.task_id, changes={"status": TaskStatus.RUNNING.value},
                          allowed_statuses=[TaskStatus.QUEUED])
    number, seq = task.run_follow_up, task.run_message_seq or FOLLOW_UP_SEQ
    record = store.get_follow_up(task.task_id, number) if number is not None else None
    if record is None:
        raise RuntimeError(f"task {task.task_id}: run {task.run} has no follow-up message")
    if seq > MAX_FOLLOW_UP_SEQ:
        raise ValueError(
            f"task {task.task_id}: {seq - FOLLOW_UP_SEQ} runs in a row ended without a turn "
            f"after turn {task.run_first_turn}; no room for another follow-up there"
        )
    message = Message(role="user", content=record.content)
    if store.put_message(task.task_id, task.run_first_turn, seq, message):
        store.add_event(task.task_id, TaskEvent(
            kind="status", turn=task.run_first_turn, name=TaskStatus.RUNNING.value,
            detail={"run": task.run, "follow_up": number},
        ))
    return ref


def plan_or_continue(
    ref: TaskRef,
    *,
    store: TaskStore,
    registry: ToolRegistry,
    plan: Callable[..., TurnRef] | None = None,
    **plan_options: Any,
) -> TurnRef:
    """The Plan state for any run: run 1 plans (`plan`, default agentkit.loop.plan.plan_task,
    with `plan_options`); a later run continues the conversation. A later run whose task
    never got its opening (run 1 failed before Plan wrote it) plans that first."""
    from agentkit.loop.plan import plan_task

    planner = plan or plan_task
    task = store.require_task(ref.task_id)
    if task.run <= 1:
        return planner(ref, store=store, registry=registry, **plan_options)
    if store.get_message(task.task_id, 0, 1) is None or store.get_tool_specs(task.task_id) is None:
        planner(ref, store=store, registry=registry, **plan_options)
        task = store.require_task(ref.task_id)
    return continue_run(task, store=store)


__all__ = [
    "RunStarter",
    "continue_run",
    "execution_name",
    "plan_or_continue",
    "start_next_run",
    "step_functions_run_starter",
]
