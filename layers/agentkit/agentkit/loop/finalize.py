"""Finalize / MarkFailed / the stop path: the terminal writes of the agent loop, then the
task's tenant slot goes to the oldest task of that tenant waiting for one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

from agentkit.admission import ExecutionStarter, release_and_start_next
from agentkit.loop.runs import RunStarter, start_next_run
from agentkit.models.domain import Task, TaskEvent, TaskStatus
from agentkit.models.payloads import StepError
from agentkit.store import TaskStore

MAX_REASON_CHARS = 2000


def readable_reason(step_error: StepError) -> str:
    """`ModelRequestError: invalid api key` from a Lambda error, else `Error: Cause`."""
    cause = step_error.cause or ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        reason = f"{parsed.get('errorType') or step_error.error}: {parsed['errorMessage']}"
    elif cause:
        reason = f"{step_error.error}: {cause}"
    else:
        reason = step_error.error
    return reason[:MAX_REASON_CHARS]


def finalize_task(task_id: str, *, store: TaskStore) -> Task:
    """Record the last assistant message as the answer and mark SUCCEEDED."""
    messages = store.list_messages(task_id)
    answer = next((m.content for m in reversed(messages) if m.role == "assistant"), None)
    # Conditional: a task cancelled meanwhile stays CANCELLED.
    if store.finish_task(task_id, TaskStatus.SUCCEEDED, answer=answer or ""):
        store.add_event(task_id, TaskEvent(kind="status", name=TaskStatus.SUCCEEDED.value))
    return store.require_task(task_id)


def fail_task(task_id: str, step_error: StepError, *, store: TaskStore) -> Task:
    reason = readable_reason(step_error)
    if store.finish_task(task_id, TaskStatus.FAILED, error=reason):
        store.add_event(
            task_id, TaskEvent(kind="status", name=TaskStatus.FAILED.value, error=reason)
        )
    return store.require_task(task_id)


Outcome = Literal["succeeded", "failed", "stopped"]


def end_task(
    task_id: str,
    outcome: Outcome,
    *,
    store: TaskStore,
    error: StepError | None = None,
    start_execution: ExecutionStarter | None,
    max_running_for: Callable[[str], int],
    start_run: RunStarter | None = None,
    extract_memories: Callable[[str], object] | None = None,
    report_to_parent: Callable[[Task], object] | None = None,
) -> tuple[Task, str | None]:
    """The terminal write for `outcome` ("stopped": none, the status is already terminal),
    then the task's slot is released (exactly once, however often this runs) and the
    oldest queued task of its tenant started in it, and the task's next queued follow-up
    (agentkit.loop.runs) begins its run. Returns the task and the id started.
    `extract_memories(task_id)` runs before a success is written (a task with memory
    "auto": agentkit.memory.extraction.extract_for_finalize; it never raises), so that a
    task seen SUCCEEDED has its memories stored. A sub-task reports to its parent first
    (`report_to_parent`)."""
    if outcome == "succeeded":
        if extract_memories is not None:
            extract_memories(task_id)
        task = finalize_task(task_id, store=store)
    elif outcome == "failed":
        task = fail_task(task_id, error or StepError(), store=store)
    else:
        task = store.require_task(task_id)
    if report_to_parent is not None and task.parent_id:
        report_to_parent(task)  # a sub-task: its parent waits for it (agentkit.loop.children)
    started = release_and_start_next(
        task.task_id,
        task.tenant_id,
        store=store,
        start_execution=start_execution,
        max_running=max_running_for(task.tenant_id),
    )
    # A follow-up queued while this run was active starts its own run now.
    start_next_run(task.task_id, store=store, start_run=start_run)
    return task, started
