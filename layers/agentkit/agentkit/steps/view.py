"""GET /tasks/{id}: the task with its conversation."""

from __future__ import annotations

from agentkit.models import TaskSummary, TaskView
from agentkit.store import TaskNotFoundError, TaskStore


def get_task_view(task_id: str, *, store: TaskStore) -> TaskView:
    task = store.get_task(task_id)
    if task is None:
        raise TaskNotFoundError(task_id)
    summary = TaskSummary.of(task).model_dump()
    return TaskView(
        **summary,
        tools=task.tools,
        max_turns=task.max_turns,
        max_tokens=task.max_tokens,
        max_cost_usd=task.max_cost_usd,
        messages=store.list_messages(task_id),
    )
