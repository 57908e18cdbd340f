"""Authorize / WaitForApproval / ApprovalNotGranted: the security gate of one tool call.

Inside the RunTools Map, before a call is queued:
* `check`: the security manager's decision. A denied call gets its error result (and a
  timeline event) here and is never queued; an allowed one goes on to RunTool; one that
  needs approval goes to WaitForApproval.
* `wait` (a `lambda:invoke.waitForTaskToken` state): store the PENDING approval with the
  task token and mark the task WAITING_APPROVAL; POST /tasks/{id}/approvals/{approval_id}
  answers the token (see `agentkit.api.approvals`).
* `settle` (the wait's Catch: denied, timed out): record the error result, expire a
  still-pending approval, and let the task run again.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from agentkit.models import (
    ApprovalStatus,
    ApprovalView,
    Task,
    TaskEvent,
    ToolCall,
    ToolCallRef,
    ToolResult,
    utc_now,
)
from agentkit.security import DENIED_PREFIX, SecurityManager
from agentkit.steps.finalize import StepError, readable_reason
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalRecord, ApprovalStore

# The wait already ended (timeout, stop): answering it again cannot help.
GONE_ERRORS = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


class StepFunctionsCallbacks(Protocol):
    def send_task_success(self, **kwargs: Any) -> Any: ...

    def send_task_failure(self, **kwargs: Any) -> Any: ...


class AuthorizeCheck(ToolCallRef):
    action: Literal["check"]


class ApprovalWait(ToolCallRef):
    action: Literal["wait"]
    task_token: str = Field(min_length=1)


class ApprovalSettle(ToolCallRef):
    action: Literal["settle"]
    error: StepError = Field(default_factory=StepError)


AuthorizeEvent = Annotated[
    AuthorizeCheck | ApprovalWait | ApprovalSettle, Field(discriminator="action")
]


class AuthorizeOutput(BaseModel):
    """What Authorize hands the Map iteration's Choice."""

    decision: Literal["allow", "deny", "needs_approval", "done"]
    approval_id: str | None = None


def load_call(ref: ToolCallRef, store: TaskStore) -> tuple[Task, ToolCall]:
    task = store.require_task(ref.task_id)
    assistant = store.get_message(ref.task_id, ref.turn, 0)
    if assistant is None or ref.index >= len(assistant.tool_calls):
        raise LookupError(f"task '{ref.task_id}' turn {ref.turn} has no tool call #{ref.index}")
    call = assistant.tool_calls[ref.index]
    if call.id != ref.call_id:
        raise LookupError(
            f"tool call #{ref.index} of turn {ref.turn} is '{call.id}', not '{ref.call_id}'"
        )
    return task, call


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


def authorize_call(
    ref: ToolCallRef, *, store: TaskStore, security: SecurityManager,
    approvals: ApprovalStore | None = None,
) -> AuthorizeOutput:
    if store.get_message(ref.task_id, ref.turn, ref.index + 1) is not None:
        return AuthorizeOutput(decision="done")  # a retried step: the result is already in
    task, call = load_call(ref, store)
    if task.status.is_terminal:
        record_unexecuted(store, ref, call, f"error: not run, the task is {task.status.value}")
        return AuthorizeOutput(decision="done")
    decision = security.check(task, call, turn=ref.turn)
    if decision.outcome == "deny":
        record_unexecuted(store, ref, call, decision.denial_text)
        return AuthorizeOutput(decision="deny")
    if decision.outcome == "needs_approval":
        assert decision.approval_id is not None
        existing = (approvals or ApprovalStore(store)).get(task.task_id, decision.approval_id)
        if existing is not None and existing.status == ApprovalStatus.APPROVED:
            return AuthorizeOutput(decision="allow", approval_id=existing.approval_id)
        return AuthorizeOutput(decision="needs_approval", approval_id=decision.approval_id)
    return AuthorizeOutput(decision="allow")


def request_approval(
    event: ApprovalWait,
    *,
    store: TaskStore,
    security: SecurityManager,
    sfn: StepFunctionsCallbacks,
    approvals: ApprovalStore | None = None,
) -> ApprovalView | None:
    """Store the PENDING approval with the task token; the task waits for a human."""
    approvals = approvals or ApprovalStore(store)
    task, call = load_call(event, store)
    decision = security.check(task, call, turn=event.turn)
    if decision.outcome != "needs_approval":
        # The policy changed since Authorize: answer the wait at once with the new verdict.
        if decision.outcome == "allow":
            answer(sfn.send_task_success, taskToken=event.task_token,
                   output=json.dumps({"status": "ALLOWED"}))
        else:
            answer(sfn.send_task_failure, taskToken=event.task_token, error="ToolCallDenied",
                   cause=(decision.reason or "denied")[:1000])
        return None
    assert decision.approval_id is not None and decision.args_hash is not None
    record = ApprovalRecord(
        task_id=task.task_id,
        approval_id=decision.approval_id,
        turn=event.turn,
        call_id=call.id,
        tool=call.name,
        arguments=call.arguments,
        args_hash=decision.args_hash,
        status=ApprovalStatus.PENDING,
        created_at=utc_now(),
        task_token=event.task_token,
    )
    saved, created = approvals.request(record)
    if created:
        store.add_event(
            task.task_id,
            TaskEvent(
                kind="approval",
                turn=event.turn,
                name=call.name,
                call_id=call.id,
                detail={"approval_id": saved.approval_id, "status": "PENDING",
                        "args_hash": saved.args_hash},
            ),
        )
    elif saved.status == ApprovalStatus.APPROVED:
        answer(sfn.send_task_success, taskToken=event.task_token,
               output=json.dumps({"approval_id": saved.approval_id, "status": "APPROVED"}))
    elif saved.status != ApprovalStatus.PENDING:
        answer(sfn.send_task_failure, taskToken=event.task_token, error="ApprovalDenied",
               cause=f"approval {saved.approval_id} is {saved.status.value}")
    return saved.view()


def settle_unapproved(
    event: ApprovalSettle,
    *,
    store: TaskStore,
    security: SecurityManager,
    approvals: ApprovalStore | None = None,
) -> ToolResult | None:
    """The wait ended without an approval: record why, never run the call."""
    approvals = approvals or ApprovalStore(store)
    task, call = load_call(event, store)
    decision = security.check(task, call, turn=event.turn)
    record = approvals.get(task.task_id, decision.approval_id) if decision.approval_id else None
    why = (
        "no decision within the approval timeout"
        if event.error.error == "States.Timeout"
        else readable_reason(event.error)
    )
    if record is not None and record.status == ApprovalStatus.PENDING:
        try:
            record = approvals.decide(task.task_id, record.approval_id, ApprovalStatus.EXPIRED,
                                      reason=why)
            store.add_event(
                task.task_id,
                TaskEvent(kind="approval", turn=event.turn, name=call.name, call_id=call.id,
                          error=why, detail={"approval_id": record.approval_id,
                                             "status": "EXPIRED"}),
            )
        except ApprovalConflictError:
            record = approvals.get(task.task_id, record.approval_id)
    approvals.resume_task(task.task_id)

    if record is None:
        content = DENIED_PREFIX + (decision.reason or f"no approval could be requested: {why}")
    elif record.status == ApprovalStatus.DENIED:
        content = DENIED_PREFIX + f"approval {record.approval_id} was denied" + (
            f": {record.reason}" if record.reason else "")
    elif record.status == ApprovalStatus.EXPIRED:
        content = DENIED_PREFIX + f"approval {record.approval_id} expired: {record.reason or why}"
    else:
        content = (f"error: tool call not run: approval {record.approval_id} is "
                   f"{record.status.value} but the wait ended ({why})")
    if record_unexecuted(store, event, call, content):
        return ToolResult(call_id=call.id, name=call.name, content=content, is_error=True)
    return None


def answer(call: Any, **kwargs: Any) -> bool:
    """Answer a task token; False when the wait is already over."""
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in GONE_ERRORS:
            raise
        return False
    return True

