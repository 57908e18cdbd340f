"""Nothing stored is lost: items as an earlier release wrote them (tests/fixtures/store, see
its README) load into a fresh table and read back through today's repositories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from agentkit.api.api_keys import authorize
from agentkit.api.schedules import get_schedule
from agentkit.llm.breaker import SharedCircuitBreaker
from agentkit.models.domain import ApprovalStatus, TaskStatus, ToolCall
from agentkit.store import TaskStore
from agentkit.store.api_keys import ApiKeyStore
from agentkit.store.approvals import ApprovalStore
from agentkit.store.provider_state import ProviderStateStore
from agentkit.store.schedules import ScheduleStore
from agentkit.store.tenant_slots import QueuedTask, TenantSlots
from tests.conftest import TABLE

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "store"
KINDS = ["tasks", "messages", "events", "approvals", "schedules", "api_keys",
         "provider_state", "tenant_slots"]
ARN = "arn:aws:execute-api:us-east-1:123456789012:api1/prod/GET/tasks"


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def old(aws: None) -> TaskStore:
    """The table and bucket holding every fixture item, and a store reading them."""
    client = boto3.client("dynamodb")
    for kind in KINDS:
        for item in _fixture(kind)["items"]:
            client.put_item(TableName=TABLE, Item=item)
    objects = _fixture("s3_objects")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=objects["bucket"])
    for ref, body in objects["objects"].items():
        key = ref.removeprefix(f"s3://{objects['bucket']}/")
        s3.put_object(Bucket=objects["bucket"], Key=key, Body=body.encode())
    return TaskStore(TABLE, artifacts_bucket=objects["bucket"])


def test_every_kind_of_item_is_in_the_fixtures() -> None:
    for kind in KINDS:
        assert _fixture(kind)["items"], kind


def test_tasks_read_back(old: TaskStore) -> None:
    done = old.require_task("tsk_fixture1")
    assert (done.status, done.answer, done.turn) == (TaskStatus.SUCCEEDED, "The logs are fine.", 1)
    assert done.fallback_models == ["anthropic:claude-sonnet-4"] and done.tools == ["http_get"]
    assert (done.max_tokens, done.max_cost_usd, done.max_wait_seconds) == (50_000, 0.5, 600)
    assert done.usage.input_tokens == 1210 and done.usage.model_calls == 2
    assert done.execution_arn and done.execution_arn.endswith(":tsk_fixture1")
    scripted = old.require_task("tsk_fixture2")
    # that release kept the script on the task record; it is read from there still
    script = old.get_script("tsk_fixture2")
    assert script[0].content == "hello" and script[1].tool_calls[0].arguments == {"text": "hi"}
    assert scripted.waiting is not None and scripted.waiting.reason == "rate_limited"
    assert scripted.waited_seconds == 30
    tasks, cursor = old.list_tasks("acme")
    assert sorted(t.task_id for t in tasks) == ["tsk_fixture1", "tsk_fixture2", "tsk_fixture3"]
    assert cursor is None
    [spec] = old.get_tool_specs("tsk_fixture1") or []
    assert spec.name == "http_get" and spec.parameters["required"] == ["url"]


def test_messages_read_back_including_a_claim_checked_one(old: TaskStore) -> None:
    messages = old.list_messages("tsk_fixture1")
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[1].content == 'Summarise the logs ünïcødé "quoted"\n'
    assert messages[2].tool_calls == [
        ToolCall(id="call_1", name="http_get", arguments={"url": "https://example.com/logs",
                                                          "n": 3}),
        ToolCall(id="call_2", name="http_get", arguments={"url": "https://example.com/b"}),
    ]
    assert messages[2].model == "openai:gpt-4o-mini"
    big = messages[4]
    original = "".join(f"log line {i:06d} ✓\n" for i in range(12_000))
    assert big.content_ref and big.content_bytes == len(original.encode())
    assert old.load_content(big) == original
    assert old.get_message("tsk_fixture1", 1, 2) == big
    assert old.list_messages("tsk_fixture1", turn=0) == messages[:2]


def test_events_read_back(old: TaskStore) -> None:
    events = {event.kind: event for event in old.list_events("tsk_fixture1")}
    assert set(events) == {"model_call", "tool_call", "wait", "status"}
    usage = events["model_call"].usage
    assert usage is not None and usage.cost_usd == 0.000228
    assert events["wait"].detail == {"reason": "rate_limit", "wait_seconds": 12.5,
                                     "until": 1795000000.25, "waited_seconds": 12.5}
    assert events["tool_call"].call_id == "call_1"


def test_approvals_read_back_and_can_still_be_decided(old: TaskStore) -> None:
    approvals = ApprovalStore(old)
    pending, denied = approvals.list("tsk_fixture3")
    assert pending.status == ApprovalStatus.PENDING and pending.task_token
    assert pending.arguments == {"cmd": "rm -rf /tmp/x", "force": True}
    assert (denied.status, denied.reason) == (ApprovalStatus.DENIED, "not now")
    assert not approvals.resume_task("tsk_fixture3")  # one still pending
    approvals.decide("tsk_fixture3", "apr_pending", ApprovalStatus.APPROVED)
    assert approvals.resume_task("tsk_fixture3")


def test_schedules_read_back(old: TaskStore) -> None:
    [schedule] = ScheduleStore(old).list_schedules("acme")
    assert (schedule.name, schedule.timezone) == ("nightly report", "Europe/Paris")
    assert schedule.task.goal == "Write the nightly report" and schedule.task.max_turns == 4
    assert get_schedule(schedule.schedule_id, tenant_id="acme", store=old) == schedule


def test_api_keys_read_back(old: TaskStore) -> None:
    secrets = _fixture("api_keys_secrets")
    keys = ApiKeyStore(TABLE)
    live = keys.lookup(secrets["live"])
    assert live is not None and live.tenant_id == "acme" and not live.revoked
    assert live.description == "ci key"
    revoked = keys.lookup(secrets["revoked"])
    assert revoked is not None and revoked.revoked and revoked.revoked_at
    assert authorize({"Authorization": f"Bearer {secrets['live']}"}, ARN, keys=keys).allowed
    assert not authorize({"x-api-key": secrets["revoked"]}, ARN, keys=keys).allowed
    assert sorted(r.key_id for r in keys.list_keys("acme")) == sorted([live.key_id,
                                                                       revoked.key_id])
    assert keys.revoke(live.key_id).revoked


def test_provider_state_reads_back(old: TaskStore) -> None:
    state = ProviderStateStore(old.client, TABLE)
    held = state.snapshot("anthropic")
    assert (held.hold_until, held.hold_reason) == (1795000300.5, "overloaded")
    breaker = SharedCircuitBreaker(state, clock=lambda: 1795000010.0)
    assert not breaker.admit("openai").allowed  # open until 1795000030
    assert breaker.admit("google").allowed
    assert state.breaker("google")["failures"] == 1
    window = state.window("openai")
    assert (window["requests"], window["tokens"]) == (1, 1500)


def test_tenant_slots_read_back(old: TaskStore) -> None:
    slots = TenantSlots(old)
    assert slots.running("acme") == 1
    assert slots.queued("acme") == [QueuedTask("tsk_q2", "2026-11-30T20:00:05.000Z")]
    holder = slots.holder("tsk_q1")
    assert holder is not None and holder.tenant_id == "acme" and not holder.released
