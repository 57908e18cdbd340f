"""The shared circuit breaker: transitions agreed by instances through the table, fed by
outages only, and a half-open breaker lets exactly ONE call through."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    OverloadedError,
    ProviderOutageError,
    ProviderWaitError,
    RateLimitedError,
)
from agentkit.llm.breaker import BreakerPolicy, SharedCircuitBreaker
from agentkit.llm.router import ModelRouter
from agentkit.models.domain import Message, Usage
from agentkit.store.provider_state import ProviderStateStore
from tests.support.clock import Clock

POLICY = BreakerPolicy(failure_threshold=3, window_s=60, cooldown_s=30)
REQUEST = LLMRequest(model="placeholder", messages=[Message(role="user", content="hi")])


class Client(BaseLLMClient):
    provider = "openai"

    def __init__(self, errors: Sequence[Exception]) -> None:
        self.errors = list(errors)
        self.calls = 0

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return LLMResponse(message=Message(role="assistant", content="ok"), finish_reason="stop",
                           usage=Usage(input_tokens=1, output_tokens=1, model_calls=1))


def _pair(
    provider_state: ProviderStateStore,
) -> tuple[SharedCircuitBreaker, SharedCircuitBreaker, Clock]:
    """Two breakers over one table: two Lambda instances."""
    clock = Clock()
    return (SharedCircuitBreaker(provider_state, POLICY, clock),
            SharedCircuitBreaker(provider_state, POLICY, clock), clock)


def _open(breaker: SharedCircuitBreaker, provider: str = "openai") -> None:
    for _ in range(POLICY.failure_threshold):
        breaker.record_outage(provider)


def _router(provider_state: ProviderStateStore, clock: Clock) -> ModelRouter:
    return ModelRouter(state=provider_state, breaker_policy=POLICY, sleep=clock.sleep, clock=clock,
                       jitter=lambda cap: cap)


def _route(router: ModelRouter, client: Client) -> str:
    return router.complete(["openai:gpt-4o"], REQUEST, client_for=lambda _: client,
                           time_budget_s=60).model


def test_opens_after_threshold_outages_across_instances(provider_state: ProviderStateStore) -> None:
    first, second, clock = _pair(provider_state)
    assert first.admit("openai").allowed
    assert first.record_outage("openai") is None
    assert second.record_outage("openai") is None
    assert first.admit("openai").allowed and second.admit("openai").allowed
    assert second.record_outage("openai") == clock.now + POLICY.cooldown_s
    refused = first.admit("openai")
    assert not refused.allowed and refused.retry_at == clock.now + POLICY.cooldown_s
    assert not second.admit("openai").allowed
    assert first.state("openai")["state"] == "open"
    assert first.admit("anthropic").allowed  # other providers are unaffected


def test_outages_outside_the_window_do_not_add_up(provider_state: ProviderStateStore) -> None:
    breaker, _, clock = _pair(provider_state)
    breaker.record_outage("google")
    breaker.record_outage("google")
    clock.now += 61
    breaker.record_outage("google")
    assert breaker.admit("google").allowed
    assert breaker.state("google")["failures"] == 1


def test_half_open_lets_exactly_one_probe_through(provider_state: ProviderStateStore) -> None:
    first, second, clock = _pair(provider_state)
    _open(first)
    clock.now += 31
    seen_first, seen_second = first.state("openai"), second.state("openai")
    assert first.admit("openai", seen_first).probe and second.admit("openai", seen_second).probe
    assert first.claim_probe("openai", seen_first)  # this instance wins the probe
    assert not second.claim_probe("openai", seen_second)
    assert not second.admit("openai").allowed
    assert first.state("openai")["state"] == "half_open"


def test_probe_success_closes_and_probe_failure_reopens(provider_state: ProviderStateStore) -> None:
    first, second, clock = _pair(provider_state)
    _open(first)
    clock.now += 31
    assert first.claim_probe("openai", first.state("openai"))
    assert first.record_outage("openai") == clock.now + POLICY.cooldown_s
    assert first.state("openai")["state"] == "open"
    assert not second.admit("openai").allowed
    clock.now += 31
    assert second.claim_probe("openai", second.state("openai"))
    second.record_success("openai")
    assert first.state("openai")["state"] == "closed"
    assert first.admit("openai").allowed and first.state("openai")["failures"] == 0


def test_a_probe_that_never_reports_back_is_retaken_after_cooldown(
    provider_state: ProviderStateStore,
) -> None:
    first, second, clock = _pair(provider_state)
    _open(first)
    clock.now += 31
    assert first.claim_probe("openai", first.state("openai"))  # ...and this instance dies
    assert not second.admit("openai").allowed
    clock.now += 31
    assert second.claim_probe("openai", second.state("openai"))
    assert not first.admit("openai").allowed


# --- through the router


def test_only_outages_feed_the_breaker(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    router = _router(provider_state, clock)
    busy = [OverloadedError("529", status_code=529)] * 10
    for _ in range(5):
        with pytest.raises(ProviderWaitError) as caught:
            _route(router, Client(busy))
        assert caught.value.reason == "overloaded"
    client = Client([RateLimitedError("429", status_code=429, retry_after_s=1)])
    with pytest.raises(ProviderWaitError):
        _route(router, client)
    assert provider_state.breaker("openai") == {}  # ten overloads and a 429 counted nothing
    clock.now += 2  # past the hold
    down = [ProviderOutageError("502", status_code=502)] * 10
    with pytest.raises(ProviderWaitError):
        _route(router, Client(down))  # two outages (the call and its one retry)
    with pytest.raises(ProviderWaitError) as caught:
        _route(router, Client(down))  # the third opens it: no retry after that
    assert caught.value.reason == "breaker_open"
    assert caught.value.wait_seconds == POLICY.cooldown_s
    assert provider_state.breaker("openai")["state"] == "open"
    skipped = Client([])
    with pytest.raises(ProviderWaitError):
        _route(router, skipped)
    assert skipped.calls == 0


def test_a_half_open_probe_is_one_call_without_retries(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    _open(SharedCircuitBreaker(provider_state, POLICY, clock))
    clock.now += 31
    client = Client([ProviderOutageError("timeout")] * 3)
    with pytest.raises(ProviderWaitError) as caught:
        _route(_router(provider_state, clock), client)
    assert client.calls == 1  # the probe: no retry inside it
    assert caught.value.reason == "breaker_open"
    assert provider_state.breaker("openai")["state"] == "open"


def test_a_probe_that_answers_closes_the_breaker(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    _open(SharedCircuitBreaker(provider_state, POLICY, clock))
    clock.now += 31
    client = Client([])
    assert _route(_router(provider_state, clock), client) == "openai:gpt-4o"
    assert client.calls == 1 and provider_state.breaker("openai")["state"] == "closed"


def test_while_a_probe_is_in_flight_other_instances_do_not_call(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock()
    breaker = SharedCircuitBreaker(provider_state, POLICY, clock)
    _open(breaker)
    clock.now += 31
    assert breaker.claim_probe("openai", breaker.state("openai"))  # another instance probes
    client = Client([])
    with pytest.raises(ProviderWaitError) as caught:
        _route(_router(provider_state, clock), client)
    assert client.calls == 0 and caught.value.reason == "breaker_open"
