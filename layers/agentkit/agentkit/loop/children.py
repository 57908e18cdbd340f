"""WaitForChildren / ChildrenNotFinished, and the sub-task's end: a task's `delegate` calls
run as sub-tasks (their own executions, in parallel) while the task waits with no compute.

* `start_children` (WaitForChildren, a `lambda:invoke.waitForTaskToken` state): make the
  turn's sub-tasks (agentkit.tools.delegate: limits, tools, budgets; a refused call gets
  its error result here), write the turn's record with all of them pending
  (agentkit.store.children), start each, then park the task: store the wait's token. If
  every sub-task ended before the token was stored, resume the task at once.
* `report_to_parent` (a sub-task's Finalize / MarkFailed / ReleaseSlot, and a cancel):
  agentkit.loop.parent_report.
* `settle_children` (ChildrenNotFinished: the wait timed out or failed): cancel the
  sub-tasks still running and write the results with what there is.
* `cancel_children`: a cancelled task's sub-tasks are cancelled with it, all the way down.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from agentkit.admission import ExecutionStarter
from agentkit.loop.gate_tools import call_of, decide_call, record_unexecuted
from agentkit.loop.parent_report import (
    Resume,
    report_to_parent,
    sfn_resumer,
    write_results,
)
from agentkit.loop.task_tokens import StepFunctionsCallbacks, answer
from agentkit.models.domain import (
    ApprovalStatus,
    Task,
    TaskEvent,
    TaskStatus,
)
from agentkit.models.payloads import ChildrenSettle, ChildrenWait
from agentkit.models.scripted import ScriptedTurn
from agentkit.security import SecurityManager
from agentkit.store import ConflictError, TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalStore
from agentkit.store.children import ChildrenRecord, ChildrenStore, ChildSlot
from agentkit.tools.delegate import ChildPlan, DelegationLimits, plan_children

logger = logging.getLogger(__name__)

def sfn_releaser(sfn: StepFunctionsCallbacks) -> Callable[[str], None]:
    """Answers an approval wait of a cancelled sub-task (already over: nothing to do)."""

    def release(task_token: str) -> None:
        answer(sfn.send_task_failure, taskToken=task_token, error="TaskCancelled",
               cause="the task was cancelled")

    return release


def sfn_stopper(sfn: Any) -> Callable[[str], None]:
    """Stops a sub-task's execution (already ended or never started: nothing to do)."""

    def stop(execution_arn: str) -> None:
        try:
            sfn.stop_execution(executionArn=execution_arn, error="TaskCancelled",
                               cause="cancelled with its parent")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise

    return stop


def start_children(
    event: ChildrenWait,
    *,
    store: TaskStore,
    security: SecurityManager,
    resume: Resume,
    start_execution: ExecutionStarter | None,
    limits: DelegationLimits,
    approvals: ApprovalStore | None = None,
) -> ChildrenRecord | None:
    """Make and start the turn's sub-tasks and park the task (see the module doc). Returns
    the turn's record (None: no sub-task to wait for; the task was resumed at once)."""
    children = ChildrenStore(store)
    parent = store.require_task(event.task_id)
    record = children.get(parent.task_id, event.turn)
    if record is None and parent.status.is_terminal:
        resume(event.task_token)  # cancelled meanwhile: the loop stops at CallModel
        return None
    assistant = store.get_message(parent.task_id, event.turn, 0)
    refs = {ref.call_id: ref for ref in event.delegations}
    calls = []
    for ref in event.delegations:
        call = call_of(ref, assistant)
        # Asked again, as RunTools would: a call refused now is refused there, and stored.
        decision = decide_call(parent, call, turn=event.turn, security=security,
                               approvals=approvals or ApprovalStore(store))
        if decision.outcome == "allow":
            calls.append((ref.index, call))
    plan = plan_children(parent, event.turn, calls, limits=limits)
    for call_id, why in plan.refused.items():
        ref = refs[call_id]
        record_unexecuted(store, ref, call_of(ref, assistant), why)
    if plan.children:
        record = children.register(parent.task_id, event.turn, {
            child.task.task_id: ChildSlot(call_id=child.call_id, index=child.index,
                                          position=child.position)
            for child in plan.children
        })
        scripts = _child_scripts(store, parent, event.turn, plan.children)
        for child in plan.children:
            if child.task.task_id in record.children:
                _make_and_start(child, store=store, script=scripts.get(child.task.task_id),
                                start_execution=start_execution, resume=resume)
        store.add_event(parent.task_id, TaskEvent(
            kind="delegation", turn=event.turn, name="started",
            detail={"children": list(record.children)}))
    if record is None:
        resume(event.task_token)
        return None
    record = children.park(parent.task_id, event.turn, event.task_token)
    if record.done:
        # Every sub-task ended before the token was stored: none of them could resume us.
        write_results(store, record)
        resume(event.task_token)
    return record


def _child_scripts(store: TaskStore, parent: Task, turn: int,
                   plans: list[ChildPlan]) -> dict[str, list[ScriptedTurn]]:
    """Model `scripted` only: each sub-task's replies, from the parent's scripted
    `delegate` call (`child_scripts`, by position)."""
    if "scripted" not in (parent.model, *parent.fallback_models):
        return {}
    script = store.get_script(parent.task_id)
    if turn < 1 or turn > len(script):
        return {}
    scripted_calls = script[turn - 1].tool_calls
    found: dict[str, list[ScriptedTurn]] = {}
    for child in plans:
        if child.index < len(scripted_calls):
            replies = scripted_calls[child.index].child_script(child.position)
            if replies is not None:
                found[child.task.task_id] = replies
    return found


def _make_and_start(
    child: ChildPlan,
    *,
    store: TaskStore,
    script: list[ScriptedTurn] | None,
    start_execution: ExecutionStarter | None,
    resume: Resume,
) -> None:
    """Store the sub-task (once) and start its execution (idempotent by name). A sub-task
    that cannot be started fails, and reports so to its parent."""
    with contextlib.suppress(ConflictError):  # a retried step made it already
        store.create_task(child.task, script=script)
    current = store.require_task(child.task.task_id)
    if current.status != TaskStatus.QUEUED or current.execution_arn:
        return
    parent = store.require_task(child.task.parent_id or "")
    if parent.status.is_terminal:
        # Cancelled while its sub-tasks were being made: a cancel that listed them before
        # this one existed could not reach it, so it never starts.
        reason = f"cancelled: its parent ended ({parent.status.value}) before it started"
        if store.finish_task(current.task_id, TaskStatus.CANCELLED, error=reason):
            store.add_event(current.task_id, TaskEvent(kind="status", error=reason,
                                                       name=TaskStatus.CANCELLED.value))
        report_to_parent(store.require_task(current.task_id), store=store, resume=resume)
        return
    try:
        if start_execution is None:
            raise RuntimeError("no state machine to start it in")
        arn = start_execution(current.task_id)
    except Exception as error:
        logger.warning("sub-task %s could not be started", current.task_id, exc_info=True)
        reason = f"could not be started: {type(error).__name__}: {error}"[:2000]
        if store.finish_task(current.task_id, TaskStatus.FAILED, error=reason):
            store.add_event(current.task_id, TaskEvent(kind="status",
                                                       name=TaskStatus.FAILED.value,
                                                       error=reason))
        report_to_parent(store.require_task(current.task_id), store=store, resume=resume)
        return
    store.update_task(current.task_id, changes={"execution_arn": arn})


def settle_children(
    event: ChildrenSettle,
    *,
    store: TaskStore,
    stop_execution: Callable[[str], None],
    release_wait: Callable[[str], None] | None = None,
) -> ChildrenRecord | None:
    """The wait ended without every sub-task (timed out, failed): cancel those still
    running (and theirs), then write every call's result with what there is."""
    children = ChildrenStore(store)
    record = children.get(event.task_id, event.turn)
    if record is None:
        return None
    why = ("did not finish within the parent's wait (ChildTaskTimeoutSeconds)"
           if event.error.error == "States.Timeout"
           else f"cancelled: its parent stopped waiting ({event.error.error})")
    for child_id in record.children:
        if child_id not in record.outcomes:
            child = store.get_task(child_id)
            if child is not None:
                cancel_task_tree(child, store=store, stop_execution=stop_execution, reason=why,
                                 release_wait=release_wait)
    record = children.get(event.task_id, event.turn)
    assert record is not None
    write_results(store, record)
    return record


def cancel_children(task_id: str, *, store: TaskStore, stop_execution: Callable[[str], None],
                    reason: str = "cancelled: its parent was cancelled",
                    resume: Resume | None = None,
                    release_wait: Callable[[str], None] | None = None) -> list[str]:
    """Cancel every active sub-task of `task_id`, and theirs; the ids cancelled."""
    cancelled: list[str] = []
    for child_id in ChildrenStore(store).child_ids(task_id):
        child = store.get_task(child_id)
        if child is not None and not child.status.is_terminal:
            cancelled += cancel_task_tree(child, store=store, stop_execution=stop_execution,
                                          reason=reason, resume=resume,
                                          release_wait=release_wait)
    return cancelled


def cancel_task_tree(task: Task, *, store: TaskStore, stop_execution: Callable[[str], None],
                     reason: str, resume: Resume | None = None,
                     release_wait: Callable[[str], None] | None = None) -> list[str]:
    """Cancel a sub-task: CANCELLED (only if still active), its execution stopped, its
    pending approvals closed (and their waits answered, `release_wait`, as a cancel does),
    its own sub-tasks cancelled first (their usage reaches it), then it reports to its
    parent."""
    cancelled: list[str] = []
    if store.finish_task(task.task_id, TaskStatus.CANCELLED, error=reason):
        cancelled.append(task.task_id)
        store.add_event(task.task_id, TaskEvent(kind="status", turn=task.turn,
                                                name=TaskStatus.CANCELLED.value, error=reason))
        arn = store.require_task(task.task_id).execution_arn
        if arn:
            stop_execution(arn)
        approvals = ApprovalStore(store)
        for approval in approvals.list(task.task_id):
            if approval.status == ApprovalStatus.PENDING:
                with contextlib.suppress(ApprovalConflictError):  # decided meanwhile
                    approvals.decide(task.task_id, approval.approval_id, ApprovalStatus.DENIED,
                                     reason="the task was cancelled")
                    if approval.task_token and release_wait is not None:
                        release_wait(approval.task_token)
    cancelled += cancel_children(task.task_id, store=store, stop_execution=stop_execution,
                                 resume=resume, release_wait=release_wait)
    # After its own sub-tasks reported (their usage is in its own now); the last report
    # of a turn resumes a parent still waiting (`resume`).
    report_to_parent(store.require_task(task.task_id), store=store, resume=resume)
    return cancelled


__all__ = [
    "cancel_children",
    "cancel_task_tree",
    "report_to_parent",
    "settle_children",
    "sfn_releaser",
    "sfn_resumer",
    "sfn_stopper",
    "start_children",
    "write_results",
]
