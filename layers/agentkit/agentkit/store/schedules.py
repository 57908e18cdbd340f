"""The schedule repository: a tenant's recurring task templates, on the tasks table.

  SCHEDULE#<tenant> / <schedule_id>   the schedule as JSON in `body` (or in S3, `body_ref`,
                                      when the item would pass INLINE_ITEM_BYTES)

The EventBridge Scheduler schedule that fires it is not data of this table: the schedules
logic (agentkit.api.schedules) creates and deletes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agentkit.models.api import SubmitTaskRequest
from agentkit.store.codec import INLINE_ITEM_BYTES, Item, from_item, item_size, to_item
from agentkit.store.tasks import TaskStore


class Schedule(BaseModel):
    schedule_id: str
    name: str
    schedule_expression: str
    timezone: str = "UTC"
    task: SubmitTaskRequest
    created_at: str


class ScheduleNotFoundError(LookupError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule '{schedule_id}' not found")


def schedules_pk(tenant_id: str) -> str:
    return f"SCHEDULE#{tenant_id}"


class ScheduleStore:
    def __init__(self, store: TaskStore) -> None:
        self.client = store.client
        self.table_name = store.table_name
        self.claim_checks = store.claim_checks

    @staticmethod
    def _key(tenant_id: str, schedule_id: str) -> Item:
        return to_item({"pk": schedules_pk(tenant_id), "sk": schedule_id})

    def put(self, tenant_id: str, schedule: Schedule) -> None:
        """Store a new schedule (its id must be new: the write is conditional)."""
        body = schedule.model_dump_json(exclude_none=True)
        item = {**self._key(tenant_id, schedule.schedule_id), **to_item({"body": body})}
        if item_size(item) > INLINE_ITEM_BYTES:
            ref = self.claim_checks.put(
                f"schedules/{tenant_id}/{schedule.schedule_id}",
                body.encode(),
                content_type="application/json",
                what=f"schedule {schedule.schedule_id}",
            )
            item = {**self._key(tenant_id, schedule.schedule_id), **to_item({"body_ref": ref})}
        self.client.put_item(
            TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(sk)"
        )

    def get(self, tenant_id: str, schedule_id: str) -> Schedule | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._key(tenant_id, schedule_id), ConsistentRead=True
        ).get("Item")
        return None if item is None else self._schedule(from_item(item))

    def require(self, tenant_id: str, schedule_id: str) -> Schedule:
        schedule = self.get(tenant_id, schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    def list_schedules(self, tenant_id: str) -> list[Schedule]:
        """A tenant's schedules, newest first."""
        found: list[Schedule] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": schedules_pk(tenant_id)}),
        }
        while True:
            response = self.client.query(**kwargs)
            found += [self._schedule(from_item(item)) for item in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                return sorted(found, key=lambda s: s.created_at, reverse=True)
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delete(self, tenant_id: str, schedule_id: str) -> None:
        """Remove the schedule; removing one that is gone is not an error."""
        self.client.delete_item(TableName=self.table_name, Key=self._key(tenant_id, schedule_id))

    def _schedule(self, values: dict[str, Any]) -> Schedule:
        if "body" in values:
            return Schedule.model_validate_json(values["body"])
        return Schedule.model_validate_json(self.claim_checks.get(values["body_ref"]))
