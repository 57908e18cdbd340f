"""WaitForApproval / ApprovalNotGranted: a tool call that needs a human's approval.

Inside AwaitApprovals (a Map over the calls the turn's gate marked `needs_approval`),
before RunTools runs the turn's calls:
* `wait` (a `lambda:invoke.waitForTaskToken` state): store the PENDING approval with the
  task token and mark the task WAITING_APPROVAL; POST /tasks/{id}/approvals/{approval_id}
  answers the token (see `agentkit.api.approvals`).
* `settle` (the wait's Catch: denied, timed out): record the error result, expire a
  still-pending approval, and let the task run again. RunTools then finds the result
  stored and leaves the call alone.
"""

from __future__ import annotations

import json

from agentkit.loop.finalize import readable_reason
from agentkit.loop.gate_tools import decide_call, load_call, record_unexecuted
from agentkit.loop.task_tokens import StepFunctionsCallbacks, answer
from agentkit.models.domain import ApprovalStatus, ApprovalView, TaskEvent, ToolResult, utc_now
from agentkit.models.payloads import ApprovalSettle, ApprovalWait
from agentkit.security import DENIED_PREFIX, SecurityManager
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalRecord, ApprovalStore


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
    decision = decide_call(task, call, turn=event.turn, security=security, approvals=approvals)
    if decision.outcome != "needs_approval":
        # Approved already (a retried wait) or the policy changed since the gate: answer
        # the wait at once; RunTools asks decide_call again before it runs anything.
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
