"""Admission of tasks (fair tenants): each tenant runs at most `max_running` tasks at once;
the rest wait QUEUED and start in submit order when one of that tenant's slots frees.

* Submit (`admit`) always queues the task, then fills the tenant's free slots from the
  head of its queue. Queue-then-fill keeps the order (a new task never overtakes one that
  waits) and loses no wake-up: a slot released before the task was queued is seen by this
  fill, a slot released after it is handed to the queue's head by its releaser.
* A task that ends (`release_and_start_next`: Finalize, MarkFailed, the stop path, a
  cancel) hands its slot straight to the oldest queued task of its tenant (one
  transaction), or gives it back when no one waits — and then fills again, so a task
  queued meanwhile is not stranded. Released exactly once: a retried Finalize finds the
  slot released and only finishes what the first attempt began (starting the task the slot
  went to, idempotent by execution name).
* A claimed task whose start fails is marked FAILED with the reason, and its slot goes on.
* A claimer that dies between the claim and the start (a Lambda timeout or crash) leaves
  the task's STARTING marker: every fill first starts the tenant's tasks claimed more than
  `STALE_START_S` ago and never confirmed (starts are idempotent by execution name).

Each tenant has its own counter and queue, so a tenant with hundreds queued never delays
another tenant's task. See agentkit.store.tenant_slots for the items and conditions.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from agentkit.models.domain import Task, TaskEvent, TaskStatus, utc_now
from agentkit.store import TaskStore
from agentkit.store.tenant_slots import QueuedTask, SlotOutcome, TenantSlots

logger = logging.getLogger(__name__)

#: Queue entries read per query (the head is all a claim needs; the rest are spares for
#: when the head was taken by a concurrent claimer).
_PAGE = 10
#: Upper bound on queue reads / slot hand-overs in one call (a guard, never reached in
#: normal runs: each round claims a task or stops).
_MAX_ROUNDS = 200
MAX_REASON_CHARS = 2000
#: A claim older than this whose start was never confirmed belongs to a claimer that died
#: (every function that claims times out well within it).
STALE_START_S = 120.0


class ExecutionStarter(Protocol):
    def __call__(self, task_id: str) -> str:
        """Start the agent loop for a task; return the execution ARN."""
        ...


def step_functions_starter(client: Any, state_machine_arn: str) -> ExecutionStarter:
    """Starts one execution per task, named after the task so a repeated start is a no-op."""

    def start(task_id: str) -> str:
        try:
            response = client.start_execution(
                stateMachineArn=state_machine_arn,
                name=task_id,
                input=json.dumps({"task_id": task_id}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            execution_arn = state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{execution_arn}:{task_id}"
        return str(response["executionArn"])

    return start


class _TenantRunner:
    """One tenant's slots for the length of one call; records what it started."""

    def __init__(
        self,
        store: TaskStore,
        tenant_id: str,
        max_running: int,
        start_execution: ExecutionStarter | None,
    ) -> None:
        self.store = store
        self.slots = TenantSlots(store)
        self.tenant_id = tenant_id
        self.max_running = max_running
        self.start_execution = start_execution
        self.started: list[str] = []
        self.failed: dict[str, Exception] = {}

    def fill(self) -> None:
        """Claim free slots for the oldest queued tasks and start them, until no slot is
        free or no task waits."""
        if self.start_execution is None:
            return
        self._recover_stale_starts()
        for _ in range(_MAX_ROUNDS):
            queue = self.slots.queued(self.tenant_id, limit=_PAGE)
            if not queue:
                return
            claimed = None
            for entry in queue:
                outcome = self.slots.claim(self.tenant_id, entry, self.max_running)
                if outcome is SlotOutcome.NO_SLOT:
                    return
                if outcome is SlotOutcome.DONE:
                    claimed = entry.task_id
                    break
                # TAKEN: a concurrent claimer (or a cancel) got it; the next one is the head
            if claimed is not None and not self._start(claimed):
                self.settle(claimed, then_fill=False)  # this loop goes on filling
        logger.warning("tenant %s: stopped filling slots after %d rounds", self.tenant_id,
                       _MAX_ROUNDS)

    def settle(self, task_id: str, *, then_fill: bool = True) -> None:
        """`task_id` ended (or will never run): pass its slot on, exactly once, to the
        oldest queued task and start it; when no one waits, give the slot back and fill
        (a task queued meanwhile must not wait beside a free slot)."""
        current = task_id
        for _ in range(_MAX_ROUNDS):
            holder = self.slots.holder(current)
            if holder is None:
                break  # it never held a slot (it was still queued, or predates slots)
            # Released before (a retried Finalize, or a cancel racing the stop path): finish
            # what that release began — start the task its slot went to.
            following = holder.handed_to if holder.released else self._pass_on(current)
            if following is None:
                break  # the slot went back to the pool
            if self._start(following):
                return
            current = following  # it ended without running: its slot goes on in turn
        if then_fill:
            self.fill()

    def _pass_on(self, task_id: str) -> str | None:
        """Hand the slot to the queue's head (its id), or give it back (None)."""
        if self.start_execution is not None:
            for _ in range(_MAX_ROUNDS):
                queue = self.slots.queued(self.tenant_id, limit=_PAGE)
                if not queue:
                    break
                for entry in queue:
                    outcome = self.slots.hand_over(task_id, self.tenant_id, entry,
                                                   self.max_running)
                    if outcome is SlotOutcome.DONE:
                        return entry.task_id
                    if outcome is SlotOutcome.ALREADY_RELEASED:
                        return self._released_to(task_id)
                    if outcome is SlotOutcome.NO_SLOT:
                        break  # a lowered cap: this slot is not passed on
                else:
                    continue  # every entry read was taken meanwhile: read the head again
                break
        if self.slots.release(task_id, self.tenant_id) is SlotOutcome.ALREADY_RELEASED:
            return self._released_to(task_id)
        return None

    def _released_to(self, task_id: str) -> str | None:
        holder = self.slots.holder(task_id)
        return holder.handed_to if holder else None

    def _recover_stale_starts(self) -> None:
        """Start the tasks whose claimer died before starting them; one that cannot run
        passes its slot on."""
        before = (datetime.now(UTC) - timedelta(seconds=STALE_START_S)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")  # as utc_now() writes claimed_at
        for task_id in self.slots.stale_starts(self.tenant_id, claimed_before=before):
            logger.warning("task %s held a slot but was never started: starting it", task_id)
            if not self._start(task_id):
                self.settle(task_id, then_fill=False)

    def _start(self, task_id: str) -> bool:
        """Start a task that holds a slot. True: it runs (now or already); False: it ended
        (cancelled meanwhile, or its start failed and it is now FAILED)."""
        started = self._start_once(task_id)
        self.slots.started(self.tenant_id, task_id)  # nothing left to recover
        return started

    def _start_once(self, task_id: str) -> bool:
        task = self.store.get_task(task_id)
        if task is None or task.status.is_terminal:
            return False
        if task.execution_arn:
            return True
        assert self.start_execution is not None  # only claimed tasks get here
        try:
            execution_arn = self.start_execution(task_id)
        except Exception as error:
            reason = f"could not start the agent loop: {type(error).__name__}: {error}"
            reason = reason[:MAX_REASON_CHARS]
            if self.store.finish_task(task_id, TaskStatus.FAILED, error=reason):
                self.store.add_event(task_id, TaskEvent(kind="status", error=reason,
                                                        name=TaskStatus.FAILED.value))
            logger.warning("task %s could not start: %s", task_id, reason)
            self.failed[task_id] = error
            return False
        self.store.update_task(task_id, changes={"execution_arn": execution_arn,
                                                 "started_at": utc_now()})
        self.store.add_event(task_id, admission_event(task))  # the timeline's first bar
        self.started.append(task_id)
        return True


def admit(
    task: Task,
    *,
    store: TaskStore,
    max_running: int,
    start_execution: ExecutionStarter,
) -> bool:
    """Queue a stored task for a slot of its tenant and start whoever is first in line.

    True: this task's execution was started now. False: it waits QUEUED (no execution)
    until a slot of its tenant frees. When its own start fails the task is FAILED with
    the reason, its slot goes on, and the error is raised.
    """
    runner = _TenantRunner(store, task.tenant_id, max_running, start_execution)
    runner.slots.enqueue(task.tenant_id, QueuedTask(task.task_id, task.created_at))
    runner.fill()
    if task.task_id in runner.failed:
        raise runner.failed[task.task_id]
    return task.task_id in runner.started


def release_and_start_next(
    task_id: str,
    tenant_id: str,
    *,
    store: TaskStore,
    start_execution: ExecutionStarter | None,
    max_running: int,
) -> str | None:
    """A task ended: free its slot (exactly once, however often this is called) and start
    the oldest queued task of its tenant in it. Returns the id of the task started first
    (None: no one waited, or nothing could start).

    Without `start_execution` the slot is only given back (nothing can be started); the
    next submit or ending of that tenant fills it.
    """
    runner = _TenantRunner(store, tenant_id, max_running, start_execution)
    runner.settle(task_id)
    return runner.started[0] if runner.started else None


def remove_from_queue(task: Task, *, store: TaskStore) -> bool:
    """Take a QUEUED task out of its tenant's queue before it got a slot (a cancel).
    False: it was claimed first (it holds a slot), or it was never queued."""
    return TenantSlots(store).dequeue(task.tenant_id, QueuedTask(task.task_id, task.created_at))


def admission_event(task: Task, now: datetime | None = None) -> TaskEvent:
    """The task's execution started: from its submission (queued, then a slot) to now."""
    now = now or datetime.now(UTC)
    try:
        waited = now - datetime.fromisoformat(task.created_at)
    except (TypeError, ValueError):
        waited = timedelta(0)
    at = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return TaskEvent(kind="admission", name="started", at=at,
                     duration_ms=max(int(waited.total_seconds() * 1000), 0))
