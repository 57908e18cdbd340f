"""Per-tenant running slots and the queue of tasks waiting for one.

The ONLY code that touches DynamoDB for tenant slots. Items on the tasks table:

  SLOTS#<tenant> / COUNTER                          running: slots held now
  SLOTS#<tenant> / QUEUE#<created_at>#<task_id>     task_id, created_at: a task waiting
                                                    for a slot (the sort key is the order)
  SLOTS#<tenant> / STARTING#<task_id>              task_id, claimed_at: a task that got a
                                                    slot and whose execution is not known
                                                    to have started yet
  TASK#<id>      / SLOT                             tenant_id, claimed_at, released,
                                                    released_at, handed_to: the task holds
                                                    (or held) a slot

Every change is one transaction whose conditions make it exact under any concurrency:

* claim (a free slot → the oldest queued task): counter ADD 1 if running < cap, queue
  item deleted if it still exists, holder put if absent. Two claimers of one queued task:
  one deletes its queue item, the other's transaction is cancelled; the cap can never be
  passed, because the increment is conditional on the value it changes.
* hand_over (an ending task's slot → the oldest queued task): the holder marked released
  (only if it was not: a retried release is a no-op) with handed_to = the next task, the
  counter checked (running <= cap: a lowered cap takes effect), the queue item deleted,
  the next task's holder put. The count does not change: the slot goes straight on.
* release (no one waits): the holder marked released (once) and the counter decremented
  (only while > 0).

The released holder stays (with `handed_to`), so a retried release can finish what a
crashed one began: start the task its slot went to (starts are idempotent: the execution
is named after the task). A claim and a hand-over also write a STARTING marker, deleted
once the task's execution is known to run (or the task ended): a submit that died between
its claim and its start leaves the marker, and the tenant's next submit or task end
starts that task (`stale_starts`), so the slot is never held by a task that never runs.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from agentkit.models.domain import utc_now
from agentkit.store.codec import from_item, to_attr, to_item
from agentkit.store.codec import is_condition_failure as _is_condition_failure
from agentkit.store.tasks import TaskStore, task_pk

SLOTS_PREFIX = "SLOTS#"
COUNTER_SK = "COUNTER"
QUEUE_PREFIX = "QUEUE#"
STARTING_PREFIX = "STARTING#"
HOLDER_SK = "SLOT"

#: Tries of a write that lost to a concurrent transaction on the same item
#: (TransactionConflict: nothing was decided, so it is simply tried again).
_CONFLICT_TRIES = 8


class SlotOutcome(Enum):
    DONE = "done"  # the write happened
    NO_SLOT = "no_slot"  # the tenant is at its cap (or above a lowered one)
    TAKEN = "taken"  # the queued task was claimed by someone else (or removed by a cancel)
    ALREADY_RELEASED = "already_released"  # the holder is gone or was released before
    COUNTER_EMPTY = "counter_empty"  # release found running == 0 (never after a claim)


@dataclass(frozen=True)
class QueuedTask:
    task_id: str
    created_at: str

    @property
    def sk(self) -> str:
        return queue_sk(self.created_at, self.task_id)


@dataclass(frozen=True)
class SlotHolder:
    task_id: str
    tenant_id: str
    claimed_at: str
    released: bool = False
    released_at: str | None = None
    handed_to: str | None = None


def slots_pk(tenant_id: str) -> str:
    return f"{SLOTS_PREFIX}{tenant_id}"


def queue_sk(created_at: str, task_id: str) -> str:
    return f"{QUEUE_PREFIX}{created_at}#{task_id}"


def _reasons(error: ClientError) -> list[str] | None:
    """Per-item codes of a cancelled transaction ('None' for items that were fine)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons")
    if reasons:
        return [str(reason.get("Code") or "None") for reason in reasons]
    # Some emulators only list them in the message: "... reasons [ConditionalCheckFailed, None]"
    listed = re.search(r"\[([^\]]*)\]\s*$", error.response.get("Error", {}).get("Message", ""))
    return [code.strip() for code in listed.group(1).split(",")] if listed else []


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.02 * (2**attempt)))


class TenantSlots:
    def __init__(self, store: TaskStore) -> None:
        self.client = store.client
        self.table_name = store.table_name

    # --- keys

    def _counter_key(self, tenant_id: str) -> dict[str, Any]:
        return to_item({"pk": slots_pk(tenant_id), "sk": COUNTER_SK})

    def _queue_key(self, tenant_id: str, entry: QueuedTask) -> dict[str, Any]:
        return to_item({"pk": slots_pk(tenant_id), "sk": entry.sk})

    def _holder_key(self, task_id: str) -> dict[str, Any]:
        return to_item({"pk": task_pk(task_id), "sk": HOLDER_SK})

    # --- reads

    def running(self, tenant_id: str) -> int:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._counter_key(tenant_id), ConsistentRead=True
        ).get("Item")
        return int(from_item(item).get("running", 0)) if item else 0

    def queued(self, tenant_id: str, *, limit: int = 10) -> list[QueuedTask]:
        """The tenant's oldest queued tasks, oldest first (at most `limit`)."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item(
                {":pk": slots_pk(tenant_id), ":prefix": QUEUE_PREFIX}
            ),
            ConsistentRead=True,
            Limit=limit,
        )
        return [
            QueuedTask(task_id=values["task_id"], created_at=values["created_at"])
            for values in (from_item(item) for item in response.get("Items", []))
        ]

    def holder(self, task_id: str) -> SlotHolder | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._holder_key(task_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        values = from_item(item)
        return SlotHolder(
            task_id=task_id,
            tenant_id=values["tenant_id"],
            claimed_at=values["claimed_at"],
            released=bool(values.get("released")),
            released_at=values.get("released_at"),
            handed_to=values.get("handed_to"),
        )

    def stale_starts(self, tenant_id: str, *, claimed_before: str,
                     limit: int = 25) -> list[str]:
        """Tasks of the tenant claimed before `claimed_before` (ISO time) whose start was
        never confirmed: their claimer died between the claim and the start."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            FilterExpression="claimed_at < :before",
            ExpressionAttributeValues=to_item({":pk": slots_pk(tenant_id),
                                               ":prefix": STARTING_PREFIX,
                                               ":before": claimed_before}),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(item)["task_id"] for item in response.get("Items", [])]

    def started(self, tenant_id: str, task_id: str) -> None:
        """The task's execution runs (or the task ended): no start to recover."""
        self.client.delete_item(
            TableName=self.table_name,
            Key=to_item({"pk": slots_pk(tenant_id), "sk": STARTING_PREFIX + task_id}),
        )

    # --- the queue

    def enqueue(self, tenant_id: str, entry: QueuedTask) -> bool:
        """Put the task in its tenant's queue; False if it is there already (a retry)."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_item(
                    {
                        "pk": slots_pk(tenant_id),
                        "sk": entry.sk,
                        "task_id": entry.task_id,
                        "created_at": entry.created_at,
                    }
                ),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def dequeue(self, tenant_id: str, entry: QueuedTask) -> bool:
        """Take the task out of the queue unclaimed (a cancel). False: it was claimed (or
        removed) first, so it holds or held a slot that its ending must release."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=self._queue_key(tenant_id, entry),
                ConditionExpression="attribute_exists(sk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # --- slot changes (transactions)

    def claim(self, tenant_id: str, entry: QueuedTask, max_running: int) -> SlotOutcome:
        """A free slot of the tenant → `entry` (DONE), or NO_SLOT / TAKEN."""
        now = utc_now()
        items = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._counter_key(tenant_id),
                    "UpdateExpression": "ADD running :one",
                    "ConditionExpression": "attribute_not_exists(running) OR running < :cap",
                    "ExpressionAttributeValues": {":one": to_attr(1), ":cap": to_attr(max_running)},
                }
            },
            self._take_from_queue(tenant_id, entry),
            self._put_holder(entry.task_id, tenant_id, now),
            self._put_starting(entry.task_id, tenant_id, now),
        ]
        return self._transact(items, {0: SlotOutcome.NO_SLOT, 1: SlotOutcome.TAKEN,
                                      2: SlotOutcome.TAKEN})

    def hand_over(
        self, task_id: str, tenant_id: str, entry: QueuedTask, max_running: int
    ) -> SlotOutcome:
        """`task_id`'s slot → `entry`, released exactly once: DONE, or ALREADY_RELEASED,
        NO_SLOT (the cap was lowered below what runs), TAKEN."""
        now = utc_now()
        items = [
            self._mark_released(task_id, now, handed_to=entry.task_id),
            {
                "ConditionCheck": {
                    "TableName": self.table_name,
                    "Key": self._counter_key(tenant_id),
                    "ConditionExpression": "running <= :cap",
                    "ExpressionAttributeValues": {":cap": to_attr(max_running)},
                }
            },
            self._take_from_queue(tenant_id, entry),
            self._put_holder(entry.task_id, tenant_id, now),
            self._put_starting(entry.task_id, tenant_id, now),
        ]
        return self._transact(items, {0: SlotOutcome.ALREADY_RELEASED, 1: SlotOutcome.NO_SLOT,
                                      2: SlotOutcome.TAKEN, 3: SlotOutcome.TAKEN})

    def release(self, task_id: str, tenant_id: str) -> SlotOutcome:
        """Give `task_id`'s slot back, exactly once: DONE or ALREADY_RELEASED."""
        items = [
            self._mark_released(task_id, utc_now(), handed_to=None),
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._counter_key(tenant_id),
                    "UpdateExpression": "ADD running :minus_one",
                    "ConditionExpression": "running > :zero",
                    "ExpressionAttributeValues": {":minus_one": to_attr(-1),
                                                  ":zero": to_attr(0)},
                }
            },
        ]
        outcome = self._transact(items, {0: SlotOutcome.ALREADY_RELEASED,
                                         1: SlotOutcome.COUNTER_EMPTY})
        if outcome is SlotOutcome.COUNTER_EMPTY:
            # Not after a claim (both change in one transaction); only if the counter was
            # reset by hand. Mark the holder anyway, so the task is never released twice.
            return self._transact([self._mark_released(task_id, utc_now(), handed_to=None)],
                                  {0: SlotOutcome.ALREADY_RELEASED})
        return outcome

    # --- parts

    def _take_from_queue(self, tenant_id: str, entry: QueuedTask) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": self._queue_key(tenant_id, entry),
                "ConditionExpression": "attribute_exists(sk)",
            }
        }

    def _put_holder(self, task_id: str, tenant_id: str, now: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(
                    {
                        "pk": task_pk(task_id),
                        "sk": HOLDER_SK,
                        "tenant_id": tenant_id,
                        "claimed_at": now,
                        "released": False,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def _put_starting(self, task_id: str, tenant_id: str, now: str) -> dict[str, Any]:
        return {"Put": {"TableName": self.table_name, "Item": to_item({
            "pk": slots_pk(tenant_id), "sk": STARTING_PREFIX + task_id, "task_id": task_id,
            "claimed_at": now})}}

    def _mark_released(self, task_id: str, now: str, *, handed_to: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {":true": to_attr(True), ":false": to_attr(False),
                                  ":now": to_attr(now)}
        expression = "SET released = :true, released_at = :now"
        if handed_to is not None:
            expression += ", handed_to = :next"
            values[":next"] = to_attr(handed_to)
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._holder_key(task_id),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_exists(sk) AND released = :false",
                "ExpressionAttributeValues": values,
            }
        }

    def _transact(
        self, items: Sequence[Any], failures: dict[int, SlotOutcome]
    ) -> SlotOutcome:
        """Run the transaction; a failed condition → the outcome named for its item (the
        first in `failures` order); a conflict with another transaction → try again."""
        for attempt in range(_CONFLICT_TRIES):
            try:
                self.client.transact_write_items(TransactItems=items)
                return SlotOutcome.DONE
            except ClientError as error:
                reasons = _reasons(error)
                if reasons is None:
                    raise
            failed = [index for index, code in enumerate(reasons)
                      if code == "ConditionalCheckFailed"]
            for index in sorted(failures):
                if index in failed:
                    return failures[index]
            if any(code == "TransactionConflict" for code in reasons) or not reasons:
                _pause(attempt)
                continue
            raise RuntimeError(f"tenant slot transaction cancelled: {reasons}")
        raise RuntimeError("tenant slot transaction kept conflicting with concurrent writes")
