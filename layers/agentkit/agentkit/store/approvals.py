"""Approval records, on the tasks table next to the task they belong to.

  TASK#<id> / APPROVAL#<approval_id>   tool, call, arguments (JSON), args_hash, status,
                                       reason, created_at, decided_at, task_token
The META item carries `pending_approvals`, a counter changed in the same transaction as
each approval's creation and decision, so the task is WAITING_APPROVAL exactly while a
call waits: it goes back to RUNNING (conditionally) only when the counter is back to 0.

The task token is the credential that resumes the state machine: it is stored here and
never leaves this module in a view.

Arguments that would make the item larger than INLINE_ITEM_BYTES go to S3 (`arguments_ref`)
and are read back transparently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from agentkit.models.domain import ApprovalStatus, ApprovalView, TaskStatus, utc_now
from agentkit.store.codec import (
    INLINE_ITEM_BYTES,
    Item,
    from_item,
    is_condition_failure,
    item_size,
    to_attr,
    to_item,
)
from agentkit.store.errors import ConflictError
from agentkit.store.tasks import META, TaskStore, blob_stem, task_pk

APPROVAL_PREFIX = "APPROVAL#"
PENDING_COUNTER = "pending_approvals"


class ApprovalNotFoundError(LookupError):
    def __init__(self, task_id: str, approval_id: str) -> None:
        super().__init__(f"approval '{approval_id}' of task '{task_id}' not found")


class ApprovalConflictError(RuntimeError):
    """The approval was already decided (or does not match what the caller saw)."""


class ApprovalRecord(ApprovalView):
    task_id: str
    task_token: str | None = None

    def view(self) -> ApprovalView:
        return ApprovalView.model_validate(self.model_dump(exclude={"task_id", "task_token"}))


def approval_sk(approval_id: str) -> str:
    return f"{APPROVAL_PREFIX}{approval_id}"


class ApprovalStore:
    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.client = store.client
        self.table_name = store.table_name
        self.claim_checks = store.claim_checks

    @staticmethod
    def _key(task_id: str, approval_id: str) -> Item:
        return to_item({"pk": task_pk(task_id), "sk": approval_sk(approval_id)})

    # --- reads

    def get(self, task_id: str, approval_id: str) -> ApprovalRecord | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(task_id, approval_id),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else self._record(item)

    def list(self, task_id: str) -> list[ApprovalRecord]:
        """Every approval of the task, oldest first."""
        records: list[ApprovalRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item(
                {":pk": task_pk(task_id), ":prefix": APPROVAL_PREFIX}
            ),
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            records.extend(self._record(item) for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(records, key=lambda r: (r.created_at, r.approval_id))

    # --- writes

    def request(self, record: ApprovalRecord) -> tuple[ApprovalRecord, bool]:
        """Create the PENDING approval and mark the task WAITING_APPROVAL, atomically.

        Returns (record, created). A retried step finds the approval already there:
        if still PENDING it gets the new task token (the old wait is gone); a decided
        one is returned as it is, for the caller to answer the new token at once.
        Raises ConflictError when the task is no longer active.
        """
        item = self._item(record)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": to_item({"pk": task_pk(record.task_id), "sk": META}),
                            "UpdateExpression": "SET #status = :waiting, #updated = :now, "
                            "#pending = if_not_exists(#pending, :zero) + :one",
                            "ConditionExpression": "attribute_exists(pk) AND "
                            "#status IN (:running, :waiting)",
                            "ExpressionAttributeNames": {
                                "#status": "status",
                                "#updated": "updated_at",
                                "#pending": PENDING_COUNTER,
                            },
                            "ExpressionAttributeValues": to_item(
                                {
                                    ":waiting": TaskStatus.WAITING_APPROVAL.value,
                                    ":running": TaskStatus.RUNNING.value,
                                    ":now": utc_now(),
                                    ":zero": 0,
                                    ":one": 1,
                                }
                            ),
                        }
                    },
                ]
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            existing = self.get(record.task_id, record.approval_id)
            if existing is None:
                raise ConflictError(
                    f"task '{record.task_id}' is no longer running: no approval requested"
                ) from None
            if existing.status == ApprovalStatus.PENDING and record.task_token:
                existing = self._replace_token(existing, record.task_token)
            return existing, False
        return record, True

    def _replace_token(self, existing: ApprovalRecord, token: str) -> ApprovalRecord:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(existing.task_id, existing.approval_id),
                UpdateExpression="SET task_token = :token",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item(
                    {":token": token, ":pending": ApprovalStatus.PENDING.value}
                ),
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
        return self.get(existing.task_id, existing.approval_id) or existing

    def decide(
        self,
        task_id: str,
        approval_id: str,
        status: ApprovalStatus,
        *,
        reason: str | None = None,
        expected_hash: str | None = None,
    ) -> ApprovalRecord:
        """PENDING → `status` and the task's pending counter down by one, atomically.
        ApprovalNotFoundError if unknown; ApprovalConflictError if not PENDING any more."""
        if status == ApprovalStatus.PENDING:
            raise ValueError("a decision cannot be PENDING")
        names = {"#status": "status", "#decided": "decided_at", "#reason": "reason"}
        values: dict[str, Any] = {
            ":status": status.value,
            ":pending": ApprovalStatus.PENDING.value,
            ":now": utc_now(),
            ":reason": reason or "",
        }
        condition = "#status = :pending"
        if expected_hash is not None:
            names["#hash"] = "args_hash"
            values[":hash"] = expected_hash
            condition += " AND #hash = :hash"
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._key(task_id, approval_id),
                            "UpdateExpression": "SET #status = :status, #decided = :now, "
                            "#reason = :reason",
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": to_item(values),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": to_item({"pk": task_pk(task_id), "sk": META}),
                            "UpdateExpression": "SET #pending = if_not_exists(#pending, :one) "
                            "- :one",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#pending": PENDING_COUNTER},
                            "ExpressionAttributeValues": {":one": to_attr(1)},
                        }
                    },
                ]
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            current = self.get(task_id, approval_id)
            if current is None:
                raise ApprovalNotFoundError(task_id, approval_id) from None
            if expected_hash is not None and current.args_hash != expected_hash:
                raise ApprovalConflictError(
                    f"approval '{approval_id}' is for arguments with hash {current.args_hash}, "
                    f"not {expected_hash}"
                ) from None
            raise ApprovalConflictError(
                f"approval '{approval_id}' is already {current.status.value}"
            ) from None
        decided = self.get(task_id, approval_id)
        assert decided is not None
        return decided

    def resume_task(self, task_id: str) -> bool:
        """WAITING_APPROVAL → RUNNING once no approval of the task is pending; False if the
        task is not waiting (finished, cancelled, running) or another approval still waits."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_item({"pk": task_pk(task_id), "sk": META}),
                UpdateExpression="SET #status = :running, #updated = :now",
                ConditionExpression="#status = :waiting AND "
                "(attribute_not_exists(#pending) OR #pending <= :zero)",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#updated": "updated_at",
                    "#pending": PENDING_COUNTER,
                },
                ExpressionAttributeValues=to_item(
                    {
                        ":running": TaskStatus.RUNNING.value,
                        ":waiting": TaskStatus.WAITING_APPROVAL.value,
                        ":now": utc_now(),
                        ":zero": 0,
                    }
                ),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def _item(self, record: ApprovalRecord) -> Item:
        arguments = json.dumps(record.arguments, sort_keys=True)
        item = to_item(
            {
                "pk": task_pk(record.task_id),
                "sk": approval_sk(record.approval_id),
                **record.model_dump(mode="json", exclude={"arguments"}),
                "arguments": arguments,
            }
        )
        if item_size(item) <= INLINE_ITEM_BYTES:
            return item
        item.pop("arguments")
        item["arguments_ref"] = to_attr(
            self.claim_checks.put(
                blob_stem(record.task_id, approval_sk(record.approval_id)),
                arguments.encode(),
                content_type="application/json",
                what=f"the arguments of approval {record.approval_id}",
            )
        )
        return item

    def _record(self, item: Mapping[str, Any]) -> ApprovalRecord:
        values = from_item(item)
        ref = values.pop("arguments_ref", None)
        arguments = self.claim_checks.get(ref).decode() if ref else values.get("arguments")
        values["arguments"] = json.loads(arguments or "{}")
        if values.get("reason") == "":
            values["reason"] = None
        return ApprovalRecord.model_validate(values)
