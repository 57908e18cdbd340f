"""Schedules and budgets end to end on the offline stack, through the API Gateway URL.

LocalStack 4.8.1 stores EventBridge Scheduler schedules but does not fire them, so the
schedule test delivers the schedule's own stored target input to its target function,
exactly what Scheduler would send, and follows the task it creates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agentkit.models import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.e2e.conftest import E2E_TENANT
from tests.fake_providers import FakeProviders, Reply

TIMEOUT_S = 120
LOOP = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}],
        "usage": {"input_tokens": 100, "output_tokens": 20}}


@pytest.fixture(scope="module")
def api(offline_stack: StackOutputs) -> Iterator[OpspawnClient]:
    assert offline_stack.api_url
    with OpspawnClient(offline_stack.api_url) as client:
        yield client


def test_a_fired_schedule_creates_a_normal_task_of_its_tenant(
    api: OpspawnClient, offline_stack: StackOutputs
) -> None:
    template = {"goal": "Scheduled: what is 2 ** 5?", "model": "scripted",
                "scripted_turns": [{"content": "32"}]}
    schedule = api.create_schedule("e2e hourly", "rate(1 hour)", template)
    try:
        remote = offline_stack.client("scheduler").get_schedule(
            Name=f"opspawn-{schedule.schedule_id}")
        target = remote["Target"]
        assert target["Arn"].endswith(offline_stack.physical_id("ScheduledTaskFunction"))
        fired = offline_stack.client("lambda").invoke(
            FunctionName=target["Arn"], Payload=target["Input"].encode())
        result = json.loads(fired["Payload"].read())
        assert "task_id" in result, result
        view = api.wait(result["task_id"], timeout_s=TIMEOUT_S, poll_s=0.3)
        assert view.status == TaskStatus.SUCCEEDED and view.answer == "32"
        assert view.goal == template["goal"]
        assert json.loads(target["Input"])["tenant_id"] == E2E_TENANT
    finally:
        api.delete_schedule(schedule.schedule_id)
    assert schedule.schedule_id not in [s.schedule_id for s in api.list_schedules()]


def test_max_turns_budget(api: OpspawnClient) -> None:
    task = api.submit({"goal": "loop", "model": "scripted", "scripted_turns": [LOOP] * 5,
                       "max_turns": 2})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.BUDGET_EXCEEDED and view.turn == 2
    assert view.error == "max_turns (2) reached before a final answer"


def test_max_tokens_budget_keeps_the_partial_result(api: OpspawnClient) -> None:
    task = api.submit({"goal": "loop", "model": "scripted", "scripted_turns": [LOOP] * 5,
                       "max_tokens": 200})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.BUDGET_EXCEEDED
    assert view.usage.total_tokens == 240 and view.turn == 2
    assert view.error == "max_tokens (200) reached: 240 tokens spent before a final answer"
    assert [m.role for m in view.messages].count("tool") == 2  # the partial conversation


def test_max_cost_budget_on_a_priced_model(api: OpspawnClient,
                                           fake_providers: FakeProviders) -> None:
    # openai:gpt-4o-mini at 0.15 / 0.60 USD per M tokens: each turn below costs 0.21 USD.
    turn = Reply(tool_calls=[("calculator", {"expression": "1 + 1"})],
                 input_tokens=1_000_000, output_tokens=100_000)
    fake_providers.script("openai", turn, turn)  # the third call never happens
    task = api.submit({"goal": "spend", "model": "openai:gpt-4o-mini", "max_cost_usd": 0.4})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.BUDGET_EXCEEDED, view.error
    assert view.usage.cost_usd == pytest.approx(0.42) and view.turn == 2
    assert view.error == "max_cost_usd (0.4) reached: $0.420000 spent before a final answer"
