"""Plan: open the conversation (system framing + the user's goal) and mark the task RUNNING.

Where the deployment has long-term memory and the task's `memory` is not `off`, the memories
of its tenant and scope nearest its goal go into its instructions (a `memory_recalled`
event names them). Recall is a help, not a need: when it fails (the embedding endpoint
down, a bad key) the event says so and the task goes on without them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from agentkit.config.memory import DEFAULT_RECALL_MIN_SCORE
from agentkit.models.domain import Message, Task, TaskEvent, TaskStatus
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.planner import build_system_prompt
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

if TYPE_CHECKING:
    from agentkit.memory.long_term import MemoryProvider

logger = logging.getLogger(__name__)


class UnknownToolError(ValueError):
    """The task names a tool its source does not offer (the task fails with this reason)."""


class ToolSourceUnavailableError(RuntimeError):
    """A tool source (an MCP server) could not be listed; the state machine retries Plan
    with backoff before the task fails with this reason."""


def plan_task(
    ref: TaskRef,
    *,
    store: TaskStore,
    registry: ToolRegistry,
    memory: MemoryProvider | None = None,
    recall_min_score: float = DEFAULT_RECALL_MIN_SCORE,
) -> TurnRef:
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
    # Once: a retried Plan that already wrote the instructions keeps them (and no second
    # event).
    if (memory is not None and task.memory != "off"
            and store.get_message(task.task_id, 0, 0) is None):
        notes = _recalled_notes(task, memory, store=store, min_score=recall_min_score)
        if notes:
            system = f"{system}\n{notes}\n"
    # All writes are write-once: a retried Plan leaves the conversation unchanged.
    store.put_message(task.task_id, 0, 0, Message(role="system", content=system))
    store.put_message(task.task_id, 0, 1, Message(role="user", content=task.goal))
    return TurnRef(task_id=task.task_id, turn=0)


def _recalled_notes(task: Task, memory: MemoryProvider, *, store: TaskStore,
                    min_score: float) -> str | None:
    """The instructions block of the memories nearest the task's goal, recorded as a
    `memory_recalled` event; None when there are none, or when recall failed (the event
    then says why it was skipped)."""
    from agentkit.memory.long_term import instructions_block, recall_for_task

    long_term = None
    started = time.monotonic()
    try:
        long_term = memory()
        if long_term is None:  # the deployment has no EmbeddingModel
            return None
        recalled = recall_for_task(long_term, task.tenant_id, task.goal,
                                   scope=task.memory_scope, min_score=min_score)
    except Exception as error:  # recall helps the task; it never fails it
        logger.warning("task %s: memory recall skipped", task.task_id, exc_info=True)
        store.add_event(task.task_id, TaskEvent(
            kind="memory_recalled",
            name=long_term.embedder.name if long_term is not None else "memory",
            duration_ms=int((time.monotonic() - started) * 1000),
            error=f"skipped: {type(error).__name__}: {error}"[:500],
            detail={"skipped": True, "scope": task.memory_scope},
        ))
        return None
    usage = recalled.usage
    # The query's embedding is the task's to pay (a retried Plan embeds, and pays, again).
    store.add_usage(task.task_id, usage.as_task_usage())
    store.add_event(task.task_id, TaskEvent(
        kind="memory_recalled",
        name=long_term.embedder.name,
        duration_ms=int((time.monotonic() - started) * 1000),
        usage=usage.as_task_usage(),
        detail={
            "scope": task.memory_scope,
            "min_score": min_score,
            "memories": [{"memory_id": hit.memory.memory_id, "score": hit.score}
                         for hit in recalled.memories],
            "embedding_tokens": usage.input_tokens,
            "embedding_cost_usd": usage.cost_usd,
        },
    ))
    return instructions_block(recalled.memories)
