"""GET /tasks, GET /tasks/{id}, GET /tasks/{id}/events: what a tenant sees of its tasks."""

from __future__ import annotations

from agentkit.errors import InputError
from agentkit.models import Task, TaskEventList, TaskPage, TaskStatus, TaskSummary, TaskView
from agentkit.store import TaskNotFoundError, TaskStore
from agentkit.store.approvals import ApprovalStore
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
        max_turns=task.max_turns,
        max_tokens=task.max_tokens,
        max_cost_usd=task.max_cost_usd,
        max_wait_seconds=task.max_wait_seconds,
        waited_seconds=task.waited_seconds,
        messages=store.list_messages(task_id),
        approvals=[record.view() for record in ApprovalStore(store).list(task_id)],
    )


def list_task_page(
    *,
    store: TaskStore,
    tenant_id: str,
    status: TaskStatus | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> TaskPage:
    """One page of the tenant's tasks, newest first. A cursor another tenant was handed (or
    one this API never handed out) is a 400 naming `cursor`."""
    try:
        tasks, next_cursor = store.list_tasks(tenant_id, status=status, limit=limit, cursor=cursor)
    except InvalidCursorError as error:
        raise InputError("cursor", str(error)) from None
    return TaskPage(items=[TaskSummary.of(task) for task in tasks], next_cursor=next_cursor)


def get_task_events(task_id: str, *, store: TaskStore, tenant_id: str) -> TaskEventList:
    """The task's timeline: model calls, tool calls, approvals and status changes."""
    require_tenant_task(task_id, store=store, tenant_id=tenant_id)
    return TaskEventList(items=store.list_events(task_id))
