"""GET /tasks/{id}: the task with its conversation."""

from __future__ import annotations

from agentkit.models import TaskSummary, TaskView
from agentkit.store import TaskNotFoundError, TaskStore
from agentkit.store.approvals import ApprovalStore


def get_task_view(task_id: str, *, store: TaskStore, tenant_id: str) -> TaskView:
    """The task as its tenant sees it. Another tenant's task is not found, exactly like an
    unknown id (same error, same message), so ids reveal nothing across tenants."""
    task = store.get_task(task_id)
    if task is None or task.tenant_id != tenant_id:
        raise TaskNotFoundError(task_id)
    summary = TaskSummary.of(task).model_dump()
    return TaskView(
        **summary,
        tools=task.tools,
        max_turns=task.max_turns,
        max_tokens=task.max_tokens,
        max_cost_usd=task.max_cost_usd,
        messages=store.list_messages(task_id),
        approvals=[record.view() for record in ApprovalStore(store).list(task_id)],
    )
