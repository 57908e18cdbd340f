"""One model turn across an ordered list of models, under shared provider state.

For each model in order (a fallback is used when the one before it cannot be called now):

* provider held (a 429 seen by any Lambda): skip, no call; callable at the hold's end.
* breaker open (or a probe in flight): skip, no call; callable at open_until (or soon).
* breaker cool-down over: claim the probe (one caller wins), then exactly ONE call.
* limiter has no budget now: skip, no call; callable when its window rolls over.
* provider paced (after a 429, see below): take the task's tenant's next slot; a slot a
  few seconds away is slept for, a later one is waited for in the state machine.
* success: correct the limiter to the real usage, close a probed breaker, price the
  usage (`with_cost`) and return it, once; never another call.
* RateLimitedError (429): hold the provider for every Lambda until its limit is wholly
  replenished (the later of Retry-After and the reset header of the limit that ran out;
  default 20 s; a longer hold is kept), then pace it for `pace_for_s`: calls spaced at
  the rate its headers state (`x-ratelimit-limit-*` per minute; else the deployment's
  ProviderLimits; else `default_pace_interval_s`) plus `pace_margin`, shared by the
  tenants by weight. A burst of waiters at the hold's end would meet the limit again at
  once; paced calls never exceed it. Next model.
* OverloadedError (503/529): one short retry (<= 3 s sleep; none when Retry-After is
  longer); next model.
* ProviderOutageError (other 5xx, timeout, connection): count in the breaker; one short
  retry unless that opened it; next model.
* ModelRequestError (400, 401, context too long...): raise at once, no retry or fallback.

In-Lambda sleeps total at most `max_total_sleep_s` (5 s) and stay inside the time budget.
When no model answered, `ProviderWaitError` says when the soonest of the task's models can
be called (hold end, window roll-over, breaker cool-down, or a short pause after an
overload/outage; clamped to 1..300 s), names the primary model's provider and why the
primary could not answer ("rate_limited" | "limiter" | "breaker_open" | "overloaded" |
"outage"); the loop waits in a Wait state (no compute billed) and calls again.

A client error of unknown kind (a plain `RetryableModelError`) is read by its status code:
429 rate-limited, 503/529 overloaded, anything else an outage.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    ProviderRate,
    ProviderWaitError,
    RateLimitedError,
    RetryableModelError,
    parse_model,
)
from agentkit.llm.breaker import BreakerPolicy, CircuitBreaker, NoBreaker, SharedCircuitBreaker
from agentkit.llm.limiter import Limiter, ProviderLimits, estimate_tokens
from agentkit.llm.pricing import with_cost
from agentkit.observability import metrics as observed
from agentkit.observability.model_calls import observe_model_call
from agentkit.store.provider_state import (
    PaceDenied,
    ProviderSnapshot,
    ProviderStateStore,
    RateDenied,
    RateGrant,
)

logger = logging.getLogger(__name__)


class RouterPolicy(BaseModel):
    default_hold_s: float = Field(default=20.0, gt=0, description="A 429 without Retry-After.")
    retry_delay_s: float = Field(default=1.0, ge=0, description="Before the one short retry.")
    max_retry_sleep_s: float = Field(default=3.0, ge=0)
    max_total_sleep_s: float = Field(default=5.0, ge=0)
    busy_wait_s: float = Field(
        default=10.0, gt=0, description="After an overload/outage: when to try that model again."
    )
    min_wait_s: float = Field(default=1.0, gt=0)
    max_wait_s: float = Field(default=300.0, gt=0)
    pace_for_s: float = Field(default=600.0, gt=0, description="How long a 429 paces.")
    pace_margin: float = Field(
        default=0.1, ge=0, description="Paced calls are this much further apart than the "
        "stated rate, for the jitter between a slot and the request's arrival."
    )
    default_pace_interval_s: float = Field(
        default=2.0, gt=0, description="Pace when neither the provider nor we state a rate."
    )
    max_pace_sleep_s: float = Field(default=3.0, ge=0, description="A nearer slot is slept for.")


@dataclass
class Attempt:
    model: str
    error: str


@dataclass
class RoutedResponse:
    model: str
    response: LLMResponse
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class _Blocked:
    model: str
    reason: str  # rate_limited | limiter | breaker_open | overloaded | outage
    at: float  # epoch seconds the model may be called again


ClientFor = Callable[[str], BaseLLMClient]


def error_kind(error: RetryableModelError) -> str:
    if isinstance(error, RateLimitedError):
        return "rate_limited"
    if isinstance(error, OverloadedError):
        return "overloaded"
    if isinstance(error, ProviderOutageError):
        return "outage"
    if error.status_code == 429:
        return "rate_limited"
    if error.status_code in {503, 529}:
        return "overloaded"
    return "outage"


class _Call:
    """The state of one `complete` call."""

    def __init__(self, deadline: float, tenant: str, weight: float) -> None:
        self.deadline = deadline
        self.tenant = tenant
        self.weight = weight
        self.slept = 0.0
        self.attempts: list[Attempt] = []
        #: model → why it cannot be called now and until when (its latest outcome)
        self.blocked: dict[str, _Blocked] = {}
        self.snapshots: dict[str, ProviderSnapshot] = {}

    def block(self, model: str, reason: str, at: float, note: str | None = None) -> None:
        self.blocked[model] = _Blocked(model, reason, at)
        if note is not None:
            self.attempts.append(Attempt(model, note))


class ModelRouter:
    def __init__(
        self,
        *,
        state: ProviderStateStore | None = None,
        limits: ProviderLimits | None = None,
        breaker_policy: BreakerPolicy | None = None,
        policy: RouterPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float], float] = lambda cap: random.uniform(cap / 2, cap),
        tenant_weight: Callable[[str], float] = lambda tenant: 1.0,
    ) -> None:
        """`state`: the shared store (holds, pacers, limiter windows, breakers); without it
        holds last for one call only and there is no pacer, limiter or breaker. `clock`:
        epoch seconds (the state is shared across machines). `tenant_weight`: a tenant's
        share of a paced provider."""
        self._state = state
        self._limits = limits or ProviderLimits()
        self._tenant_weight = tenant_weight
        self._limiter = Limiter(limits, state, clock)
        self._breaker: CircuitBreaker = (
            SharedCircuitBreaker(state, breaker_policy, clock) if state else NoBreaker()
        )
        self._policy = policy or RouterPolicy()
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def complete(
        self,
        models: Sequence[str],
        request: LLMRequest,
        *,
        client_for: ClientFor,
        time_budget_s: float,
        tenant: str = "default",
    ) -> RoutedResponse:
        """`tenant`: whose task this is (its share of a paced provider)."""
        if not models:
            raise ModelRequestError("no model to call")
        call = _Call(self._clock() + time_budget_s, tenant, self._tenant_weight(tenant))
        estimate = estimate_tokens(request)
        for index, model in enumerate(models):
            if index and self._clock() >= call.deadline:
                # No time left in this invocation for another call: it can be made at once
                # from the next one.
                call.block(model, "outage", self._clock(), "skipped: no time left")
                continue
            response = self._try(model, request, estimate, client_for, call)
            if response is not None:
                return RoutedResponse(model=model, response=response, attempts=call.attempts)
        raise self._wait_error(models, call)

    # --- one model

    def _try(
        self,
        model: str,
        request: LLMRequest,
        estimate: int,
        client_for: ClientFor,
        call: _Call,
    ) -> LLMResponse | None:
        provider, name = parse_model(model)
        # The client first (a cold SDK import takes a while): the shared state is read
        # just before the call, so a hold written meanwhile is seen.
        client = client_for(model)
        snapshot = self._snapshot(provider, call)
        now = self._clock()
        if snapshot.hold_until is not None and snapshot.hold_until > now:
            call.block(model, "rate_limited", snapshot.hold_until,
                       f"skipped: {provider} is held for {snapshot.hold_until - now:.0f} s")
            return None
        admission = self._breaker.admit(provider, snapshot.breaker)
        if not admission.allowed:
            observed.breaker_open(provider=provider, tenant_id=call.tenant, why="refused")
            call.block(model, "breaker_open", admission.retry_at or now + self._policy.busy_wait_s,
                       f"skipped: the {provider} circuit is open")
            return None
        model_request = request.model_copy(update={"model": name})
        calls_left = 1 if admission.probe else 2  # a probe is exactly one call
        while calls_left:
            calls_left -= 1
            grant = self._limiter.take(model, estimate)
            if isinstance(grant, RateDenied):
                call.block(model, "limiter", self._clock() + grant.wait_seconds,
                           f"skipped: no {grant.scope} budget for {grant.wait_seconds:.0f} s")
                return None
            if admission.probe and not self._breaker.claim_probe(provider, snapshot.breaker):
                self._limiter.release(grant)
                call.block(model, "breaker_open", self._clock() + self._policy.min_wait_s,
                           f"skipped: another caller is probing {provider}")
                return None
            if not self._paced_slot(model, provider, estimate, call):
                self._limiter.release(grant)
                return None
            try:
                with observe_model_call(provider, name, tenant_id=call.tenant) as observation:
                    response = client.complete(model_request)
                    usage = with_cost(model, response.usage)
                    observation.reply(input_tokens=usage.input_tokens,
                                      output_tokens=usage.output_tokens,
                                      cost_usd=usage.cost_usd,
                                      finish_reason=response.finish_reason)
            except ModelRequestError:
                self._after_call(grant, None, provider, reached=admission.probe)
                raise
            except RetryableModelError as error:
                retry_in = self._failed(model, provider, error, grant, admission.probe, call)
                if retry_in is None or not calls_left:
                    return None
                self._sleep(retry_in)
                call.slept += retry_in
                continue
            self._after_call(grant, response, provider, reached=admission.probe)
            return response.model_copy(update={"usage": usage})
        return None

    def _failed(
        self,
        model: str,
        provider: str,
        error: RetryableModelError,
        grant: RateGrant,
        probe: bool,
        call: _Call,
    ) -> float | None:
        """Book a failed call; the seconds to sleep before a short retry, or None."""
        kind = error_kind(error)
        now = self._clock()
        call.attempts.append(Attempt(model, f"{kind}: {error}"))
        if kind == "rate_limited":
            self._after_call(grant, None, provider, reached=probe)
            rate = error.rate if isinstance(error, RateLimitedError) else ProviderRate()
            hold_s = max(error.retry_after_s or 0.0, rate.replenished_s or 0.0)
            until = now + (hold_s or self._policy.default_hold_s)
            if self._state is not None:
                self._state.hold(provider, until, f"{model}: {str(error)[:200]}", now=now)
                self._start_pace(provider, rate, until, now)
            held = call.snapshots.get(provider, ProviderSnapshot())
            call.snapshots[provider] = ProviderSnapshot(
                max(until, held.hold_until or 0), "rate_limited", held.breaker)
            call.block(model, "rate_limited", until)
            return None
        if kind == "overloaded":
            self._after_call(grant, None, provider, reached=probe)
        else:  # an outage: the estimate stays taken (the provider may have run it)
            open_until = self._breaker.record_outage(provider)
            if open_until is not None:
                observed.breaker_open(provider=provider, tenant_id=call.tenant, why="opened")
                snapshot = call.snapshots.get(provider, ProviderSnapshot())
                call.snapshots[provider] = ProviderSnapshot(
                    snapshot.hold_until, snapshot.hold_reason,
                    {"state": "open", "open_until": open_until})
                call.block(model, "breaker_open", open_until)
                return None
        retry_after = error.retry_after_s
        delay = retry_after if retry_after is not None else self._jitter(self._policy.retry_delay_s)
        if (
            probe
            or delay > self._policy.max_retry_sleep_s
            or call.slept + delay > self._policy.max_total_sleep_s
            or now + delay >= call.deadline
        ):
            call.block(model, kind, now + max(retry_after or 0.0, self._policy.busy_wait_s))
            return None
        # If the retry cannot be made (no budget), this is when the model may be tried again.
        call.block(model, kind, now + self._policy.busy_wait_s)
        return delay

    def _paced_slot(self, model: str, provider: str, estimate: int, call: _Call) -> bool:
        """Take the tenant's next slot of a paced provider, sleeping for a near one. False:
        the slot is too far off (the model is blocked until about then)."""
        snapshot = call.snapshots.get(provider, ProviderSnapshot())
        now = self._clock()
        if self._state is None or not snapshot.paced(now):
            return True
        sleep_cap = min(self._policy.max_pace_sleep_s,
                        self._policy.max_total_sleep_s - call.slept, call.deadline - now)
        slot = self._state.pace_take(
            provider, tenant=call.tenant, weight=call.weight, tokens=estimate, now=now,
            max_ahead_s=max(sleep_cap, 0.0), seen=snapshot.pace,
        )
        if isinstance(slot, PaceDenied):
            # Spread the waiters: each comes back at a different moment after the slot.
            wait = slot.wait_seconds + self._jitter(max(slot.wait_seconds, 1.0)) / 2
            call.block(model, "rate_limited", now + wait,
                       f"skipped: {provider} is paced, next slot in {slot.wait_seconds:.0f} s")
            return False
        if slot.at > now:
            self._sleep(slot.at - now)
            call.slept += slot.at - now
        return True

    def _start_pace(self, provider: str, rate: ProviderRate, start_at: float, now: float) -> None:
        """Pace `provider` after a hold, at the rate it states (else ours, else a default)."""
        assert self._state is not None
        configured = self._limits.root.get(provider)
        rpm = rate.requests_per_minute or (configured.rpm if configured else None)
        tpm = rate.tokens_per_minute or (configured.tpm if configured else None)
        stretch = 1.0 + self._policy.pace_margin
        interval = 60.0 / rpm * stretch if rpm else self._policy.default_pace_interval_s
        try:
            self._state.pace_start(
                provider, interval=interval,
                token_interval=60.0 / tpm * stretch if tpm else None,
                start_at=start_at, until=now + self._policy.pace_for_s, now=now,
            )
        except Exception:  # the hold is written; pacing is an improvement on top of it
            logger.warning("could not start pacing %s", provider, exc_info=True)

    def _after_call(
        self, grant: RateGrant, response: LLMResponse | None, provider: str, *, reached: bool
    ) -> None:
        """Bookkeeping after the provider answered (with a reply, a 4xx, a 429 or an
        overload). Never raises: after a success the model must not be called again."""
        try:
            self._limiter.settle(grant, None if response is None else response.usage)
            if reached:
                self._breaker.record_success(provider)  # the probe got an answer: close
        except Exception:  # bookkeeping must never cost a second model call
            logger.warning("provider state bookkeeping failed for %s", provider, exc_info=True)

    def _snapshot(self, provider: str, call: _Call) -> ProviderSnapshot:
        if provider not in call.snapshots:
            call.snapshots[provider] = (
                self._state.snapshot(provider) if self._state is not None else ProviderSnapshot()
            )
        return call.snapshots[provider]

    # --- nobody answered

    def _wait_error(self, models: Sequence[str], call: _Call) -> ProviderWaitError:
        now = self._clock()
        primary_provider, _ = parse_model(models[0])
        soonest = min(blocked.at for blocked in call.blocked.values())
        primary = call.blocked.get(models[0])
        reason = primary.reason if primary is not None else "outage"
        wait = min(max(soonest - now, self._policy.min_wait_s), self._policy.max_wait_s)
        summary = "; ".join(f"{a.model}: {a.error}" for a in call.attempts[-len(models) * 2 :])
        return ProviderWaitError(
            f"no model can be called now; the soonest in {wait:.0f} s ({summary})",
            wait_seconds=wait,
            provider=primary_provider,
            reason=reason,
        )
