"""RunTool: execute one stored tool call and store its result (once)."""

from __future__ import annotations

from agentkit.models import TaskEvent, ToolCallRef, ToolResult
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry


def run_tool_call(ref: ToolCallRef, *, store: TaskStore, registry: ToolRegistry) -> ToolResult:
    seq = ref.index + 1
    stored = store.get_message(ref.task_id, ref.turn, seq)
    if stored is not None:
        # A redelivered message: the call already ran; never run a tool twice.
        return _as_result(
            stored.tool_call_id or ref.call_id, stored.name or "", stored.content, stored.is_error
        )

    task = store.require_task(ref.task_id)
    assistant = store.get_message(ref.task_id, ref.turn, 0)
    if assistant is None or ref.index >= len(assistant.tool_calls):
        raise LookupError(f"task '{ref.task_id}' turn {ref.turn} has no tool call #{ref.index}")
    call = assistant.tool_calls[ref.index]
    if call.id != ref.call_id:
        raise LookupError(
            f"tool call #{ref.index} of turn {ref.turn} is '{call.id}', not '{ref.call_id}'"
        )

    if task.status.is_terminal:
        result = ToolResult(
            call_id=call.id,
            name=call.name,
            is_error=True,
            content=f"error: not run, the task is {task.status.value}",
        )
    else:
        result = registry.run(call, allowed=task.tools)
        store.add_event(
            ref.task_id,
            TaskEvent(
                kind="tool_call",
                turn=ref.turn,
                name=call.name,
                call_id=call.id,
                duration_ms=result.duration_ms,
                error=result.content[:500] if result.is_error else None,
            ),
        )
    if not store.put_message(ref.task_id, ref.turn, seq, result.to_message()):
        stored = store.get_message(ref.task_id, ref.turn, seq)
        if stored is not None:
            return _as_result(call.id, call.name, stored.content, stored.is_error)
    return result


def _as_result(call_id: str, name: str, content: str | None, is_error: bool) -> ToolResult:
    return ToolResult(call_id=call_id, name=name, content=content or "", is_error=is_error)
