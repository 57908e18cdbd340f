"""The tool-call gate: every call of a turn is decided here, once, at the end of CallModel.

`decide_call` is the one answer to "may this call run now?" (security policy, argument
constraints, approvals bound to the exact arguments); the gate, RunTools (before it runs
anything) and the approval wait all ask it. `gate_tools` sorts a turn's calls:

* denied: the error result and its `tool_call` event are stored here; never queued;
* needs approval: waits in AwaitApprovals (WaitForApproval), then runs in RunTools;
* allowed: runs in RunTools.

A `delegate` call (agentkit.tools.delegate) that is not denied is also one of the turn's
`delegations`: WaitForChildren starts its sub-tasks and waits for them (after the
approvals, if any) before RunTools, which then finds its result stored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agentkit.models.domain import ApprovalStatus, Message, Task, TaskEvent, ToolCall, ToolResult
from agentkit.models.payloads import ToolCallRef
from agentkit.security import Decision, SecurityManager
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalStore

#: Where the state machine goes after the gate: RunTools, AwaitApprovals (then RunTools),
#: or straight back to CallModel when no call is left to run (all denied or answered);
#: with `delegate` calls, WaitForChildren before RunTools (after the approvals, if any).
Route = Literal["run_tools", "await_approvals", "call_model", "delegate",
                "await_approvals_then_delegate"]

#: The built-in whose calls become sub-tasks (agentkit.tools.delegate.DELEGATE).
DELEGATE = "delegate"


class GatedTurn(BaseModel):
    #: Calls RunTools runs: the allowed ones and those that need approval (RunTools asks
    #: `decide_call` again, so an unapproved one is refused there, never run).
    tool_calls: list[ToolCallRef] = Field(default=[])
    #: Calls that wait for a human first (AwaitApprovals).
    approvals: list[ToolCallRef] = Field(default=[])
    #: `delegate` calls (WaitForChildren starts their sub-tasks).
    delegations: list[ToolCallRef] = Field(default=[])
    denied: int = 0

    @property
    def route(self) -> Route:
        if self.approvals:
            return "await_approvals_then_delegate" if self.delegations else "await_approvals"
        if self.delegations:
            return "delegate"
        return "run_tools" if self.tool_calls else "call_model"


def decide_call(
    task: Task, call: ToolCall, *, turn: int, security: SecurityManager,
    approvals: ApprovalStore,
) -> Decision:
    """allow | deny(reason) | needs_approval(approval_id, args_hash, reason).

    A call that needs approval is allowed only when its approval is APPROVED for exactly
    these arguments (the hash); otherwise it still needs approval, and `reason` says why
    it may not run (the approval is missing, PENDING, DENIED or EXPIRED)."""
    decision = security.check(task, call, turn=turn)
    if decision.outcome != "needs_approval":
        return decision
    assert decision.approval_id is not None
    record = approvals.get(task.task_id, decision.approval_id)
    if (
        record is not None
        and record.status == ApprovalStatus.APPROVED
        and record.args_hash == decision.args_hash
    ):
        return Decision(outcome="allow", approval_id=record.approval_id,
                        args_hash=decision.args_hash)
    state = "missing" if record is None else record.status.value
    return decision.model_copy(update={
        "reason": f"'{call.name}' needs an approval for these exact arguments "
                  f"(approval {decision.approval_id} is {state})"})


def load_call(ref: ToolCallRef, store: TaskStore) -> tuple[Task, ToolCall]:
    """The task and the stored call `ref` names (the state machine carries only refs)."""
    task = store.require_task(ref.task_id)
    return task, call_of(ref, store.get_message(ref.task_id, ref.turn, 0))


def call_of(ref: ToolCallRef, assistant: Message | None) -> ToolCall:
    """The call `ref` names in its turn's assistant message (LookupError if it has none)."""
    if assistant is None or ref.index >= len(assistant.tool_calls):
        raise LookupError(f"task '{ref.task_id}' turn {ref.turn} has no tool call #{ref.index}")
    call = assistant.tool_calls[ref.index]
    if call.id != ref.call_id:
        raise LookupError(
            f"tool call #{ref.index} of turn {ref.turn} is '{call.id}', not '{ref.call_id}'"
        )
    return call


def record_unexecuted(store: TaskStore, ref: ToolCallRef, call: ToolCall, content: str) -> bool:
    """Store an error result for a call that is not executed, once, with its timeline event."""
    result = ToolResult(call_id=call.id, name=call.name, content=content, is_error=True)
    written = store.put_message(ref.task_id, ref.turn, ref.index + 1, result.to_message())
    if written:
        store.add_event(
            ref.task_id,
            TaskEvent(
                kind="tool_call",
                turn=ref.turn,
                name=call.name,
                call_id=call.id,
                error=content[:500],
                detail={"executed": False},
            ),
        )
    return written


def gate_tools(
    task: Task,
    turn: int,
    calls: list[ToolCall],
    *,
    store: TaskStore,
    security: SecurityManager,
    approvals: ApprovalStore,
    answered: frozenset[str] = frozenset(),
) -> GatedTurn:
    """Decide every call of `turn` (stored by CallModel). `answered`: ids of calls whose
    result is already stored (a retried CallModel); they are left alone."""
    gated = GatedTurn()
    for index, call in enumerate(calls):
        if call.id in answered:
            continue
        ref = ToolCallRef(task_id=task.task_id, turn=turn, call_id=call.id, index=index)
        decision = decide_call(task, call, turn=turn, security=security, approvals=approvals)
        if decision.outcome == "deny":
            record_unexecuted(store, ref, call, decision.denial_text)
            gated.denied += 1
            continue
        if decision.outcome == "needs_approval":
            gated.approvals.append(ref)
        if call.name == DELEGATE:
            gated.delegations.append(ref)
        gated.tool_calls.append(ref)
    return gated
