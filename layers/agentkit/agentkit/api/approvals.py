"""POST /tasks/{task_id}/approvals/{approval_id}: a human approves or denies a waiting call.

PENDING → APPROVED/DENIED is a conditional write (a second decision is a 409), the task
goes back to RUNNING once no other call waits (conditional: only from WAITING_APPROVAL),
the decision goes on the timeline, and only then is the state machine's task token
answered: SendTaskSuccess (the call is queued and runs) or SendTaskFailure (it is not;
the denial becomes the call's error result).
"""

from __future__ import annotations

import json

from agentkit.loop.task_tokens import StepFunctionsCallbacks, answer
from agentkit.models.api import ApprovalDecisionRequest
from agentkit.models.domain import ApprovalStatus, ApprovalView, TaskEvent
from agentkit.store import TaskNotFoundError, TaskStore
from agentkit.store.approvals import (
    ApprovalConflictError,
    ApprovalNotFoundError,
    ApprovalStore,
)


def decide_approval(
    task_id: str,
    approval_id: str,
    request: ApprovalDecisionRequest,
    *,
    store: TaskStore,
    sfn: StepFunctionsCallbacks,
    approvals: ApprovalStore | None = None,
    tenant_id: str | None = None,
) -> ApprovalView:
    approvals = approvals or ApprovalStore(store)
    task = store.get_task(task_id)
    if task is None or (tenant_id is not None and task.tenant_id != tenant_id):
        raise TaskNotFoundError(task_id)
    record = approvals.get(task_id, approval_id)
    if record is None:
        raise ApprovalNotFoundError(task_id, approval_id)
    if record.status != ApprovalStatus.PENDING:
        raise ApprovalConflictError(f"approval '{approval_id}' is already {record.status.value}")
    if task.status.is_terminal:
        # Nothing waits for this call any more (cancelled, failed, ...): refuse, don't record.
        raise ApprovalConflictError(
            f"task '{task_id}' already ended as {task.status.value}; nothing to approve"
        )
    approve = request.decision == "approve"
    decided = approvals.decide(
        task_id,
        approval_id,
        ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED,
        reason=request.reason,
        expected_hash=request.args_hash,
    )
    approvals.resume_task(task_id)
    store.add_event(
        task_id,
        TaskEvent(
            kind="approval",
            turn=decided.turn,
            name=decided.tool,
            call_id=decided.call_id,
            error=None if approve else (request.reason or "denied"),
            detail={"approval_id": approval_id, "status": decided.status.value,
                    "args_hash": decided.args_hash},
        ),
    )
    if decided.task_token:
        if approve:
            answer(sfn.send_task_success, taskToken=decided.task_token,
                   output=json.dumps({"approval_id": approval_id, "status": "APPROVED"}))
        else:
            answer(sfn.send_task_failure, taskToken=decided.task_token, error="ApprovalDenied",
                   cause=(request.reason or "denied by the approver")[:1000])
    return decided.view()
