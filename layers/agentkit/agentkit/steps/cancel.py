"""POST /tasks/{id}/cancel: end a task as CANCELLED with what it has so far."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from agentkit.config import DEFAULT_MAX_RUNNING
from agentkit.loop.task_tokens import answer
from agentkit.models import ApprovalStatus, Task, TaskEvent, TaskStatus, TaskSummary
from agentkit.steps.slots import ExecutionStarter, release_and_start_next, remove_from_queue
from agentkit.steps.view import require_tenant_task
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalStore


class TaskAlreadyFinishedError(RuntimeError):
    def __init__(self, task: Task) -> None:
        super().__init__(f"task '{task.task_id}' already ended as {task.status.value}")
        self.task = task


def cancel_task(
    task: Task,
    *,
    store: TaskStore,
    stop_execution: Callable[[str], None],
    release_wait: Callable[[str], None] | None = None,
    start_execution: ExecutionStarter | None = None,
    max_running: int = DEFAULT_MAX_RUNNING,
) -> Task:
    """Mark CANCELLED first (conditional: only an active task), then stop the execution.

    The conversation and the usage spent stay on the task. A step already running when
    the cancel arrives cannot overwrite CANCELLED: its writes require RUNNING. Calls still
    waiting for approval are closed as DENIED and their waits answered (`release_wait`
    with the task token), so a late approval finds nothing to approve (409).

    Tenant slots: a task still waiting in its tenant's queue is taken out of it (it holds
    no slot); one that holds a slot (running, or claimed a moment ago) frees it, and the
    oldest queued task of the tenant starts in it (`start_execution`, the tenant's
    `max_running`).
    """
    if not store.finish_task(task.task_id, TaskStatus.CANCELLED, error="cancelled by the caller"):
        raise TaskAlreadyFinishedError(store.require_task(task.task_id))
    store.add_event(task.task_id, TaskEvent(kind="status", turn=task.turn,
                                            name=TaskStatus.CANCELLED.value))
    holds_slot = not (task.status == TaskStatus.QUEUED and remove_from_queue(task, store=store))
    # Read again: a task claimed from the queue just now may have been started meanwhile.
    execution_arn = task.execution_arn or store.require_task(task.task_id).execution_arn
    if execution_arn:
        stop_execution(execution_arn)
    if holds_slot:
        # After the stop, so the tenant never runs more than its cap.
        release_and_start_next(task.task_id, task.tenant_id, store=store,
                               start_execution=start_execution, max_running=max_running)
    approvals = ApprovalStore(store)
    for record in approvals.list(task.task_id):
        if record.status != ApprovalStatus.PENDING:
            continue
        with contextlib.suppress(ApprovalConflictError):  # decided meanwhile: theirs wins
            approvals.decide(task.task_id, record.approval_id, ApprovalStatus.DENIED,
                             reason="the task was cancelled")
            if record.task_token and release_wait is not None:
                release_wait(record.task_token)
    return store.require_task(task.task_id)


def cancel_tenant_task(
    task_id: str,
    *,
    store: TaskStore,
    tenant_id: str,
    stop_execution: Callable[[str], None],
    release_wait: Callable[[str], None] | None = None,
    start_execution: ExecutionStarter | None = None,
    max_running: int = DEFAULT_MAX_RUNNING,
) -> TaskSummary:
    """POST /tasks/{id}/cancel for a tenant: another tenant's task is not found (404), a
    task that already ended is TaskAlreadyFinishedError (409)."""
    task = require_tenant_task(task_id, store=store, tenant_id=tenant_id)
    return TaskSummary.of(cancel_task(task, store=store, stop_execution=stop_execution,
                                      release_wait=release_wait,
                                      start_execution=start_execution,
                                      max_running=max_running))


def step_functions_stopper(client: Any) -> Callable[[str], None]:
    def stop(execution_arn: str) -> None:
        # Never started or already gone: the task record is what counts.
        with contextlib.suppress(client.exceptions.ExecutionDoesNotExist):
            client.stop_execution(executionArn=execution_arn, error="TaskCancelled",
                                  cause="cancelled by the caller")

    return stop


def step_functions_releaser(client: Any) -> Callable[[str], None]:
    """Answers a callback wait of a cancelled task (already over: nothing to do)."""

    def release(task_token: str) -> None:
        answer(client.send_task_failure, taskToken=task_token, error="TaskCancelled",
               cause="the task was cancelled")

    return release
