"""Retry with backoff and Retry-After, failover across models, and the price table."""

from __future__ import annotations

import pytest

from agentkit.llm import LLMRequest, LLMResponse, ModelRequestError, RetryableModelError
from agentkit.llm.base import BaseLLMClient
from agentkit.llm.breaker import NoBreaker
from agentkit.llm.pricing import price_for, with_cost
from agentkit.llm.router import ModelRouter, RetryPolicy
from agentkit.models import Message, Usage

REQUEST = LLMRequest(model="placeholder", messages=[Message(role="user", content="hi")])


class FakeClient(BaseLLMClient):
    """Raises the queued errors in order, then answers."""

    def __init__(self, provider: str, errors: list[Exception]) -> None:
        self.provider = provider
        self.errors = list(errors)
        self.models: list[str] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.models.append(request.model)
        if self.errors:
            raise self.errors.pop(0)
        return LLMResponse(
            message=Message(role="assistant", content=f"from {self.provider}"),
            finish_reason="stop",
            usage=Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000,
                        model_calls=1),
        )


class RecordingBreaker(NoBreaker):
    def __init__(self, open_providers: set[str] | None = None) -> None:
        self.open = open_providers or set()
        self.events: list[tuple[str, str]] = []

    def allow(self, provider: str) -> bool:
        return provider not in self.open

    def record_success(self, provider: str) -> None:
        self.events.append(("success", provider))

    def record_failure(self, provider: str) -> None:
        self.events.append(("failure", provider))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _router(clock: Clock, breaker: NoBreaker | None = None, attempts: int = 3) -> ModelRouter:
    return ModelRouter(
        breaker=breaker,
        retry=RetryPolicy(attempts_per_model=attempts, base_delay_s=1.0, max_delay_s=8.0),
        sleep=clock.sleep,
        clock=lambda: clock.now,
        jitter=lambda cap: cap / 2,  # deterministic "random" half of the cap
    )


def throttled(retry_after: float | None = None) -> RetryableModelError:
    return RetryableModelError("429 slow down", status_code=429, retry_after_s=retry_after)


def test_retries_with_backoff_then_answers_with_cost() -> None:
    clock = Clock()
    client = FakeClient("openai", [throttled(), RetryableModelError("503", status_code=503)])
    routed = _router(clock).complete(["openai:gpt-4o-mini"], REQUEST,
                                     client_for=lambda _: client, time_budget_s=60)
    assert routed.model == "openai:gpt-4o-mini"
    assert client.models == ["gpt-4o-mini"] * 3
    assert clock.sleeps == [0.5, 1.0]  # jittered halves of the 1 s and 2 s caps
    # 0.5M uncached at 0.15 + 0.5M cached at 0.075 + 1M out at 0.60 = 0.7125 USD
    assert routed.response.usage.cost_usd == pytest.approx(0.7125)
    assert len(routed.attempts) == 2


def test_retry_after_is_honoured_when_longer_than_backoff() -> None:
    clock = Clock()
    client = FakeClient("openai", [throttled(retry_after=7.0)])
    _router(clock).complete(["openai:gpt-4o-mini"], REQUEST, client_for=lambda _: client,
                            time_budget_s=60)
    assert clock.sleeps == [7.0]


def test_fails_over_to_the_next_model_after_the_threshold() -> None:
    clock = Clock()
    breaker = RecordingBreaker()
    primary = FakeClient("anthropic", [throttled()] * 3)
    backup = FakeClient("google", [])
    clients = {"anthropic:claude-sonnet-4-5": primary, "google:gemini-2.5-flash": backup}
    routed = _router(clock, breaker).complete(
        list(clients), REQUEST, client_for=clients.__getitem__, time_budget_s=60)
    assert routed.model == "google:gemini-2.5-flash"
    assert routed.response.message.content == "from google"
    assert len(primary.models) == 3 and backup.models == ["gemini-2.5-flash"]
    assert breaker.events == [("failure", "anthropic")] * 3 + [("success", "google")]


def test_an_open_breaker_skips_the_provider_without_a_call() -> None:
    clock = Clock()
    primary, backup = FakeClient("openai", []), FakeClient("anthropic", [])
    clients = {"openai:gpt-4o": primary, "anthropic:claude-haiku-4-5": backup}
    routed = _router(clock, RecordingBreaker({"openai"})).complete(
        list(clients), REQUEST, client_for=clients.__getitem__, time_budget_s=60)
    assert routed.model == "anthropic:claude-haiku-4-5" and primary.models == []
    assert "circuit is open" in routed.attempts[0].error


def test_a_non_retryable_error_never_retries_or_fails_over() -> None:
    clock = Clock()
    primary = FakeClient("openai", [ModelRequestError("401 bad key", status_code=401)])
    backup = FakeClient("anthropic", [])
    clients = {"openai:gpt-4o": primary, "anthropic:claude-haiku-4-5": backup}
    with pytest.raises(ModelRequestError, match="401"):
        _router(clock).complete(list(clients), REQUEST, client_for=clients.__getitem__,
                                time_budget_s=60)
    assert len(primary.models) == 1 and backup.models == [] and clock.sleeps == []


def test_all_models_exhausted_raises_retryable_for_the_state_machine() -> None:
    clock = Clock()
    client = FakeClient("openai", [throttled(retry_after=3.0)] * 10)
    with pytest.raises(RetryableModelError, match="no model answered") as caught:
        _router(clock, attempts=2).complete(["openai:gpt-4o"], REQUEST,
                                            client_for=lambda _: client, time_budget_s=60)
    assert caught.value.retry_after_s == 3.0 and caught.value.status_code == 429


def test_no_sleep_past_the_time_budget() -> None:
    clock = Clock()
    client = FakeClient("openai", [throttled(retry_after=30.0)] * 3)
    with pytest.raises(RetryableModelError):
        _router(clock).complete(["openai:gpt-4o"], REQUEST, client_for=lambda _: client,
                                time_budget_s=10)
    assert clock.sleeps == [] and len(client.models) == 1


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
