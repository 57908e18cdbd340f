"""Pacing after a 429: the provider's rate, learned from its headers, spaces every caller's
calls so that no request after the first 429 goes above the provider's limit, and tenants
share the paced rate by weight. Played on moto with a clock that only moves when told and
a provider that enforces a sliding-window limit and answers as the real APIs do."""

from __future__ import annotations

import heapq
from collections import Counter, deque

import pytest

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ProviderWaitError,
    RateLimitedError,
)
from agentkit.llm.router import ModelRouter, RouterPolicy
from agentkit.llm.wire import error_for_status
from agentkit.models.domain import Message, Usage
from agentkit.store.provider_state import PaceDenied, PaceGrant, ProviderStateStore
from tests.support.clock import Clock

REQUEST = LLMRequest(model="placeholder", messages=[Message(role="user", content="hi")])
MODEL = "openai:gpt-4o-mini"


class SlidingWindowProvider(BaseLLMClient):
    """At most `limit` requests in any `window_s`; above it a 429 as OpenAI sends it:
    Retry-After (until one fits) and x-ratelimit-* headers (the limit per minute, and the
    reset when it is wholly replenished)."""

    provider = "openai"

    def __init__(self, clock: Clock, limit: int, window_s: float) -> None:
        self.clock, self.limit, self.window_s = clock, limit, window_s
        self.admitted: deque[float] = deque()
        self.log: list[tuple[float, bool]] = []  # (at, above the limit)

    def complete(self, request: LLMRequest) -> LLMResponse:
        now = self.clock()
        while self.admitted and self.admitted[0] <= now - self.window_s:
            self.admitted.popleft()
        if len(self.admitted) >= self.limit:
            self.log.append((now, True))
            replenished = self.admitted[-1] + self.window_s - now
            headers = {
                "retry-after": str(self.admitted[0] + self.window_s - now),
                "x-ratelimit-limit-requests": str(round(self.limit * 60 / self.window_s)),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{replenished:.3f}s",
            }
            error = error_for_status("Rate limit reached", 429, headers)
            assert isinstance(error, RateLimitedError)
            raise error
        self.admitted.append(now)
        self.log.append((now, False))
        return LLMResponse(message=Message(role="assistant", content="ok"), finish_reason="stop",
                           usage=Usage(input_tokens=1, output_tokens=1, model_calls=1))


def _router(provider_state: ProviderStateStore, clock: Clock, **weights: float) -> ModelRouter:
    return ModelRouter(state=provider_state, sleep=clock.sleep, clock=clock, jitter=lambda cap: cap,
                       policy=RouterPolicy(pace_margin=0.1),
                       tenant_weight=lambda tenant: weights.get(tenant, 1.0))


def _run(router: ModelRouter, provider: BaseLLMClient, clock: Clock,
         tasks: list[str]) -> dict[str, float]:
    """Each task (its tenant named) calls until answered, waiting as the router says;
    calls happen in time order. → task index → when it was answered."""
    queue = [(clock(), index) for index in range(len(tasks))]
    answered: dict[str, float] = {}
    while queue:
        at, index = heapq.heappop(queue)
        clock.now = max(clock.now, at)
        try:
            router.complete([MODEL], REQUEST, client_for=lambda _: provider,
                            time_budget_s=60, tenant=tasks[index])
        except ProviderWaitError as wait:
            heapq.heappush(queue, (clock() + wait.wait_seconds, index))
            continue
        answered[str(index)] = clock()
    return answered


def test_after_the_first_429_no_request_goes_above_the_limit(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock()
    provider = SlidingWindowProvider(clock, limit=4, window_s=6)
    answered = _run(_router(provider_state, clock), provider, clock, ["acme"] * 30)
    assert len(answered) == 30  # every task got its answer
    first_429 = next(at for at, above in provider.log if above)
    late = [at for at, above in provider.log if above and at > first_429]
    assert late == [], f"{len(late)} requests above the limit after the first 429"
    # Paced at the stated rate (40 per minute, less the 10 % margin), not much slower.
    assert max(answered.values()) - first_429 < 26 * 1.5 * 1.1 + 6 + 1


def test_the_hold_lasts_until_the_limit_is_wholly_replenished(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock()
    headers = {"retry-after": "1", "x-ratelimit-limit-requests": "60",
               "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "9s"}
    error = error_for_status("limited", 429, headers)

    class Limited(BaseLLMClient):
        provider = "openai"

        def complete(self, request: LLMRequest) -> LLMResponse:
            raise error

    with pytest.raises(ProviderWaitError) as caught:
        _router(provider_state, clock).complete([MODEL], REQUEST, client_for=lambda _: Limited(),
                                       time_budget_s=60)
    assert caught.value.wait_seconds == 9  # not the Retry-After's 1 s
    pace = provider_state.pace("openai")
    assert pace["tat"] == clock() + 9  # paced calls start at the hold's end
    assert pace["interval"] == pytest.approx(1.1)  # 60 per minute, plus the margin


def test_tenants_share_a_paced_provider_by_weight(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    start = clock()
    provider_state.pace_start("openai", interval=1.0, token_interval=None, start_at=start,
                     until=start + 600, now=start)
    weights = {"big": 3.0, "small": 1.0}
    # Both tenants have many tasks waiting, four asking at a time: the next one asks when
    # the last one's slot comes (it sleeps for a near slot, as the router does) or after
    # the wait it was told.
    asks = [(start + n / 10, tenant) for n in range(4) for tenant in weights]
    starts: Counter[str] = Counter()
    while asks:
        at, tenant = heapq.heappop(asks)
        clock.now = max(clock.now, at)
        slot = provider_state.pace_take("openai", tenant=tenant, weight=weights[tenant], tokens=10,
                               now=clock(), max_ahead_s=3)
        if isinstance(slot, PaceGrant):
            starts[tenant] += slot.at < start + 200
            next_ask = slot.at
        else:
            next_ask = clock() + slot.wait_seconds
        if next_ask < start + 200:
            heapq.heappush(asks, (next_ask, tenant))
    assert 195 <= starts["big"] + starts["small"] <= 201  # the provider's rate, no more
    assert starts["big"] / starts["small"] == pytest.approx(3, rel=0.1)


def test_a_busy_tenant_delays_another_by_about_one_slot(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    asked = clock()
    provider_state.pace_start("openai", interval=2.0, token_interval=None, start_at=asked,
                     until=asked + 600, now=asked)

    def take(tenant: str) -> PaceGrant | PaceDenied:
        # 3 s ahead at most: what a Lambda may sleep for (RouterPolicy.max_pace_sleep_s)
        return provider_state.pace_take("openai", tenant=tenant, weight=1, tokens=10, now=clock(),
                               max_ahead_s=3)

    busy = [take("busy") for _ in range(50)]  # fifty waiting tasks ask at once
    assert sum(isinstance(slot, PaceGrant) for slot in busy) == 2  # what fits in 3 s
    quiet = take("quiet")
    assert isinstance(quiet, PaceDenied)
    clock.advance(quiet.wait_seconds)
    busy = [take("busy") for _ in range(50)]  # they ask again first
    quiet = take("quiet")
    assert isinstance(quiet, PaceGrant)
    assert quiet.at - asked <= 3 + 2 * 2.0  # the reach of a sleep, plus about one slot
    assert sum(isinstance(slot, PaceGrant) for slot in busy) == 1  # its share, no more


def test_pacing_ends_and_calls_go_unpaced_again(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    provider_state.pace_start("openai", interval=5.0, token_interval=None, start_at=clock(),
                     until=clock() + 60, now=clock())
    provider = SlidingWindowProvider(clock, limit=1000, window_s=60)
    router = _router(provider_state, clock)
    clock.advance(61)
    started = clock()
    for _ in range(5):
        router.complete([MODEL], REQUEST, client_for=lambda _: provider, time_budget_s=60)
    assert clock() == started  # nobody slept for a slot


def test_tokens_are_paced_too(provider_state: ProviderStateStore) -> None:
    clock = Clock()
    provider_state.pace_start("openai", interval=0.1, token_interval=0.01, start_at=clock(),
                     until=clock() + 600, now=clock())
    first = provider_state.pace_take("openai", tenant="t", weight=1, tokens=500, now=clock(),
                            max_ahead_s=10)
    second = provider_state.pace_take("openai", tenant="u", weight=1, tokens=500, now=clock(),
                             max_ahead_s=10)
    assert isinstance(first, PaceGrant) and isinstance(second, PaceGrant)
    assert second.at - first.at == pytest.approx(5.0)  # 500 tokens at 100 per second
