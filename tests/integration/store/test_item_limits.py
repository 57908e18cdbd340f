"""DynamoDB's 400 KB item limit is the store's to keep: whatever would make an item larger
than INLINE_ITEM_BYTES (measured on the encoded item) goes to the claim-check bucket, and
everything written is read back intact. Each case checks the raw item moto holds too."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import (
    ApprovalStatus,
    Message,
    Task,
    TaskEvent,
    TaskStatus,
    ToolCall,
    ToolSpec,
    Usage,
)
from agentkit.models.scripted import ScriptedTurn
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalRecord, ApprovalStore
from agentkit.store.codec import INLINE_ITEM_BYTES, ITEM_LIMIT_BYTES, item_size, to_item
from agentkit.store.schedules import Schedule, ScheduleStore
from tests.conftest import TABLE
from tests.integration.store.conftest import BUCKET

KIB = 1024


def _raw(pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
    """The items as the table holds them (wire shape)."""
    items = boto3.client("dynamodb").query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )["Items"]
    return [item for item in items if item["sk"]["S"].startswith(sk_prefix)]


def _raw_message(task_id: str, turn: int, seq: int) -> dict[str, Any]:
    [item] = _raw(f"TASK#{task_id}", f"MSG#{turn:04d}#{seq:03d}")
    return item


def _objects() -> int:
    return int(boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0))


def _tool_message(content: str) -> Message:
    return Message(role="tool", content=content, tool_call_id="c1", name="dump")


def _fill_to(store: TaskStore, target: int, unit: str = "x") -> str:
    """Content whose message item (turn 1, seq 1..9) is exactly `target` bytes: measured on a
    probe, since every other attribute (keys, timestamp, JSON around the content) is fixed."""
    store.put_message("tsk_A", 1, 9, _tool_message(""))
    base = item_size(_raw_message("tsk_A", 1, 9))
    room = target - base
    width = len(unit.encode())
    return unit * (room // width) + "x" * (room % width)


def test_the_budget_is_half_of_dynamodbs_limit() -> None:
    assert ITEM_LIMIT_BYTES == 409_600
    assert INLINE_ITEM_BYTES == 204_800


@pytest.mark.parametrize("unit", ["x", "é", "€", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_a_message_exactly_at_the_budget_stays_inline_one_byte_more_moves(
    big_store: TaskStore, unit: str
) -> None:
    at_limit = _fill_to(big_store, INLINE_ITEM_BYTES, unit)
    assert big_store.put_message("tsk_A", 1, 1, _tool_message(at_limit))
    assert item_size(_raw_message("tsk_A", 1, 1)) == INLINE_ITEM_BYTES
    stored = big_store.get_message("tsk_A", 1, 1)
    assert stored is not None and stored.content == at_limit and stored.content_ref is None
    assert _objects() == 0

    over = at_limit + "x"
    assert big_store.put_message("tsk_A", 1, 2, _tool_message(over))
    assert item_size(_raw_message("tsk_A", 1, 2)) <= INLINE_ITEM_BYTES
    stored = big_store.get_message("tsk_A", 1, 2)
    assert stored is not None and stored.content_ref is not None
    assert stored.content_bytes == len(over.encode())
    assert big_store.load_content(stored) == over
    assert _objects() == 1


@pytest.mark.parametrize(
    "content",
    ['"' * (200 * KIB), "\\" * (200 * KIB), "\x01" * (200 * KIB), "\n\t\x00" * (60 * KIB)],
    ids=["quotes", "backslashes", "control-chars", "mixed-controls"],
)
def test_escape_heavy_content_under_200_kib_raw_is_measured_encoded_and_moved(
    big_store: TaskStore, content: str
) -> None:
    # Raw, each is at most 200 KiB (the old cut let them through); JSON-escaped in the body
    # they are 400 KiB to 1.2 MB, which DynamoDB refuses.
    assert len(content.encode()) <= 200 * KIB
    assert big_store.put_message("tsk_A", 1, 1, _tool_message(content))
    assert item_size(_raw_message("tsk_A", 1, 1)) <= INLINE_ITEM_BYTES
    [stored] = big_store.list_messages("tsk_A")
    assert stored.content_ref is not None
    assert big_store.load_content(stored) == content


def test_500_kb_of_tool_call_arguments_are_moved_and_read_back_whole(big_store: TaskStore) -> None:
    big_store.create_task(Task(task_id="tsk_A", goal="g", model="scripted", max_turns=3,
                               status=TaskStatus.RUNNING))
    arguments = {"path": "/tmp/out.txt", "data": "line \"quoted\" é\n" * 31_250}  # ~530 KB
    calls = [ToolCall(id="c1", name="write_file", arguments=arguments),
             ToolCall(id="c2", name="read_file", arguments={"path": "/tmp/out.txt"})]
    reply = Message(role="assistant", content="writing it", tool_calls=calls, model="m:x")
    big_store.commit_model_turn("tsk_A", 1, reply, Usage(model_calls=1))

    raw = _raw_message("tsk_A", 1, 0)
    assert item_size(raw) <= INLINE_ITEM_BYTES and "tool_calls_ref" in raw
    assert big_store.get_message("tsk_A", 1, 0) == reply
    assert big_store.list_messages("tsk_A", turn=1) == [reply]
    assert big_store.require_task("tsk_A").turn == 1


def test_large_content_and_large_arguments_both_move_when_both_must(big_store: TaskStore) -> None:
    reply = Message(role="assistant", content="é" * 150_000,
                    tool_calls=[ToolCall(id="c1", name="t", arguments={"a": "\x02" * 40_000})])
    assert big_store.put_message("tsk_A", 1, 0, reply)
    raw = _raw_message("tsk_A", 1, 0)
    assert item_size(raw) <= INLINE_ITEM_BYTES and "tool_calls_ref" in raw
    stored = big_store.get_message("tsk_A", 1, 0)
    assert stored is not None and stored.content_ref is not None
    assert stored.tool_calls == reply.tool_calls
    assert big_store.load_content(stored) == reply.content


def test_a_large_event_detail_is_moved_and_read_back_whole(big_store: TaskStore) -> None:
    small = TaskEvent(kind="status", name="RUNNING")
    large = TaskEvent(kind="tool_call", turn=1, name="dump", call_id="c1", error="\"" * 150_000,
                      detail={"stdout": "ünïcødé\x00" * 40_000, "n": 3})
    big_store.add_event("tsk_A", small)
    big_store.add_event("tsk_A", large)
    raws = _raw("TASK#tsk_A", "EVT#")
    assert all(item_size(raw) <= INLINE_ITEM_BYTES for raw in raws)
    assert sorted("body_ref" in raw for raw in raws) == [False, True]
    assert sorted(big_store.list_events("tsk_A"), key=lambda e: e.kind) == [small, large]


def test_a_large_tool_surface_is_moved_and_read_back_whole(big_store: TaskStore) -> None:
    specs = [ToolSpec(name=f"tool_{i}", description="d" * 2_000,
                      parameters={"type": "object", "properties": {"q": {"type": "string"}}})
             for i in range(150)]
    assert big_store.put_tool_specs("tsk_A", specs) == specs
    [raw] = _raw("TASK#tsk_A", "TOOLS")
    assert "body_ref" in raw and item_size(raw) <= INLINE_ITEM_BYTES
    assert big_store.get_tool_specs("tsk_A") == specs


def test_500_kb_of_approval_arguments_are_moved_and_read_back_whole(big_store: TaskStore) -> None:
    big_store.create_task(Task(task_id="tsk_A", goal="g", model="scripted", max_turns=3,
                               status=TaskStatus.RUNNING))
    approvals = ApprovalStore(big_store)
    record = ApprovalRecord(task_id="tsk_A", approval_id="apr_1", turn=1, call_id="c1",
                            tool="write_file", arguments={"data": "\"\n" * 250_000},
                            args_hash="ab" * 32, status=ApprovalStatus.PENDING,
                            created_at="2026-11-30T20:00:00.000Z", task_token="token")
    saved, created = approvals.request(record)
    assert created and saved == record
    [raw] = _raw("TASK#tsk_A", "APPROVAL#")
    assert "arguments_ref" in raw and item_size(raw) <= INLINE_ITEM_BYTES
    assert approvals.get("tsk_A", "apr_1") == record
    decided = approvals.decide("tsk_A", "apr_1", ApprovalStatus.APPROVED, reason="ok")
    assert decided.arguments == record.arguments and decided.status == ApprovalStatus.APPROVED


def test_a_long_script_is_stored_beside_the_task_in_s3_and_comes_back(
    big_store: TaskStore,
) -> None:
    turns = [ScriptedTurn(content="\"" * 5_000)] * 40  # 200,000 characters, 400 KB escaped
    task = Task(task_id="tsk_S", goal="g", model="scripted", max_turns=50)
    big_store.create_task(task, script=turns)
    [meta] = _raw("TASK#tsk_S", "META")
    assert not {"scripted_turns", "scripted_turns_ref"} & set(meta)  # not on the task record
    [raw] = _raw("TASK#tsk_S", "SCRIPT")
    assert "body_ref" in raw and item_size(raw) <= INLINE_ITEM_BYTES
    assert big_store.get_script("tsk_S") == turns
    assert big_store.require_task("tsk_S") == task
    [listed], _ = big_store.list_tasks("default")
    assert listed == task


def test_a_script_an_older_release_kept_on_the_task_record_is_still_played(
    big_store: TaskStore,
) -> None:
    """Before the SCRIPT item a task's script was on its META item: JSON text, or an S3
    reference when long. Such a task (in flight during an upgrade) keeps its script."""
    turns = [ScriptedTurn(content="\"" * 5_000)] * 40
    body = json.dumps([turn.model_dump(mode="json", exclude_none=True) for turn in turns])
    ref = big_store.claim_checks.put("tasks/tsk_L/SCRIPT", body.encode(),
                                     content_type="application/json", what="a script")
    for task_id, extra in [("tsk_L", {"scripted_turns_ref": ref}),
                           ("tsk_I", {"scripted_turns": body})]:
        task = Task(task_id=task_id, goal="g", model="scripted", max_turns=50)
        big_store.client.put_item(TableName=TABLE, Item=to_item(
            {"pk": f"TASK#{task_id}", "sk": "META", **task.model_dump(mode="json"), **extra}))
        assert big_store.get_script(task_id) == turns
        assert big_store.require_task(task_id) == task
    big_store.create_task(Task(task_id="tsk_N", goal="g", model="openai:gpt-4o", max_turns=3))
    assert big_store.get_script("tsk_N") == []


def test_a_schedule_with_a_long_script_is_moved_and_read_back_whole(big_store: TaskStore) -> None:
    request = SubmitTaskRequest(goal="g", model="scripted", max_turns=5,
                                scripted_turns=[ScriptedTurn(content="\"\\" * 25_000)] * 5)
    schedule = Schedule(schedule_id="sch_1", name="n", schedule_expression="rate(1 hour)",
                        task=request, created_at="2026-11-30T20:00:00.000Z")
    schedules = ScheduleStore(big_store)
    schedules.put("acme", schedule)
    [raw] = _raw("SCHEDULE#acme")
    assert "body_ref" in raw and item_size(raw) <= INLINE_ITEM_BYTES
    assert schedules.get("acme", "sch_1") == schedule
    assert schedules.list_schedules("acme") == [schedule]


def test_without_a_bucket_an_oversized_item_is_refused_naming_what(store: TaskStore) -> None:
    with pytest.raises(ValueError, match=r"tool calls of message MSG#0001#000.*no ARTIFACTS_"):
        store.put_message("tsk_A", 1, 0, Message(role="assistant", tool_calls=[
            ToolCall(id="c1", name="t", arguments={"a": "x" * 300_000})]))
    with pytest.raises(ValueError, match=r"event tool_call dump.*no ARTIFACTS_BUCKET"):
        store.add_event("tsk_A", TaskEvent(kind="tool_call", name="dump", error="x" * 300_000))
    assert _raw("TASK#tsk_A") == []


def test_json_in_s3_is_the_body_as_written(big_store: TaskStore) -> None:
    event = TaskEvent(kind="wait", name="p", detail={"x": "y" * 300_000})
    big_store.add_event("tsk_A", event)
    [raw] = _raw("TASK#tsk_A", "EVT#")
    bucket, _, key = raw["body_ref"]["S"].removeprefix("s3://").partition("/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert TaskEvent.model_validate(json.loads(body)) == event
