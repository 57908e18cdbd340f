"""RunTool: execute one stored tool call and store its result (once)."""

from __future__ import annotations

from agentkit.models import ApprovalStatus, Task, TaskEvent, ToolCall, ToolCallRef, ToolResult
from agentkit.security import Decision, SecurityManager
from agentkit.steps.authorize import load_call
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalStore
from agentkit.tools import ToolRegistry


def run_tool_call(
    ref: ToolCallRef,
    *,
    store: TaskStore,
    registry: ToolRegistry,
    security: SecurityManager | None = None,
) -> ToolResult:
    """Run the call if the security manager allows it (an approval must be APPROVED for
    exactly these arguments); a denied call is recorded and never executed."""
    seq = ref.index + 1
    stored = store.get_message(ref.task_id, ref.turn, seq)
    if stored is not None:
        # A redelivered message: the call already ran; never run a tool twice.
        return _as_result(
            stored.tool_call_id or ref.call_id, stored.name or "", stored.content, stored.is_error
        )

    task, call = load_call(ref, store)

    if task.status.is_terminal:
        result = ToolResult(
            call_id=call.id,
            name=call.name,
            is_error=True,
            content=f"error: not run, the task is {task.status.value}",
        )
    else:
        decision = _decide(security or SecurityManager.from_env(), store, task, call, ref.turn)
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


def _as_result(call_id: str, name: str, content: str | None, is_error: bool) -> ToolResult:
    return ToolResult(call_id=call_id, name=name, content=content or "", is_error=is_error)


def _decide(
    security: SecurityManager, store: TaskStore, task: Task, call: ToolCall, turn: int
) -> Decision:
    """The manager's decision, with a needs-approval one resolved against the approval
    record: allowed only when APPROVED for exactly this call's arguments hash."""
    decision = security.check(task, call, turn=turn)
    if decision.outcome != "needs_approval":
        return decision
    assert decision.approval_id is not None
    approval = ApprovalStore(store).get(task.task_id, decision.approval_id)
    if (
        approval is not None
        and approval.status == ApprovalStatus.APPROVED
        and approval.args_hash == decision.args_hash
    ):
        return Decision(outcome="allow", approval_id=approval.approval_id)
    state = "missing" if approval is None else approval.status.value
    return Decision(
        outcome="deny",
        reason=f"'{call.name}' needs an approval for these exact arguments "
        f"(approval {decision.approval_id} is {state})",
    )
