"""The task repository: a task, its tool surface, its timeline and its conversation, on
the tasks table.

Item layout (pk / sk):
  TASK#<id> / META                 the task record (status, turn, usage, answer, ...)
  TASK#<id> / TOOLS                the tool surface Plan fixed (JSON in `body`)
  TASK#<id> / SCRIPT               the replies model `scripted` plays (JSON in `body`;
                                   tests and the demo only; read by CallModel alone)
  TASK#<id> / EVT#<at>#<random>    one timeline entry (JSON in `body`)
  TASK#<id> / MSG#<turn>#<seq>     one conversation message, JSON in `body`
                                   turn 0: system + user; turn N: the assistant message
                                   at seq 0, then its tool results at seq 1..n
  TASK#<id> / SUM#<turn>           a summary of the conversation's turns 1..<turn>, made
                                   when the conversation outgrew its model's window
                                   (agentkit.memory.context; JSON in `body`); the
                                   messages it summarises stay as they are
  TASK#<id> / FUP#<n>              follow-up message n (POST /tasks/{id}/messages): its
                                   content and whether it is queued, started (by which
                                   run) or discarded (the task was cancelled first)
  TASK#<id> / RUN#<n>              run n as it ended (a TaskRun, JSON in `body`), written
                                   when run n+1 begins; the META item describes the
                                   current run
A follow-up run's user message is MSG#<first turn>#<seq from FOLLOW_UP_SEQ>: after the
results of the turn it continues from, before the run's first reply.
The META item also carries gsi1pk/gsi1sk (tenant, created time) for listing.

Every write that can race is conditional: a message is written once
(attribute_not_exists), the task advances one turn at a time (turn = expected)
and only while active, so a late step can never overwrite a CANCELLED or
finished task, and a retried step can never double-count usage.

No item grows past INLINE_ITEM_BYTES (measured on the encoded item, see codec.py): a
message's content goes to S3 with a preview left inline (`content_ref`), its tool calls go
to S3 whole (`tool_calls_ref`, read back transparently), and an event's or the tool
surface's body goes to S3 whole (`body_ref`, read back transparently).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from agentkit import aws
from agentkit.models.domain import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    FollowUpState,
    Message,
    Task,
    TaskEvent,
    TaskRun,
    TaskStatus,
    ToolCall,
    ToolSpec,
    Usage,
    utc_now,
)
from agentkit.models.scripted import ScriptedTurn
from agentkit.store.blobs import ClaimChecks
from agentkit.store.codec import (
    INLINE_ITEM_BYTES,
    Item,
    from_item,
    is_condition_failure,
    item_size,
    to_attr,
    to_item,
)
from agentkit.store.errors import (
    ConflictError,
    InvalidCursorError,
    TaskBusyError,
    TaskNotFoundError,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

META = "META"
TOOLS = "TOOLS"
SCRIPT = "SCRIPT"
#: Where releases before the SCRIPT item kept a task's script: on its META item, as JSON
#: text, or in S3 when long (the reference).
LEGACY_SCRIPT_ATTRIBUTES = ("scripted_turns", "scripted_turns_ref")

__all__ = ["META", "ConflictError", "InvalidCursorError", "TaskNotFoundError", "TaskStore"]


def task_pk(task_id: str) -> str:
    return f"TASK#{task_id}"


def message_sk(turn: int, seq: int) -> str:
    return f"MSG#{turn:04d}#{seq:03d}"


def summary_sk(through_turn: int) -> str:
    return f"SUM#{through_turn:04d}"


def follow_up_sk(number: int) -> str:
    return f"FUP#{number:06d}"


def run_sk(run: int) -> str:
    return f"RUN#{run:04d}"


#: The seq of a follow-up run's user message within the turn it continues from: after
#: that turn's tool results (seq 1..n, one per call). A run that made no turn (it failed
#: or was stopped first) leaves the next run the same turn: its message takes the next seq.
FOLLOW_UP_SEQ = 900
MAX_FOLLOW_UP_SEQ = 999


class FollowUpRecord(BaseModel):
    """A follow-up message as stored (TASK#<id> / FUP#<n>)."""

    follow_up: int
    content: str
    state: FollowUpState = "queued"
    #: the run that answers it, once started
    run: int | None = None
    created_at: str


def blob_stem(task_id: str, sk: str) -> str:
    """Where a task item's claim-checked part lives in the bucket (before its digest)."""
    return f"tasks/{task_id}/{sk.replace('#', '-')}"


def encode_cursor(last_key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(from_item(last_key)).encode()).decode()


def decode_cursor(cursor: str, tenant_id: str) -> Item:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, dict) or set(values) != {"pk", "sk", "gsi1pk", "gsi1sk"}:
            raise ValueError("unexpected shape")
    except ValueError:
        raise InvalidCursorError("not a cursor this API handed out") from None
    if values["gsi1pk"] != f"TENANT#{tenant_id}":
        raise InvalidCursorError("not a cursor this API handed out")
    return to_item(values)


#: What a claim-checked message keeps of its content, inline.
PREVIEW_CHARS = 2_000


class TaskStore:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        artifacts_bucket: str | None = None,
        s3_client: S3Client | None = None,
    ) -> None:
        self.table_name = table_name
        # Region/endpoint come from the environment (AWS_ENDPOINT_URL offline).
        self.client: DynamoDBClient = client or aws.client("dynamodb")
        # `artifacts_bucket`: the function's ARTIFACTS_BUCKET (agentkit.config.StoreSettings).
        self.claim_checks = ClaimChecks(artifacts_bucket or None, s3_client)

    # --- tasks

    def create_task(self, task: Task, *, script: list[ScriptedTurn] | None = None) -> None:
        """Store a new task (its id must be new), with the replies model `scripted` plays
        for it. The script goes first, to its own item: a task never exists without it."""
        if script is not None:
            body = json.dumps([turn.model_dump(mode="json", exclude_none=True) for turn in script])
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=self._body_item(
                        task.task_id, SCRIPT, body,
                        what=f"the scripted turns of task '{task.task_id}'",
                    ),
                    ConditionExpression="attribute_not_exists(sk)",
                )
            except ClientError as error:
                if is_condition_failure(error):
                    raise ConflictError(f"task '{task.task_id}' already exists") from None
                raise
        item = to_item(
            {
                "pk": task_pk(task.task_id),
                "sk": META,
                "gsi1pk": f"TENANT#{task.tenant_id}",
                "gsi1sk": f"{task.created_at}#{task.task_id}",
                **task.model_dump(mode="json"),
            }
        )
        size = item_size(item)
        if size > INLINE_ITEM_BYTES:
            raise ValueError(
                f"task '{task.task_id}': its record would be {size} bytes, over the store's "
                f"{INLINE_ITEM_BYTES}-byte budget"
            )
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if is_condition_failure(error):
                raise ConflictError(f"task '{task.task_id}' already exists") from None
            raise

    def _read(self, task_id: str, sk: str) -> dict[str, Any] | None:
        """One item of the task's partition, read consistently and decoded; None if absent."""
        item = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(task_id), "sk": sk}),
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else from_item(item)

    def get_task(self, task_id: str) -> Task | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": task_pk(task_id), "sk": META}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else self._task(item)

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
        tasks = [self._task(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return tasks, (encode_cursor(last) if last else None)

    def _task(self, item: Mapping[str, Any]) -> Task:
        values = from_item(item)
        # An older release kept the script on the task record: not part of the task.
        for name in LEGACY_SCRIPT_ATTRIBUTES:
            values.pop(name, None)
        return Task.model_validate(values)

    def get_script(self, task_id: str) -> list[ScriptedTurn]:
        """The replies model `scripted` plays for the task ([] when it has none): its SCRIPT
        item, or where an older release kept it, on the task record (inline or in S3)."""
        script = self._read(task_id, SCRIPT)
        if script is not None:
            body = self._body(script)
        else:
            record = self.client.get_item(
                TableName=self.table_name,
                Key=to_item({"pk": task_pk(task_id), "sk": META}),
                ConsistentRead=True,
                ProjectionExpression=", ".join(LEGACY_SCRIPT_ATTRIBUTES),
            ).get("Item")
            values = from_item(record or {})
            if "scripted_turns_ref" in values:
                body = self.claim_checks.get(values["scripted_turns_ref"]).decode()
            else:
                body = values.get("scripted_turns") or "[]"
        return [ScriptedTurn.model_validate(turn) for turn in json.loads(body)]

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
            if is_condition_failure(error):
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
        changes: dict[str, Any] = {"status": status.value, "ended_at": utc_now()}
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
                Item=self._body_item(task_id, TOOLS, body, what="the tool surface"),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return self.get_tool_specs(task_id) or specs
        return specs

    def get_tool_specs(self, task_id: str) -> list[ToolSpec] | None:
        values = self._read(task_id, TOOLS)
        if values is None:
            return None
        return [ToolSpec.model_validate(spec) for spec in json.loads(self._body(values))]

    # --- timeline

    def add_event(self, task_id: str, event: TaskEvent) -> None:
        """Append to the timeline. The key holds the time plus a random suffix, so writers
        never collide and a retried step's duplicate shows as what it was: another try."""
        sk = f"EVT#{event.at}#{secrets.token_hex(4)}"
        body = event.model_dump_json(exclude_none=True)
        self.client.put_item(
            TableName=self.table_name,
            Item=self._body_item(task_id, sk, body, what=f"event {event.kind} {event.name}"),
        )

    def list_events(self, task_id: str) -> list[TaskEvent]:
        return [
            TaskEvent.model_validate_json(self._body(values))
            for values in self._query(task_id, "EVT#", "body, body_ref")
        ]

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
            if is_condition_failure(error):
                return False
            raise
        return True

    def get_message(self, task_id: str, turn: int, seq: int) -> Message | None:
        values = self._read(task_id, message_sk(turn, seq))
        return None if values is None else self._message(values)

    def list_messages(self, task_id: str, turn: int | None = None) -> list[Message]:
        """The conversation in order; one turn's messages when `turn` is given."""
        prefix = "MSG#" if turn is None else f"MSG#{turn:04d}#"
        return [
            self._message(values) for values in self._query(task_id, prefix, "body, tool_calls_ref")
        ]

    def _query(self, task_id: str, prefix: str, projection: str) -> list[dict[str, Any]]:
        """The items of a task whose sort key starts with `prefix`, in order (decoded)."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": task_pk(task_id), ":prefix": prefix}),
            "ProjectionExpression": projection,
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            found.extend(from_item(item) for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return found
            kwargs["ExclusiveStartKey"] = last_key

    # --- summaries of the conversation (context compaction)

    def put_summary(
        self, task_id: str, through_turn: int, body: str, usage: Usage, attempts: int = 5
    ) -> bool:
        """Store the summary of turns 1..`through_turn` (JSON `body`) once, and add the
        usage of the calls that made it to the task in the same transaction (whatever the
        task's status: the calls were paid for). False when that summary exists already
        (a twin step stored it first, with its own usage): this one is dropped."""
        item = self._body_item(task_id, summary_sk(through_turn), body,
                               what=f"the summary through turn {through_turn}")
        for _ in range(attempts):
            task = self.require_task(task_id)
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": self.table_name, "Item": item,
                                 "ConditionExpression": "attribute_not_exists(sk)"}},
                        {"Update": {
                            "TableName": self.table_name,
                            "Key": to_item({"pk": task_pk(task_id), "sk": META}),
                            "UpdateExpression": "SET #usage = :new",
                            "ConditionExpression": "#usage = :old",
                            "ExpressionAttributeNames": {"#usage": "usage"},
                            "ExpressionAttributeValues": {
                                ":new": to_attr((task.usage + usage).model_dump(mode="json")),
                                ":old": to_attr(task.usage.model_dump(mode="json")),
                            },
                        }},
                    ]
                )
                return True
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
            if self.get_summary(task_id, through_turn) is not None:
                return False
        raise ConflictError(f"task '{task_id}': usage kept changing; could not store a summary")

    def get_summary(self, task_id: str, through_turn: int) -> str | None:
        values = self._read(task_id, summary_sk(through_turn))
        return None if values is None else self._body(values)

    def list_summaries(self, task_id: str) -> list[str]:
        """The task's summaries (JSON bodies), oldest (fewest turns) first."""
        return [self._body(values) for values in self._query(task_id, "SUM#", "body, body_ref")]

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
            if is_condition_failure(error):
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
                if not is_condition_failure(error):
                    raise
        raise ConflictError(f"task '{task_id}': usage kept changing; could not add {usage}")

    # --- runs and follow-ups (agentkit.loop.runs)

    def add_follow_up(
        self, task_id: str, content: str, *, when_idle: bool, attempts: int = 5
    ) -> tuple[Task, FollowUpRecord]:
        """Queue a follow-up message (number: the task's follow_ups + 1) and count it on the
        task, in one transaction. `when_idle`: only while the task has no active run and
        nothing queued (TaskBusyError otherwise, nothing written). Returns the task as it
        was read and the message."""
        for _ in range(attempts):
            task = self.require_task(task_id)
            if when_idle and (not task.status.is_terminal or task.queued_follow_ups):
                raise TaskBusyError(_busy_reason(task))
            record = FollowUpRecord(follow_up=task.follow_ups + 1, content=content,
                                    created_at=utc_now())
            names = {"#fu": "follow_ups", "#updated": "updated_at"}
            values: dict[str, Any] = {":n": to_attr(record.follow_up),
                                      ":old_fu": to_attr(task.follow_ups),
                                      ":now": to_attr(record.created_at)}
            condition = [_counter_is("#fu", ":old_fu", task.follow_ups)]
            if when_idle:
                names.update({"#status": "status", "#taken": "follow_ups_taken"})
                values[":old_taken"] = to_attr(task.follow_ups_taken)
                condition.append(_counter_is("#taken", ":old_taken", task.follow_ups_taken))
                for index, status in enumerate(TERMINAL_STATUSES):
                    values[f":t{index}"] = to_attr(status.value)
                placeholders = ", ".join(f":t{i}" for i in range(len(TERMINAL_STATUSES)))
                condition.append(f"#status IN ({placeholders})")
            item = to_item({"pk": task_pk(task_id), "sk": follow_up_sk(record.follow_up),
                            **record.model_dump(mode="json")})
            if item_size(item) > INLINE_ITEM_BYTES:  # the API caps content well below this
                raise ValueError(f"follow-up of task '{task_id}' is too large to store")
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table_name, "Item": item,
                             "ConditionExpression": "attribute_not_exists(sk)"}},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": to_item({"pk": task_pk(task_id), "sk": META}),
                        "UpdateExpression": "SET #fu = :n, #updated = :now",
                        "ConditionExpression": "attribute_exists(pk) AND "
                                               + " AND ".join(condition),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }},
                ])
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
                continue  # another message or the run moved on: read again
            return task, record
        raise ConflictError(f"task '{task_id}' kept changing; the follow-up was not stored")

    def get_follow_up(self, task_id: str, number: int) -> FollowUpRecord | None:
        values = self._read(task_id, follow_up_sk(number))
        if values is None:
            return None
        return FollowUpRecord.model_validate(
            {key: values[key] for key in FollowUpRecord.model_fields if key in values}
        )

    def begin_next_run(self, task_id: str, attempts: int = 5) -> Task | None:
        """Take the oldest queued follow-up and make its run the task's current one (QUEUED,
        no execution yet), keeping the run that ended as its RUN# item: one transaction,
        conditional on the task still being at that run, ended, with that follow-up next.
        None when there is nothing to begin (a run is active, or nothing is queued)."""
        for _ in range(attempts):
            task = self.require_task(task_id)
            if not task.status.is_terminal or not task.queued_follow_ups:
                return None
            number, run = task.follow_ups_taken + 1, task.run + 1
            # The ended run made no turn and wrote its message at this turn: the next seq.
            seq = (task.run_message_seq + 1
                   if task.run_message_seq is not None and task.turn == task.run_first_turn
                   else FOLLOW_UP_SEQ)
            ended = TaskRun(
                run=task.run, follow_up=task.run_follow_up, status=task.status,
                execution_arn=task.execution_arn, first_turn=task.run_first_turn,
                last_turn=task.turn, usage=task.run_usage, answer=task.answer, error=task.error,
                started_at=task.started_at, ended_at=task.ended_at or task.updated_at,
            )
            changes: dict[str, Any] = {
                "run": run, "run_follow_up": number, "run_message_seq": seq,
                "follow_ups_taken": number,
                "status": TaskStatus.QUEUED.value, "run_first_turn": task.turn,
                "run_usage_start": task.usage.model_dump(mode="json"),
                "execution_arn": None, "answer": None, "error": None, "waiting": None,
                "waited_seconds": 0, "started_at": None, "ended_at": None,
                "updated_at": utc_now(),
            }
            names, values, assignments = self._update_parts(changes, None, None)
            names.update({"#run": "run", "#taken": "follow_ups_taken", "#status": "status"})
            values.update({":old_run": to_attr(task.run),
                           ":old_taken": to_attr(task.follow_ups_taken),
                           ":old_status": to_attr(task.status.value)})
            condition = " AND ".join([
                "attribute_exists(pk)", _counter_is("#run", ":old_run", task.run, default=1),
                _counter_is("#taken", ":old_taken", task.follow_ups_taken),
                "#status = :old_status",
            ])
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table_name,
                             "Item": self._body_item(task_id, run_sk(task.run),
                                                     ended.model_dump_json(),
                                                     what=f"run {task.run}"),
                             "ConditionExpression": "attribute_not_exists(sk)"}},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": to_item({"pk": task_pk(task_id), "sk": follow_up_sk(number)}),
                        "UpdateExpression": "SET #state = :started, #run = :run",
                        "ConditionExpression": "attribute_exists(sk) AND #state = :queued",
                        "ExpressionAttributeNames": {"#state": "state", "#run": "run"},
                        "ExpressionAttributeValues": {":started": to_attr("started"),
                                                      ":queued": to_attr("queued"),
                                                      ":run": to_attr(run)},
                    }},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": to_item({"pk": task_pk(task_id), "sk": META}),
                        "UpdateExpression": "SET " + ", ".join(assignments),
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }},
                ])
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
                continue  # another caller began it (or the task changed): read again
            return self.require_task(task_id)
        raise ConflictError(f"task '{task_id}' kept changing; its next run did not begin")

    def set_run_execution(self, task_id: str, run: int, execution_arn: str) -> bool:
        """Record the execution of run `run` (False: the task is on another run by now)."""
        names, values, assignments = self._update_parts(
            {"execution_arn": execution_arn, "started_at": utc_now(), "updated_at": utc_now()},
            None, None,
        )
        names["#run"] = "run"
        values[":run"] = to_attr(run)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_item({"pk": task_pk(task_id), "sk": META}),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression="attribute_exists(pk) AND "
                + _counter_is("#run", ":run", run, default=1),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def discard_follow_ups(self, task_id: str, through: int, attempts: int = 5) -> int:
        """Take follow-ups up to number `through` off the queue unrun (a cancel drops what
        was queued before it). Returns how many were discarded."""
        discarded = 0
        for _ in range(attempts * 10):
            task = self.require_task(task_id)
            last = min(through, task.follow_ups, task.follow_ups_taken + _DISCARD_BATCH)
            if last <= task.follow_ups_taken:
                return discarded
            numbers = range(task.follow_ups_taken + 1, last + 1)
            items: list[Any] = [{"Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": task_pk(task_id), "sk": META}),
                "UpdateExpression": "SET #taken = :last",
                "ConditionExpression": "attribute_exists(pk) AND "
                + _counter_is("#taken", ":old", task.follow_ups_taken),
                "ExpressionAttributeNames": {"#taken": "follow_ups_taken"},
                "ExpressionAttributeValues": {":last": to_attr(last),
                                              ":old": to_attr(task.follow_ups_taken)},
            }}]
            items.extend({"Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": task_pk(task_id), "sk": follow_up_sk(number)}),
                "UpdateExpression": "SET #state = :discarded",
                "ConditionExpression": "attribute_exists(sk)",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":discarded": to_attr("discarded")},
            }} for number in numbers)
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
                continue
            discarded += len(numbers)
        raise ConflictError(f"task '{task_id}' kept changing; its follow-ups were not discarded")

    def list_runs(self, task: Task) -> list[TaskRun]:
        """The task's runs in order: those that ended before the current one, then it."""
        runs = [TaskRun.model_validate_json(self._body(values))
                for values in self._query(task.task_id, "RUN#", "body, body_ref")]
        current = TaskRun(
            run=task.run, follow_up=task.run_follow_up, status=task.status,
            execution_arn=task.execution_arn, first_turn=task.run_first_turn,
            last_turn=task.turn, usage=task.run_usage, answer=task.answer, error=task.error,
            started_at=task.started_at,
            ended_at=(task.ended_at or task.updated_at) if task.status.is_terminal else None,
        )
        return [*runs, current]

    # --- helpers

    def _message_item(self, task_id: str, turn: int, seq: int, message: Message) -> Item:
        """The message's item, within INLINE_ITEM_BYTES: the larger of its content and its
        tool calls goes to S3 first, then the other if the item is still too large."""
        sk = message_sk(turn, seq)
        tool_calls_ref: str | None = None

        def item() -> Item:
            return to_item(
                {
                    "pk": task_pk(task_id),
                    "sk": sk,
                    "turn": turn,
                    "seq": seq,
                    "role": message.role,
                    "body": message.model_dump_json(exclude_defaults=True),
                    "tool_calls_ref": tool_calls_ref,
                    "created_at": utc_now(),
                }
            )

        built = item()
        if item_size(built) <= INLINE_ITEM_BYTES:
            return built
        content = json.dumps(message.content or "", ensure_ascii=False).encode()
        calls = self._tool_calls_json(message.tool_calls)
        parts = ["content", "tool_calls"]
        if len(calls) > len(content):
            parts.reverse()
        for part in parts:
            if part == "content" and message.content and not message.content_ref:
                message = self._claim_check_content(task_id, sk, message)
            elif part == "tool_calls" and message.tool_calls:
                tool_calls_ref = self.claim_checks.put(
                    blob_stem(task_id, sk) + "-tool-calls",
                    calls,
                    content_type="application/json",
                    what=f"the tool calls of message {sk}",
                )
                message = message.model_copy(update={"tool_calls": []})
            built = item()
            if item_size(built) <= INLINE_ITEM_BYTES:
                return built
        raise ValueError(
            f"message {sk} of task '{task_id}' is {item_size(built)} bytes even with its "
            f"content and tool calls in S3 (the limit is {INLINE_ITEM_BYTES})"
        )

    @staticmethod
    def _tool_calls_json(calls: list[ToolCall]) -> bytes:
        return json.dumps([call.model_dump(mode="json") for call in calls]).encode()

    def _message(self, values: Mapping[str, Any]) -> Message:
        """A stored message, its tool calls fetched back from S3 when they were moved there."""
        message = Message.model_validate_json(values["body"])
        ref = values.get("tool_calls_ref")
        if ref:
            calls = json.loads(self.claim_checks.get(ref))
            message = message.model_copy(
                update={"tool_calls": [ToolCall.model_validate(call) for call in calls]}
            )
        return message

    def _claim_check_content(self, task_id: str, sk: str, message: Message) -> Message:
        """The content → S3; the message keeps a preview and the reference."""
        data = (message.content or "").encode()
        ref = self.claim_checks.put(
            blob_stem(task_id, sk),
            data,
            content_type="text/plain; charset=utf-8",
            what=f"the content of message {sk}",
        )
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
        return self.claim_checks.get(message.content_ref).decode()

    def _body_item(self, task_id: str, sk: str, body: str, *, what: str) -> Item:
        """An item holding `body` (JSON): inline, or in S3 as `body_ref` when the item would
        pass INLINE_ITEM_BYTES."""
        item = to_item({"pk": task_pk(task_id), "sk": sk, "body": body})
        if item_size(item) <= INLINE_ITEM_BYTES:
            return item
        ref = self.claim_checks.put(
            blob_stem(task_id, sk), body.encode(), content_type="application/json", what=what
        )
        return to_item({"pk": task_pk(task_id), "sk": sk, "body_ref": ref})

    def _body(self, values: Mapping[str, Any]) -> str:
        if "body" in values:
            return str(values["body"])
        return self.claim_checks.get(values["body_ref"]).decode()

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


#: Follow-ups discarded per transaction (DynamoDB allows 100 items in one).
_DISCARD_BATCH = 50


def _counter_is(name: str, placeholder: str, value: int, *, default: int = 0) -> str:
    """`name = value`, where a record written before the attribute existed holds `default`."""
    if value == default:
        return f"(attribute_not_exists({name}) OR {name} = {placeholder})"
    return f"{name} = {placeholder}"


def _busy_reason(task: Task) -> str:
    if not task.status.is_terminal:
        return (f"task '{task.task_id}' is {task.status.value} (run {task.run}); send the "
                "follow-up when it has ended, or with on_busy 'enqueue' to queue it")
    return (f"task '{task.task_id}' has {task.queued_follow_ups} follow-up(s) queued; send "
            "with on_busy 'enqueue' to queue this one after them")
