"""The DynamoDB circuit breaker's transitions, shared by instances through the table."""

from __future__ import annotations

from typing import Any

from agentkit.llm.breaker import BreakerPolicy, DynamoCircuitBreaker
from agentkit.store import TaskStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _pair(store: TaskStore) -> tuple[DynamoCircuitBreaker, DynamoCircuitBreaker, Clock]:
    """Two breakers over one table: two Lambda instances."""
    clock = Clock()
    policy = BreakerPolicy(failure_threshold=3, window_s=60, cooldown_s=30)
    make: Any = lambda: DynamoCircuitBreaker(store.client, store.table_name, policy, clock)  # noqa: E731
    return make(), make(), clock


def test_opens_after_threshold_failures_across_instances(store: TaskStore) -> None:
    first, second, _ = _pair(store)
    assert first.allow("openai")
    first.record_failure("openai")
    second.record_failure("openai")
    assert first.allow("openai") and second.allow("openai")
    second.record_failure("openai")
    assert not first.allow("openai") and not second.allow("openai")
    assert first.state("openai")["state"] == "open"
    assert first.allow("anthropic")  # other providers are unaffected


def test_failures_outside_the_window_do_not_add_up(store: TaskStore) -> None:
    breaker, _, clock = _pair(store)
    breaker.record_failure("google")
    breaker.record_failure("google")
    clock.now += 61
    breaker.record_failure("google")
    assert breaker.allow("google")
    assert breaker.state("google")["failures"] == 1


def test_half_open_lets_exactly_one_probe_through(store: TaskStore) -> None:
    first, second, clock = _pair(store)
    for _ in range(3):
        first.record_failure("openai")
    clock.now += 31
    assert first.allow("openai")  # this instance wins the probe
    assert not second.allow("openai")
    assert first.state("openai")["state"] == "half_open"


def test_probe_success_closes_and_probe_failure_reopens(store: TaskStore) -> None:
    first, second, clock = _pair(store)
    for _ in range(3):
        first.record_failure("openai")
    clock.now += 31
    assert first.allow("openai")
    first.record_failure("openai")
    assert first.state("openai")["state"] == "open"
    assert not second.allow("openai")
    clock.now += 31
    assert second.allow("openai")
    second.record_success("openai")
    assert first.state("openai")["state"] == "closed"
    assert first.allow("openai") and first.state("openai")["failures"] == 0


def test_a_probe_that_never_reports_back_is_retaken_after_cooldown(store: TaskStore) -> None:
    first, second, clock = _pair(store)
    for _ in range(3):
        first.record_failure("openai")
    clock.now += 31
    assert first.allow("openai")  # ...and this instance dies without reporting
    clock.now += 31
    assert second.allow("openai")
    assert not first.allow("openai")
