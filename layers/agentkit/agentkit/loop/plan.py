"""Plan: open the conversation (system framing + the user's goal) and mark the task RUNNING."""

from __future__ import annotations

from agentkit.models.domain import Message, TaskStatus
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.planner import build_system_prompt
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry


class UnknownToolError(ValueError):
    """The task names a tool its source does not offer (the task fails with this reason)."""


class ToolSourceUnavailableError(RuntimeError):
    """A tool source (an MCP server) could not be listed; the state machine retries Plan
    with backoff before the task fails with this reason."""


def plan_task(ref: TaskRef, *, store: TaskStore, registry: ToolRegistry) -> TurnRef:
    task = store.require_task(ref.task_id)
    if task.status == TaskStatus.QUEUED:
        store.update_task(
            task.task_id,
            changes={"status": TaskStatus.RUNNING.value},
            allowed_statuses=[TaskStatus.QUEUED],
        )
    # The tool surface is fixed here (MCP servers are listed once, by this step); later
    # steps read the snapshot, so the model sees the same tools on every turn.
    # A retried Plan keeps the first snapshot.
    specs = store.get_tool_specs(task.task_id)
    if specs is None:
        resolved = registry.resolve(task.tools)
        if resolved.unknown:
            raise UnknownToolError("; ".join(resolved.unknown.values()))
        if resolved.unreachable:
            raise ToolSourceUnavailableError(
                "; ".join(f"tool '{name}': {why}" for name, why in resolved.unreachable.items())
            )
        specs = store.put_tool_specs(task.task_id, [tool.spec() for tool in resolved.tools])
    system = build_system_prompt(task, specs)
    # All writes are write-once: a retried Plan leaves the conversation unchanged.
    store.put_message(task.task_id, 0, 0, Message(role="system", content=system))
    store.put_message(task.task_id, 0, 1, Message(role="user", content=task.goal))
    return TurnRef(task_id=task.task_id, turn=0)
