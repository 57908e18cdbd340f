"""EMF metrics: what a model call, an ended task, an open breaker and a provider wait write
to the log (one JSON line each, captured from stdout), and the router writing them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentkit.llm import LLMRequest, LLMResponse
from agentkit.llm.base import BaseLLMClient, ProviderOutageError, ProviderWaitError
from agentkit.llm.router import ModelRouter
from agentkit.models.domain import Message, Task, Usage
from agentkit.observability import metrics
from agentkit.store.provider_state import ProviderStateStore
from tests.support.clock import Clock

pytestmark = pytest.mark.usefixtures("aws_env")  # namespace OpspawnTest, service opspawn-test

REQUEST = LLMRequest(model="placeholder", messages=[Message(role="user", content="hi")])


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def _definition(line: dict[str, Any]) -> dict[str, Any]:
    (definition,) = line["_aws"]["CloudWatchMetrics"]
    return dict(definition)


def test_a_model_call_is_one_line_tenant_a_property_not_a_dimension(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics.model_call(provider="openai", model="gpt-4o-mini", tenant_id="acme",
                       latency_ms=123.45, input_tokens=10, output_tokens=5, cost_usd=0.002,
                       finish_reason="stop", task_id="t-1")
    (line,) = _lines(capsys)
    definition = _definition(line)
    assert definition["Namespace"] == "OpspawnTest"
    assert definition["Dimensions"] == [["provider", "model", "service"],
                                        ["service", "provider"], ["service"]]
    assert {m["Name"]: m["Unit"] for m in definition["Metrics"]} == {
        "ModelCalls": "Count", "ModelLatency": "Milliseconds", "InputTokens": "Count",
        "OutputTokens": "Count", "ModelCostUSD": "None"}
    assert (line["ModelCalls"], line["InputTokens"], line["OutputTokens"]) == ([1.0], [10.0], [5.0])
    assert line["ModelCostUSD"] == [0.002] and line["ModelLatency"] == [123.5]
    assert (line["provider"], line["model"]) == ("openai", "gpt-4o-mini")
    # properties: searchable in Logs Insights, never a dimension (one metric per tenant)
    assert (line["tenant_id"], line["task_id"], line["finish_reason"]) == ("acme", "t-1", "stop")
    assert all("tenant_id" not in dims for dims in definition["Dimensions"])


def test_a_failed_model_call_counts_an_error_and_no_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics.model_call(provider="anthropic", model="claude", tenant_id="acme",
                       latency_ms=5, error_type="ProviderOutageError")
    (line,) = _lines(capsys)
    names = {m["Name"] for m in _definition(line)["Metrics"]}
    assert names == {"ModelCalls", "ModelLatency", "ModelErrors"}
    assert line["error_type"] == "ProviderOutageError" and "finish_reason" not in line


def test_an_ended_task_has_its_duration_turns_cost_and_outcome(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    task = Task(task_id="t-2", tenant_id="acme", goal="g", model="scripted", max_turns=5,
                turn=3, usage=Usage(cost_usd=0.25),
                created_at=(now - timedelta(seconds=30)).isoformat())
    metrics.task_end(task, "succeeded", now=now)
    (line,) = _lines(capsys)
    assert _definition(line)["Dimensions"] == [["outcome", "service"], ["service"]]
    assert line["outcome"] == "succeeded"
    assert (line["TasksEnded"], line["TaskDuration"], line["TaskTurns"], line["TaskCostUSD"]) == (
        [1.0], [30.0], [3.0], [0.25])
    assert (line["tenant_id"], line["task_id"]) == ("acme", "t-2")


def test_a_provider_wait_carries_the_tasks_total_wait(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.provider_wait(provider="openai", reason="rate_limited", seconds=30,
                          waited_seconds=930, tenant_id="acme", task_id="t-3")
    (line,) = _lines(capsys)
    assert _definition(line)["Dimensions"] == [["provider", "service"], ["service"]]
    assert (line["ProviderWaitSeconds"], line["TaskWaitedSeconds"]) == ([30.0], [930.0])


def test_no_namespace_drops_the_metric_without_failing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    metrics.breaker_open(provider="openai", tenant_id="acme", why="opened")
    assert _lines(capsys) == []
    assert "not written" in caplog.text


class _Client(BaseLLMClient):
    def __init__(self, provider: str, errors: Sequence[Exception] = ()) -> None:
        self.provider = provider
        self.errors = list(errors)

    def complete(self, request: LLMRequest) -> LLMResponse:
        if self.errors:
            raise self.errors.pop(0)
        return LLMResponse(message=Message(role="assistant", content="ok"), finish_reason="stop",
                           usage=Usage(input_tokens=1000, output_tokens=100, model_calls=1))


def test_the_router_writes_each_call_an_error_and_the_breaker_opening(
    capsys: pytest.CaptureFixture[str], provider_state: ProviderStateStore,
) -> None:
    clock = Clock(60.0 * 28_333_334 + 10)
    router = ModelRouter(state=provider_state, sleep=clock.sleep, clock=clock,
                         jitter=lambda cap: cap / 2)
    ok = _Client("openai")
    router.complete(["openai:gpt-4o-mini"], REQUEST, client_for=lambda m: ok,
                    time_budget_s=60, tenant="acme")
    (line,) = _lines(capsys)
    assert (line["provider"], line["model"], line["tenant_id"]) == ("openai", "gpt-4o-mini", "acme")
    assert line["InputTokens"] == [1000.0] and line["ModelCostUSD"][0] > 0

    down = _Client("anthropic", [ProviderOutageError("503")] * 20)
    for _ in range(6):
        with pytest.raises(ProviderWaitError):
            router.complete(["anthropic:claude-3-5-haiku"], REQUEST,
                            client_for=lambda m: down, time_budget_s=60, tenant="acme")
        clock.advance(1)
    lines = _lines(capsys)
    errors = [x for x in lines if "ModelErrors" in x]
    assert errors and all(x["error_type"] == "ProviderOutageError" for x in errors)
    breaker = [x for x in lines if "ProviderBreakerOpen" in x]
    assert breaker and breaker[0]["why"] == "opened" and breaker[0]["provider"] == "anthropic"
