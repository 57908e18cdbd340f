"""The tasks group of the API, besides POST /tasks (api/submit.py): what a tenant sees of its
tasks (GET /tasks, GET /tasks/{id}, GET /tasks/{id}/events) and POST /tasks/{id}/cancel,
which ends a task as CANCELLED with what it has so far."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from agentkit.admission import ExecutionStarter, release_and_start_next, remove_from_queue
from agentkit.config import DEFAULT_MAX_RUNNING
from agentkit.errors import InputError
from agentkit.loop.runs import RunStarter, start_next_run
from agentkit.loop.task_tokens import answer
from agentkit.models.api import TaskEventList, TaskPage, TaskSummary, TaskView
from agentkit.models.domain import ApprovalStatus, Task, TaskEvent, TaskStatus
from agentkit.store import TaskNotFoundError, TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalStore
from agentkit.store.children import ChildrenStore
from agentkit.store.errors import InvalidCursorError


def require_tenant_task(task_id: str, *, store: TaskStore, tenant_id: str) -> Task:
    """The task if it is the tenant's. Another tenant's task is not found, exactly like an
    unknown id (same error, same message), so ids reveal nothing across tenants."""
    task = store.get_task(task_id)
    if task is None or task.tenant_id != tenant_id:
        raise TaskNotFoundError(task_id)
    return task


def get_task_view(task_id: str, *, store: TaskStore, tenant_id: str) -> TaskView:
    """The task as its tenant sees it (another tenant's: not found, like an unknown id)."""
    task = require_tenant_task(task_id, store=store, tenant_id=tenant_id)
    summary = TaskSummary.of(task).model_dump()
    return TaskView(
        **summary,
        tools=task.tools,
        memory_scope=task.memory_scope,
        memory=task.memory,
        plan=task.plan, plan_steps=task.plan_steps, output_schema=task.output_schema,
        max_turns=task.max_turns,
        max_tokens=task.max_tokens,
        max_cost_usd=task.max_cost_usd,
        max_wait_seconds=task.max_wait_seconds,
        waited_seconds=task.waited_seconds,
        messages=store.list_messages(task_id),
        approvals=[record.view() for record in ApprovalStore(store).list(task_id)],
        runs=store.list_runs(task),
        queued_follow_ups=task.queued_follow_ups,
        children=[TaskSummary.of(child) for child in list_children(task_id, store=store)],
    )


def list_children(task_id: str, *, store: TaskStore) -> list[Task]:
    """The sub-tasks the task's `delegate` calls made, oldest first (a few per turn at
    most, MaxDelegationFanout: read one by one)."""
    found = [store.get_task(child_id) for child_id in ChildrenStore(store).child_ids(task_id)]
    return [child for child in found if child is not None]


def list_task_page(
    *,
    store: TaskStore,
    tenant_id: str,
    status: TaskStatus | None = None,
    limit: int = 20,
    cursor: str | None = None,
    parent_id: str | None = None,
) -> TaskPage:
    """One page of the tenant's tasks, newest first. A cursor another tenant was handed (or
    one this API never handed out) is a 400 naming `cursor`. With `parent_id`: that task's
    sub-tasks, newest first, all on one page (none when it is not the tenant's task)."""
    if parent_id is not None:
        parent = store.get_task(parent_id)
        if parent is None or parent.tenant_id != tenant_id:
            return TaskPage(items=[])
        children = [child for child in reversed(list_children(parent_id, store=store))
                    if child.tenant_id == tenant_id and status in (None, child.status)]
        return TaskPage(items=[TaskSummary.of(child) for child in children])
    try:
        tasks, next_cursor = store.list_tasks(tenant_id, status=status, limit=limit, cursor=cursor)
    except InvalidCursorError as error:
        raise InputError("cursor", str(error)) from None
    return TaskPage(items=[TaskSummary.of(task) for task in tasks], next_cursor=next_cursor)


def get_task_events(task_id: str, *, store: TaskStore, tenant_id: str) -> TaskEventList:
    """The task's timeline: model calls, tool calls, approvals and status changes."""
    require_tenant_task(task_id, store=store, tenant_id=tenant_id)
    return TaskEventList(items=store.list_events(task_id))


# --- POST /tasks/{id}/cancel


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
    start_run: RunStarter | None = None,
    resume_wait: Callable[[str], None] | None = None,
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

    Follow-ups queued before the cancel are discarded; one that arrives after it starts a
    new run (`start_run`), as for any ended task.
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
    _cancel_sub_tasks(task, store=store, stop_execution=stop_execution, resume_wait=resume_wait,
                      release_wait=release_wait)
    store.discard_follow_ups(task.task_id, through=task.follow_ups)
    start_next_run(task.task_id, store=store, start_run=start_run)
    return store.require_task(task.task_id)


def _cancel_sub_tasks(task: Task, *, store: TaskStore, stop_execution: Callable[[str], None],
                      resume_wait: Callable[[str], None] | None,
                      release_wait: Callable[[str], None] | None) -> None:
    """Sub-agents: the task's own sub-tasks are cancelled with it (all the way down, their
    usage reaching it), and a sub-task cancelled on its own tells its parent, whose wait
    the last report of a turn resumes (`resume_wait`, SendTaskSuccess)."""
    # Imported here: the delegation machinery (tools, the gate) is for a cancel only, and
    # the task routes' GETs (nearly every request) never load it at cold start.
    from agentkit.loop.children import cancel_children
    from agentkit.loop.parent_report import report_to_parent

    cancel_children(task.task_id, store=store, stop_execution=stop_execution,
                    resume=resume_wait, release_wait=release_wait)
    report_to_parent(store.require_task(task.task_id), store=store, resume=resume_wait)


def cancel_tenant_task(
    task_id: str,
    *,
    store: TaskStore,
    tenant_id: str,
    stop_execution: Callable[[str], None],
    release_wait: Callable[[str], None] | None = None,
    start_execution: ExecutionStarter | None = None,
    max_running: int = DEFAULT_MAX_RUNNING,
    start_run: RunStarter | None = None,
    resume_wait: Callable[[str], None] | None = None,
) -> TaskSummary:
    """POST /tasks/{id}/cancel for a tenant: another tenant's task is not found (404), a
    task that already ended is TaskAlreadyFinishedError (409)."""
    task = require_tenant_task(task_id, store=store, tenant_id=tenant_id)
    return TaskSummary.of(cancel_task(task, store=store, stop_execution=stop_execution,
                                      release_wait=release_wait,
                                      start_execution=start_execution,
                                      max_running=max_running, start_run=start_run,
                                      resume_wait=resume_wait))


def step_functions_stopper(client: Any) -> Callable[[str], None]:
    def stop(execution_arn: str) -> None:
        # Never started or already gone: the task record is what counts.
        with contextlib.suppress(client.exceptions.ExecutionDoesNotExist):
            client.stop_execution(executionArn=execution_arn, error="TaskCancelled",
                                  cause="cancelled by the caller")

    return stop


def step_functions_resumer(client: Any) -> Callable[[str], None]:
    """Resumes a parent waiting for its sub-tasks (the last one was cancelled)."""

    def resume(task_token: str) -> None:
        answer(client.send_task_success, taskToken=task_token,
               output='{"resumed": true}')

    return resume


def step_functions_releaser(client: Any) -> Callable[[str], None]:
    """Answers a callback wait of a cancelled task (already over: nothing to do)."""

    def release(task_token: str) -> None:
        answer(client.send_task_failure, taskToken=task_token, error="TaskCancelled",
               cause="the task was cancelled")

    return release
