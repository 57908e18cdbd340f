"""The sub-tasks a task's `delegate` calls started, one record per turn of the parent.

Item (on the tasks table, beside the parent's other items):
  TASK#<parent_id> / CHILDREN#<turn>   children   {child_id: {call_id, index, position}}
                                       pending    how many have not reported yet
                                       outcomes   {child_id: {status, at}}
                                       task_token the parent's WaitForChildren token,
                                                  once it is parked (never leaves the store)

How the parent waits without compute (agentkit.loop.children): the record is written with
every child of the turn (`pending` = their number) before any is started; each child, as
it ends, records its outcome and adds its usage to the parent's in one transaction (once:
conditional on its outcome being absent); the parent's wait stores its token with
`park`. The last writer of the two sees both `pending == 0` and the token and resumes
the parent, whichever order they came in: a child that ends before the token is stored
leaves `pending` at 0 for `park` to see, and a token stored first is there for the last
child's read after its write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from agentkit.models.domain import Usage, utc_now
from agentkit.store.codec import from_item, is_condition_failure, to_attr, to_item
from agentkit.store.tasks import META, TaskStore, task_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PREFIX = "CHILDREN#"


def children_sk(turn: int) -> str:
    return f"{PREFIX}{turn:04d}"


class ChildSlot(BaseModel):
    """Where a sub-task's answer goes: the parent's call (id, index in its turn) and the
    sub-goal's position in that call's `tasks`."""

    call_id: str
    index: int = Field(ge=0)
    position: int = Field(ge=0)


class ChildOutcome(BaseModel):
    status: str
    at: str = Field(default_factory=utc_now)


class ChildrenRecord(BaseModel):
    """One turn's sub-tasks and how far they are. `task_token` stays in this module's
    callers in the loop; no view shows it."""

    parent_id: str
    turn: int
    children: dict[str, ChildSlot]
    pending: int
    outcomes: dict[str, ChildOutcome] = Field(default={})
    task_token: str | None = None
    created_at: str = Field(default_factory=utc_now)

    @property
    def done(self) -> bool:
        return self.pending <= 0

    def of_call(self, call_id: str) -> list[str]:
        """The children of one call, in the order of its `tasks`."""
        ids = [cid for cid, slot in self.children.items() if slot.call_id == call_id]
        return sorted(ids, key=lambda cid: self.children[cid].position)


class ChildrenStore:
    """The CHILDREN# records of the tasks table (through the task store's client)."""

    def __init__(self, tasks: TaskStore) -> None:
        self.tasks = tasks
        self.client: DynamoDBClient = tasks.client
        self.table_name = tasks.table_name

    def register(self, parent_id: str, turn: int,
                 children: Mapping[str, ChildSlot]) -> ChildrenRecord:
        """Write the turn's record once, every child pending; a retried step gets the
        first record back (the same children: their ids are derived from the calls)."""
        record = ChildrenRecord(parent_id=parent_id, turn=turn, children=dict(children),
                                pending=len(children))
        item = to_item({"pk": task_pk(parent_id), "sk": children_sk(turn),
                        **record.model_dump(mode="json", exclude={"parent_id", "task_token"})})
        try:
            self.client.put_item(TableName=self.table_name, Item=item,
                                 ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            existing = self.get(parent_id, turn)
            assert existing is not None
            return existing
        return record

    def get(self, parent_id: str, turn: int) -> ChildrenRecord | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(parent_id), "sk": children_sk(turn)}),
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else self._record(parent_id, from_item(item))

    def records(self, parent_id: str) -> list[ChildrenRecord]:
        """Every turn's record, oldest turn first."""
        records: list[ChildrenRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": task_pk(parent_id), ":prefix": PREFIX}),
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            records.extend(self._record(parent_id, from_item(item))
                           for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def child_ids(self, parent_id: str) -> list[str]:
        """The parent's sub-tasks, in the order they were made."""
        return [cid for record in self.records(parent_id)
                for call in dict.fromkeys(slot.call_id for slot in record.children.values())
                for cid in record.of_call(call)]

    def park(self, parent_id: str, turn: int, task_token: str) -> ChildrenRecord:
        """Store the parent's wait token; the record as it is now (`done`: every child has
        reported already, and the caller must resume the parent itself)."""
        response = self.client.update_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(parent_id), "sk": children_sk(turn)}),
            UpdateExpression="SET task_token = :token",
            ConditionExpression="attribute_exists(sk)",
            ExpressionAttributeValues={":token": to_attr(task_token)},
            ReturnValues="ALL_NEW",
        )
        return self._record(parent_id, from_item(response["Attributes"]))

    def report(self, parent_id: str, turn: int, child_id: str, status: str,
               usage: Usage) -> ChildrenRecord | None:
        """Record the child's outcome and add its usage to the parent's, in one
        transaction, once. Returns the record after the write, or None when this child had
        reported already (a retried Finalize) or is not one of the turn's.

        The usage is added field by field in place (no read, so siblings ending together
        never conflict); nothing else writes the parent's usage while it waits for them."""
        outcome = ChildOutcome(status=status).model_dump(mode="json")
        added = usage.model_dump(mode="json")
        names = {"#usage": "usage", **{f"#u{i}": field for i, field in enumerate(added)}}
        values: dict[str, Any] = {":zero": to_attr(0)}
        sums = []
        for i, value in enumerate(added.values()):
            values[f":u{i}"] = to_attr(value)
            sums.append(f"#usage.#u{i} = if_not_exists(#usage.#u{i}, :zero) + :u{i}")
        try:
            self.client.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self.table_name,
                    "Key": to_item({"pk": task_pk(parent_id), "sk": children_sk(turn)}),
                    "UpdateExpression": "SET outcomes.#child = :outcome, "
                                        "pending = pending - :one",
                    "ConditionExpression": "attribute_exists(children.#child) AND "
                                           "attribute_not_exists(outcomes.#child)",
                    "ExpressionAttributeNames": {"#child": child_id},
                    "ExpressionAttributeValues": {":outcome": to_attr(outcome),
                                                  ":one": to_attr(1)},
                }},
                {"Update": {
                    "TableName": self.table_name,
                    "Key": to_item({"pk": task_pk(parent_id), "sk": META}),
                    "UpdateExpression": "SET " + ", ".join(sums),
                    "ConditionExpression": "attribute_exists(#usage)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }},
            ])
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return None
        return self.get(parent_id, turn)

    def find_turn(self, parent_id: str, child_id: str) -> int | None:
        """The parent's turn whose record holds `child_id`."""
        for record in self.records(parent_id):
            if child_id in record.children:
                return record.turn
        return None

    @staticmethod
    def _record(parent_id: str, values: dict[str, Any]) -> ChildrenRecord:
        values = {k: v for k, v in values.items() if k not in ("pk", "sk")}
        return ChildrenRecord.model_validate({**values, "parent_id": parent_id})
