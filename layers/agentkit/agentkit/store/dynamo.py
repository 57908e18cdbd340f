"""The task repository on one DynamoDB table.

Item layout (pk / sk):
  TASK#<id> / META                 the task record (status, turn, usage, answer, ...)
  TASK#<id> / MSG#<turn>#<seq>     one conversation message, JSON in `body`
                                   turn 0: system + user; turn N: the assistant message
                                   at seq 0, then its tool results at seq 1..n
The META item also carries gsi1pk/gsi1sk (tenant, created time) for listing.

Every write that can race is conditional: a message is written once
(attribute_not_exists), the task advances one turn at a time (turn = expected)
and only while active, so a late step can never overwrite a CANCELLED or
finished task, and a retried step can never double-count usage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from agentkit.models import (
    ACTIVE_STATUSES,
    Message,
    Task,
    TaskEvent,
    TaskStatus,
    ToolSpec,
    Usage,
    utc_now,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

META = "META"


class TaskNotFoundError(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task '{task_id}' not found")
        self.task_id = task_id


class ConflictError(RuntimeError):
    """A conditional write lost: the task moved on (finished, cancelled, another turn)."""


def task_pk(task_id: str) -> str:
    return f"TASK#{task_id}"


def message_sk(turn: int, seq: int) -> str:
    return f"MSG#{turn:04d}#{seq:03d}"


def to_attr(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_decimalize(value))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: to_attr(value) for key, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _decimalize(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimalize(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_condition_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code in {"ConditionalCheckFailedException", "TransactionCanceledException"}


_ACTIVE = [status.value for status in ACTIVE_STATUSES]


class InvalidCursorError(ValueError):
    """A list cursor that this API did not hand out (or another tenant's)."""


def _task_from_item(item: dict[str, Any]) -> Task:
    values = from_item(item)
    if isinstance(values.get("scripted_turns"), str):
        values["scripted_turns"] = json.loads(values["scripted_turns"])
    return Task.model_validate(values)


def encode_cursor(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(from_item(last_key)).encode()).decode()


def decode_cursor(cursor: str, tenant_id: str) -> dict[str, Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, dict) or set(values) != {"pk", "sk", "gsi1pk", "gsi1sk"}:
            raise ValueError("unexpected shape")
    except ValueError:
        raise InvalidCursorError("not a cursor this API handed out") from None
    if values["gsi1pk"] != f"TENANT#{tenant_id}":
        raise InvalidCursorError("not a cursor this API handed out")
    return to_item(values)


# Message content over this size goes to S3 (DynamoDB items stop at 400 KB; Step Functions
# payloads at 256 KB) and the conversation keeps a preview and a pointer.
INLINE_CONTENT_BYTES = 200 * 1024
PREVIEW_CHARS = 2_000


class TaskStore:
    def __init__(
        self,
        table_name: str,
        client: Any | None = None,
        *,
        artifacts_bucket: str | None = None,
        s3_client: Any | None = None,
    ) -> None:
        self.table_name = table_name
        # Region/endpoint come from the environment (AWS_ENDPOINT_URL offline).
        self.client = client or boto3.client("dynamodb")
        self.artifacts_bucket = artifacts_bucket or os.environ.get("ARTIFACTS_BUCKET") or None
        self._s3 = s3_client

    # --- tasks

    def create_task(self, task: Task) -> None:
        record = task.model_dump(mode="json", exclude={"scripted_turns"})
        if task.scripted_turns is not None:
            record["scripted_turns"] = json.dumps(
                [turn.model_dump(mode="json", exclude_none=True) for turn in task.scripted_turns]
            )
        item = to_item(
            {
                "pk": task_pk(task.task_id),
                "sk": META,
                "gsi1pk": f"TENANT#{task.tenant_id}",
                "gsi1sk": f"{task.created_at}#{task.task_id}",
                **record,
            }
        )
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConflictError(f"task '{task.task_id}' already exists") from None
            raise

    def get_task(self, task_id: str) -> Task | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(task_id), "sk": META}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else _task_from_item(item)

    def list_tasks(
        self,
        tenant_id: str,
        *,
        status: TaskStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """A tenant's tasks, newest first, one page at a time (the cursor is opaque).

        A status filter applies within each page read, so a page may hold fewer than
        `limit` tasks while `next_cursor` still leads on.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by-tenant",
            "KeyConditionExpression": "gsi1pk = :tenant",
            "ExpressionAttributeValues": to_item({":tenant": f"TENANT#{tenant_id}"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if status is not None:
            kwargs["FilterExpression"] = "#status = :status"
            kwargs["ExpressionAttributeNames"] = {"#status": "status"}
            kwargs["ExpressionAttributeValues"].update(to_item({":status": status.value}))
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor, tenant_id)
        response = self.client.query(**kwargs)
        tasks = [_task_from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return tasks, (encode_cursor(last) if last else None)

    def require_task(self, task_id: str) -> Task:
        task = self.get_task(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def update_task(
        self,
        task_id: str,
        *,
        changes: dict[str, Any],
        allowed_statuses: Iterable[TaskStatus] | None = None,
        expected_turn: int | None = None,
    ) -> bool:
        """SET the given attributes; False when the condition did not hold."""
        statuses = None if allowed_statuses is None else list(allowed_statuses)
        names, values, assignments = self._update_parts(
            {**changes, "updated_at": utc_now()}, statuses, expected_turn
        )
        condition = self._condition(statuses, expected_turn)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_item({"pk": task_pk(task_id), "sk": META}),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def finish_task(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        answer: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Move an active task to a terminal status; False if it already ended."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not a terminal status")
        changes: dict[str, Any] = {"status": status.value}
        if answer is not None:
            changes["answer"] = answer
        if error is not None:
            changes["error"] = error
        return self.update_task(task_id, changes=changes, allowed_statuses=ACTIVE_STATUSES)

    # --- the task's tool surface, fixed when it is planned

    def put_tool_specs(self, task_id: str, specs: list[ToolSpec]) -> list[ToolSpec]:
        """Store the tool surface once; a retried Plan gets the first snapshot back."""
        body = json.dumps([spec.model_dump(mode="json") for spec in specs])
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_item({"pk": task_pk(task_id), "sk": "TOOLS", "body": body}),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            return self.get_tool_specs(task_id) or specs
        return specs

    def get_tool_specs(self, task_id: str) -> list[ToolSpec] | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(task_id), "sk": "TOOLS"}),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return [ToolSpec.model_validate(spec) for spec in json.loads(from_item(item)["body"])]

    # --- timeline

    def add_event(self, task_id: str, event: TaskEvent) -> None:
        """Append to the timeline. The key holds the time plus a random suffix, so writers
        never collide and a retried step's duplicate shows as what it was: another try."""
        self.client.put_item(
            TableName=self.table_name,
            Item=to_item(
                {
                    "pk": task_pk(task_id),
                    "sk": f"EVT#{event.at}#{secrets.token_hex(4)}",
                    "body": event.model_dump_json(exclude_none=True),
                }
            ),
        )

    def list_events(self, task_id: str) -> list[TaskEvent]:
        return [TaskEvent.model_validate_json(body) for body in self._query_bodies(task_id, "EVT#")]

    # --- conversation

    def put_message(self, task_id: str, turn: int, seq: int, message: Message) -> bool:
        """Write a message once. False if that slot is already taken (a retried step)."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=self._message_item(task_id, turn, seq, message),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def get_message(self, task_id: str, turn: int, seq: int) -> Message | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(task_id), "sk": message_sk(turn, seq)}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else Message.model_validate_json(from_item(item)["body"])

    def list_messages(self, task_id: str, turn: int | None = None) -> list[Message]:
        """The conversation in order; one turn's messages when `turn` is given."""
        prefix = "MSG#" if turn is None else f"MSG#{turn:04d}#"
        return [Message.model_validate_json(body) for body in self._query_bodies(task_id, prefix)]

    def _query_bodies(self, task_id: str, prefix: str) -> list[str]:
        """The `body` of every item of a task whose sort key starts with `prefix`, in order."""
        bodies: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": task_pk(task_id), ":prefix": prefix}),
            "ProjectionExpression": "body",
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            bodies.extend(from_item(item)["body"] for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return bodies
            kwargs["ExclusiveStartKey"] = last_key

    def commit_model_turn(self, task_id: str, turn: int, message: Message, usage: Usage) -> None:
        """Store the assistant message of `turn` and advance the task to it, atomically.

        Fails with ConflictError when the task is no longer RUNNING (cancelled,
        finished) or is not at turn-1 (a duplicate step) — nothing is written then.
        """
        names, values, assignments = self._update_parts(
            # a turn made means the task no longer waits for its provider
            {"turn": turn, "usage": usage.model_dump(mode="json"), "waiting": None,
             "updated_at": utc_now()},
            [TaskStatus.RUNNING],
            turn - 1,
        )
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": self._message_item(task_id, turn, 0, message),
                            "ConditionExpression": "attribute_not_exists(sk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": to_item({"pk": task_pk(task_id), "sk": META}),
                            "UpdateExpression": "SET " + ", ".join(assignments),
                            "ConditionExpression": self._condition([TaskStatus.RUNNING], turn - 1),
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConflictError(
                    f"task '{task_id}' could not advance to turn {turn}: it is no longer running "
                    "at the expected turn"
                ) from None
            raise

    def add_usage(self, task_id: str, usage: Usage, attempts: int = 5) -> None:
        """Add a call's usage to the task whatever its status (a call that completed after
        a cancel was still paid for). Optimistic: conditional on the usage read."""
        for _ in range(attempts):
            task = self.require_task(task_id)
            total = (task.usage + usage).model_dump(mode="json")
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=to_item({"pk": task_pk(task_id), "sk": META}),
                    UpdateExpression="SET #usage = :new",
                    ConditionExpression="#usage = :old",
                    ExpressionAttributeNames={"#usage": "usage"},
                    ExpressionAttributeValues={
                        ":new": to_attr(total),
                        ":old": to_attr(task.usage.model_dump(mode="json")),
                    },
                )
                return
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
        raise ConflictError(f"task '{task_id}': usage kept changing; could not add {usage}")

    # --- helpers

    def _message_item(self, task_id: str, turn: int, seq: int, message: Message) -> dict[str, Any]:
        message = self._claim_check(task_id, message_sk(turn, seq), message)
        return to_item(
            {
                "pk": task_pk(task_id),
                "sk": message_sk(turn, seq),
                "turn": turn,
                "seq": seq,
                "role": message.role,
                "body": message.model_dump_json(exclude_defaults=True),
                "created_at": utc_now(),
            }
        )

    def _claim_check(self, task_id: str, sk: str, message: Message) -> Message:
        """Large content → S3 (content-addressed, so a retried write never changes what an
        existing pointer refers to); the message keeps a preview and the pointer."""
        data = (message.content or "").encode()
        if len(data) <= INLINE_CONTENT_BYTES:
            return message
        if not self.artifacts_bucket:
            raise ValueError(
                f"message content of {len(data)} bytes exceeds {INLINE_CONTENT_BYTES} bytes "
                "and no ARTIFACTS_BUCKET is configured to hold it"
            )
        digest = hashlib.sha256(data).hexdigest()[:16]
        key = f"tasks/{task_id}/{sk.replace('#', '-')}-{digest}.txt"
        self._s3_client().put_object(
            Bucket=self.artifacts_bucket,
            Key=key,
            Body=data,
            ContentType="text/plain; charset=utf-8",
        )
        ref = f"s3://{self.artifacts_bucket}/{key}"
        preview = (message.content or "")[:PREVIEW_CHARS]
        return message.model_copy(
            update={
                "content": f"{preview}\n[… {len(data)} bytes in all, stored at {ref}]",
                "content_ref": ref,
                "content_bytes": len(data),
            }
        )

    def load_content(self, message: Message) -> str:
        """The full content of a message, fetched from S3 when it was claim-checked."""
        if not message.content_ref:
            return message.content or ""
        bucket, _, key = message.content_ref.removeprefix("s3://").partition("/")
        body = self._s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return str(body.decode())

    def _s3_client(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3")
        return self._s3

    @staticmethod
    def _update_parts(
        changes: dict[str, Any],
        allowed_statuses: list[TaskStatus] | None,
        expected_turn: int | None,
    ) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        assignments = []
        for index, (key, value) in enumerate(changes.items()):
            names[f"#f{index}"] = key
            values[f":v{index}"] = to_attr(value)
            assignments.append(f"#f{index} = :v{index}")
        if allowed_statuses is not None:
            names["#status"] = "status"
            for index, status in enumerate(allowed_statuses):
                values[f":s{index}"] = to_attr(status.value)
        if expected_turn is not None:
            names["#turn"] = "turn"
            values[":expected_turn"] = to_attr(expected_turn)
        return names, values, assignments

    @staticmethod
    def _condition(allowed_statuses: list[TaskStatus] | None, expected_turn: int | None) -> str:
        clauses = ["attribute_exists(pk)"]
        if allowed_statuses is not None:
            placeholders = ", ".join(f":s{i}" for i, _ in enumerate(allowed_statuses))
            clauses.append(f"#status IN ({placeholders})")
        if expected_turn is not None:
            clauses.append("#turn = :expected_turn")
        return " AND ".join(clauses)
