"""The router under provider pressure: holds after a 429, fallbacks, a short retry after an
overload or outage, a bounded in-Lambda sleep, ProviderWaitError when nothing can be called
now, and usage returned once. Shared state on moto; clock and sleep injected."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agentkit.llm import LLMRequest, LLMResponse, ModelRequestError, RetryableModelError
from agentkit.llm.base import (
    BaseLLMClient,
    OverloadedError,
    ProviderOutageError,
    ProviderWaitError,
    RateLimitedError,
)
from agentkit.llm.limiter import ProviderLimits
from agentkit.llm.pricing import price_for, with_cost
from agentkit.llm.router import ModelRouter, RouterPolicy
from agentkit.models.domain import Message, Usage
from agentkit.store.provider_state import WINDOW_S, ProviderStateStore
from tests.support.clock import Clock

REQUEST = LLMRequest(model="placeholder", messages=[Message(role="user", content="hi")])
USAGE = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000,
              model_calls=1)
START = 60.0 * 28_333_334 + 10  # ten seconds into a minute (epoch seconds)


class FakeClient(BaseLLMClient):
    """Raises the queued errors in order, then answers."""

    def __init__(self, provider: str, errors: Sequence[Exception], usage: Usage = USAGE) -> None:
        self.provider = provider
        self.errors = list(errors)
        self.usage = usage
        self.models: list[str] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.models.append(request.model)
        if self.errors:
            raise self.errors.pop(0)
        return LLMResponse(
            message=Message(role="assistant", content=f"from {self.provider}"),
            finish_reason="stop",
            usage=self.usage,
        )


def _router(
    clock: Clock, provider_state: ProviderStateStore | None = None, **limits: Any,
) -> ModelRouter:
    return ModelRouter(
        state=provider_state,
        limits=ProviderLimits.model_validate(limits),
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda cap: cap / 2,  # deterministic "random" half of the cap
    )


def _complete(router: ModelRouter, clients: dict[str, FakeClient], budget: float = 60) -> Any:
    return router.complete(list(clients), REQUEST, client_for=clients.__getitem__,
                           time_budget_s=budget)


def test_success_returns_the_priced_usage_once_after_one_call(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock(START)
    client = FakeClient("openai", [])
    routed = _complete(_router(clock, provider_state), {"openai:gpt-4o-mini": client})
    assert routed.model == "openai:gpt-4o-mini" and client.models == ["gpt-4o-mini"]
    # 0.5M uncached at 0.15 + 0.5M cached at 0.075 + 1M out at 0.60 = 0.7125 USD
    assert routed.response.usage.cost_usd == pytest.approx(0.7125)
    assert routed.response.usage.model_calls == 1 and routed.attempts == []
    assert clock.sleeps == []


def test_a_429_on_the_primary_holds_it_for_everyone_and_uses_the_fallback(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock(START)
    primary = FakeClient("openai", [RateLimitedError("429", status_code=429, retry_after_s=30)])
    backup = FakeClient("anthropic", [])
    clients = {"openai:gpt-4o": primary, "anthropic:claude-haiku-4-5": backup}
    routed = _complete(_router(clock, provider_state), clients)
    assert routed.model == "anthropic:claude-haiku-4-5"
    assert primary.models == ["gpt-4o"] and backup.models == ["claude-haiku-4-5"]
    assert clock.sleeps == []  # a rate limit is never slept on in Lambda
    assert provider_state.snapshot("openai").hold_until == START + 30
    # Another Lambda (another router on the same table) skips the held provider unasked.
    clock.now += 10
    other = FakeClient("openai", [])
    routed = _complete(_router(clock, provider_state),
                       {"openai:gpt-4o": other, "anthropic:x": backup})
    assert routed.model == "anthropic:x" and other.models == []
    assert "held" in routed.attempts[0].error


def test_a_429_without_retry_after_holds_for_the_default(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock(START)
    client = FakeClient("openai", [RateLimitedError("429", status_code=429)])
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state), {"openai:gpt-4o": client})
    assert provider_state.snapshot("openai").hold_until == START + RouterPolicy().default_hold_s
    assert caught.value.wait_seconds == RouterPolicy().default_hold_s
    assert (caught.value.provider, caught.value.reason) == ("openai", "rate_limited")


def test_an_unclassified_429_is_read_as_a_rate_limit(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    client = FakeClient("openai", [RetryableModelError("slow down", status_code=429,
                                                       retry_after_s=7)])
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state), {"openai:gpt-4o": client})
    assert caught.value.reason == "rate_limited" and caught.value.wait_seconds == 7
    assert client.models == ["gpt-4o"]


def test_all_held_waits_for_the_soonest_without_calling(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    provider_state.hold("openai", START + 100, "429", now=START)
    provider_state.hold("anthropic", START + 40, "429", now=START)
    clients = {"openai:gpt-4o": FakeClient("openai", []),
               "anthropic:claude-haiku-4-5": FakeClient("anthropic", [])}
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state), clients)
    assert caught.value.wait_seconds == 40
    assert (caught.value.provider, caught.value.reason) == ("openai", "rate_limited")
    assert all(client.models == [] for client in clients.values())


def test_the_wait_is_clamped(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    provider_state.hold("openai", START + 5_000, "429", now=START)
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state), {"openai:gpt-4o": FakeClient("openai", [])})
    assert caught.value.wait_seconds == RouterPolicy().max_wait_s
    provider_state.hold("google", START + 0.2, "429", now=START)
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state),
                  {"google:gemini-2.5-flash": FakeClient("google", [])})
    assert caught.value.wait_seconds == RouterPolicy().min_wait_s


def test_no_limiter_budget_uses_the_fallback_then_waits_for_the_window(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock(START)
    router = _router(clock, provider_state, openai={"rpm": 1})
    primary, backup = FakeClient("openai", []), FakeClient("anthropic", [])
    clients = {"openai:gpt-4o": primary, "anthropic:claude-haiku-4-5": backup}
    assert _complete(router, clients).model == "openai:gpt-4o"
    assert _complete(router, clients).model == "anthropic:claude-haiku-4-5"
    assert primary.models == ["gpt-4o"]  # the second turn did not call it
    with pytest.raises(ProviderWaitError) as caught:
        _complete(router, {"openai:gpt-4o": primary})
    assert caught.value.reason == "limiter"
    assert caught.value.wait_seconds == WINDOW_S - 10  # the rest of the minute
    clock.now += WINDOW_S
    assert _complete(router, {"openai:gpt-4o": primary}).model == "openai:gpt-4o"


def test_the_limiter_is_corrected_to_the_reply_usage(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    client = FakeClient("openai", [], usage=Usage(input_tokens=300, output_tokens=50,
                                                  model_calls=1))
    _complete(_router(clock, provider_state, openai={"tpm": 100_000}), {"openai:gpt-4o": client})
    window = provider_state.window("openai")
    assert (window["requests"], window["tokens"]) == (1, 350)


def test_an_overload_is_retried_once_briefly_then_the_fallback_answers(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock(START)
    primary = FakeClient("anthropic", [OverloadedError("529", status_code=529)] * 2)
    backup = FakeClient("google", [])
    clients = {"anthropic:claude-sonnet-4-5": primary, "google:gemini-2.5-flash": backup}
    routed = _complete(_router(clock, provider_state), clients)
    assert routed.model == "google:gemini-2.5-flash"
    assert len(primary.models) == 2 and clock.sleeps == [0.5]
    assert provider_state.breaker("anthropic") == {}  # overloads never feed the breaker
    assert provider_state.snapshot("anthropic").hold_until is None


def test_a_long_retry_after_on_an_overload_is_not_slept(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    client = FakeClient("anthropic", [OverloadedError("529", status_code=529, retry_after_s=30)])
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state), {"anthropic:claude-sonnet-4-5": client})
    assert clock.sleeps == [] and len(client.models) == 1
    assert (caught.value.reason, caught.value.wait_seconds) == ("overloaded", 30)


def test_in_lambda_sleep_is_capped_across_the_whole_call(
    provider_state: ProviderStateStore,
) -> None:
    clock = Clock(START)
    clients = {
        f"{provider}:m": FakeClient(provider, [ProviderOutageError("502", status_code=502,
                                                                   retry_after_s=2.5)] * 2)
        for provider in ("openai", "anthropic", "google")
    }
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock, provider_state), clients)
    assert sum(clock.sleeps) <= RouterPolicy().max_total_sleep_s
    assert clock.sleeps == [2.5, 2.5]  # the third model gets no retry: the cap is spent
    assert [len(c.models) for c in clients.values()] == [2, 2, 1]
    assert caught.value.reason == "outage"


def test_no_sleep_past_the_time_budget(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    client = FakeClient("openai", [ProviderOutageError("timeout")] * 2)
    with pytest.raises(ProviderWaitError):
        _complete(_router(clock, provider_state), {"openai:gpt-4o": client}, budget=0.1)
    assert clock.sleeps == [] and len(client.models) == 1


def test_a_fatal_error_raises_at_once(provider_state: ProviderStateStore) -> None:
    clock = Clock(START)
    primary = FakeClient("openai", [ModelRequestError("401 bad key", status_code=401)])
    backup = FakeClient("anthropic", [])
    with pytest.raises(ModelRequestError, match="401"):
        _complete(_router(clock, provider_state), {"openai:gpt-4o": primary, "anthropic:x": backup})
    assert len(primary.models) == 1 and backup.models == [] and clock.sleeps == []


def test_failed_bookkeeping_after_a_success_never_calls_again(
    provider_state: ProviderStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("DynamoDB is unhappy")

    monkeypatch.setattr(provider_state, "settle", broken)
    clock = Clock(START)
    client = FakeClient("openai", [])
    routed = _complete(_router(clock, provider_state, openai={"tpm": 10**9}),
                       {"openai:gpt-4o": client})
    assert routed.response.message.content == "from openai" and client.models == ["gpt-4o"]


def test_without_shared_state_a_429_still_fails_over_and_then_waits() -> None:
    clock = Clock(START)
    primary = FakeClient("openai", [RateLimitedError("429", retry_after_s=12)] * 2)
    backup = FakeClient("anthropic", [OverloadedError("503", status_code=503)] * 2)
    clients = {"openai:gpt-4o": primary, "openai:gpt-4o-mini": FakeClient("openai", []),
               "anthropic:x": backup}
    with pytest.raises(ProviderWaitError) as caught:
        _complete(_router(clock), clients)
    # The held provider is skipped for its other model within the call, too.
    assert clients["openai:gpt-4o-mini"].models == [] and len(backup.models) == 2
    assert (caught.value.reason, caught.value.wait_seconds) == ("rate_limited", 10)


@pytest.mark.parametrize(
    ("model", "input_price"),
    [("openai:gpt-4o-mini", 0.15), ("anthropic:claude-sonnet-4-5-20250929", 3.00),
     ("anthropic:claude-opus-4-1", 15.00), ("google:gemini-2.5-flash", 0.30)],
)
def test_price_lookup_exact_then_longest_prefix(model: str, input_price: float) -> None:
    price = price_for(model)
    assert price is not None and price.input == input_price


def test_unknown_models_cost_nothing_rather_than_a_guess() -> None:
    usage = Usage(input_tokens=10, output_tokens=10)
    assert price_for("acme:mystery") is None
    assert with_cost("acme:mystery", usage).cost_usd == 0.0
