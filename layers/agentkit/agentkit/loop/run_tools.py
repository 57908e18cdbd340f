"""RunTools: run the calls of one turn (one SQS message, one task token) and store each
result once; then answer the state machine's wait.

The calls run side by side in threads of one invocation (they are mostly I/O: HTTP, MCP
servers), so a turn costs one state transition and one Lambda invocation however many
calls it makes. Each call is asked `decide_call` again before it runs: a call that needs
approval runs only when APPROVED for exactly its arguments.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from typing import TYPE_CHECKING

from agentkit.loop.gate_tools import call_of, decide_call, load_call
from agentkit.loop.task_tokens import StepFunctionsCallbacks, answer
from agentkit.models.domain import Message, Task, TaskEvent, ToolCall, ToolResult
from agentkit.models.payloads import RunToolsMessage, ToolCallRef
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalStore
from agentkit.tools import ToolRegistry
from agentkit.tools.memory import MEMORY_TOOLS, memory_tools, unbound_memory_tools

if TYPE_CHECKING:
    from agentkit.memory.long_term import MemoryProvider

logger = logging.getLogger(__name__)

#: Calls of a turn run at once, up to the tool registry's own pool (4 threads, where each
#: call's timeout runs): more would start a call's timeout while it waits for a thread.
MAX_PARALLEL_CALLS = 4


def run_tool_call(
    ref: ToolCallRef,
    *,
    store: TaskStore,
    registry: ToolRegistry,
    security: SecurityManager | None = None,
    approvals: ApprovalStore | None = None,
    memory: MemoryProvider | None = None,
) -> ToolResult:
    """Run the call if `decide_call` allows it; a refused call is recorded, never executed.
    A result already stored (a redelivered message) is returned: a tool never runs twice.
    `security` defaults to the empty policy (the handler passes the deployment's)."""
    stored = store.get_message(ref.task_id, ref.turn, ref.index + 1)
    if stored is not None:
        return _stored_result(ref, stored)
    task, call = load_call(ref, store)
    registry = bind_memory_tools(registry, task, memory, store=store)
    return _run_call(ref, task, call, store=store, registry=registry,
                     security=security or SecurityManager(),
                     approvals=approvals or ApprovalStore(store))


def run_tools(
    refs: list[ToolCallRef],
    *,
    store: TaskStore,
    registry: ToolRegistry,
    security: SecurityManager,
    approvals: ApprovalStore | None = None,
    memory: MemoryProvider | None = None,
) -> list[ToolResult]:
    """Every call of the turn, side by side. The task and the turn's messages are read once
    (one GetItem, one Query). Each call stores its own result as it finishes, so when one
    raises the others' results are kept (the first error is raised after all end)."""
    if not refs:
        return []
    task_id, turn = refs[0].task_id, refs[0].turn
    if any((ref.task_id, ref.turn) != (task_id, turn) for ref in refs):
        raise ValueError("a RunTools message names the calls of one turn of one task")
    approvals = approvals or ApprovalStore(store)
    task = store.require_task(task_id)
    registry = bind_memory_tools(registry, task, memory, store=store)
    messages = store.list_messages(task_id, turn)
    assistant = next((m for m in messages if m.role == "assistant"), None)
    answered = {m.tool_call_id: m for m in messages if m.role == "tool" and m.tool_call_id}

    def one(ref: ToolCallRef) -> ToolResult:
        if ref.call_id in answered:  # a redelivered message: never run a tool twice
            return _stored_result(ref, answered[ref.call_id])
        call = call_of(ref, assistant)
        return _run_call(ref, task, call, store=store, registry=registry, security=security,
                         approvals=approvals)

    if len(refs) == 1:
        return [one(refs[0])]
    workers = min(len(refs), MAX_PARALLEL_CALLS)
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="call") as pool:
        futures = [pool.submit(one, ref) for ref in refs]
    return [future.result() for future in futures]


def bind_memory_tools(registry: ToolRegistry, task: Task,
                      memory: MemoryProvider | None, *,
                      store: TaskStore | None = None) -> ToolRegistry:
    """The registry with `remember` / `recall` acting for `task` (its tenant and memory
    scope), where the deployment has them; unchanged otherwise. What their embeddings cost
    is added to the task's usage in `store`. The memory is made here,
    at the first turn that may call them; when it cannot be (a bad EmbeddingModel, a
    missing key) the calls answer why, as errors for the model to read."""
    if memory is None or not set(MEMORY_TOOLS) & set(registry.names) & set(task.tools):
        return registry
    try:
        long_term = memory()
    except Exception as error:
        logger.warning("long-term memory unavailable for task %s", task.task_id,
                       exc_info=True)
        why = f"long-term memory is unavailable: {type(error).__name__}: {error}"[:500]
        return registry.with_tools(unbound_memory_tools(why))
    if long_term is None:
        return registry
    return registry.with_tools(memory_tools(
        long_term, tenant_id=task.tenant_id, scope=task.memory_scope, task_id=task.task_id,
        on_usage=(None if store is None
                  else lambda usage: store.add_usage(task.task_id, usage)),
    ))


def _run_call(
    ref: ToolCallRef,
    task: Task,
    call: ToolCall,
    *,
    store: TaskStore,
    registry: ToolRegistry,
    security: SecurityManager,
    approvals: ApprovalStore,
) -> ToolResult:
    seq = ref.index + 1
    if task.status.is_terminal:
        result = ToolResult(
            call_id=call.id,
            name=call.name,
            is_error=True,
            content=f"error: not run, the task is {task.status.value}",
        )
    else:
        decision = decide_call(task, call, turn=ref.turn, security=security,
                               approvals=approvals)
        executed = decision.outcome == "allow"
        if executed:
            result = registry.run(call, allowed=task.tools)
        else:
            result = ToolResult(
                call_id=call.id, name=call.name, is_error=True, content=decision.denial_text
            )
        store.add_event(
            ref.task_id,
            TaskEvent(
                kind="tool_call",
                turn=ref.turn,
                name=call.name,
                call_id=call.id,
                duration_ms=result.duration_ms,
                error=result.content[:500] if result.is_error else None,
                detail={} if executed else {"executed": False},
            ),
        )
    if not store.put_message(ref.task_id, ref.turn, seq, result.to_message()):
        stored = store.get_message(ref.task_id, ref.turn, seq)
        if stored is not None:
            return _as_result(call.id, call.name, stored.content, stored.is_error)
    return result


def _stored_result(ref: ToolCallRef, stored: Message) -> ToolResult:
    return _as_result(stored.tool_call_id or ref.call_id, stored.name or "", stored.content,
                      stored.is_error)


def handle_run_tools(
    message: RunToolsMessage,
    *,
    receive_count: int,
    max_receives: int,
    store: TaskStore,
    registry: ToolRegistry,
    security: SecurityManager,
    sfn: StepFunctionsCallbacks,
    approvals: ApprovalStore | None = None,
    memory: MemoryProvider | None = None,
) -> list[ToolResult]:
    """Run the message's calls and answer its task token. The failure policy: an error
    leaves the message to SQS (redelivered; calls already stored are not run again); on
    its last delivery (`max_receives`, the queue's maxReceiveCount) the wait is answered
    with ToolCallFailed, so the turn goes on and CallModel gives the missing results to the
    model as errors."""
    try:
        results = run_tools(message.tool_calls, store=store, registry=registry,
                            security=security, approvals=approvals, memory=memory)
    except Exception as error:
        if receive_count >= max_receives:
            answer(sfn.send_task_failure, taskToken=message.task_token, error="ToolCallFailed",
                   cause=f"{type(error).__name__}: {error}"[:1000])
        raise
    output = {"results": [{"call_id": r.call_id, "is_error": r.is_error,
                           "duration_ms": r.duration_ms} for r in results]}
    answer(sfn.send_task_success, taskToken=message.task_token, output=json.dumps(output))
    return results


def _as_result(call_id: str, name: str, content: str | None, is_error: bool) -> ToolResult:
    return ToolResult(call_id=call_id, name=name, content=content or "", is_error=is_error)
