"""The outage circuit breaker per provider: policy and state machine. Its state lives in
DynamoDB (`agentkit.store.provider_state`, item `PROVIDER#<provider>` / `BREAKER`), shared
by every Lambda.

closed → (threshold outages within the window) → open → (cool-down passed; exactly one
caller wins a conditional write and makes ONE call) → half_open → that call answered:
closed / it failed with an outage: open again. A probe that never reports back is retaken
after another cool-down. Only outages (`ProviderOutageError`: 5xx other than 503/529,
timeouts, connection failures) feed it: a rate limit or an overload says the provider is
up and busy, which holds and the limiter deal with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agentkit.store.provider_state import ProviderStateStore

#: An in-flight probe usually answers within this: when to look again.
PROBE_RECHECK_S = 10.0


class BreakerPolicy(BaseModel):
    failure_threshold: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


@dataclass(frozen=True)
class Admission:
    """`allowed`: a call may be made. `probe`: only after `claim_probe` wins, and then
    exactly one call. `retry_at`: when not allowed, the epoch time to look again."""

    allowed: bool
    probe: bool = False
    retry_at: float | None = None


class CircuitBreaker(Protocol):
    def admit(self, provider: str, item: dict[str, Any] | None = None) -> Admission: ...

    def claim_probe(self, provider: str, item: dict[str, Any]) -> bool: ...

    def record_success(self, provider: str) -> None: ...

    def record_outage(self, provider: str) -> float | None: ...


class NoBreaker:
    """Always closed (tests, or a router without shared state)."""

    def admit(self, provider: str, item: dict[str, Any] | None = None) -> Admission:
        return Admission(True)

    def claim_probe(self, provider: str, item: dict[str, Any]) -> bool:
        return True

    def record_success(self, provider: str) -> None:
        return None

    def record_outage(self, provider: str) -> float | None:
        return None


class SharedCircuitBreaker:
    def __init__(
        self,
        store: ProviderStateStore,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.policy = policy or BreakerPolicy()
        self._clock = clock

    def state(self, provider: str) -> dict[str, Any]:
        return self._store.breaker(provider)

    def admit(self, provider: str, item: dict[str, Any] | None = None) -> Admission:
        """Read-only: may a call be made now? `item`: the breaker item already read (the
        router reads it with the provider's hold in one query)."""
        item = self.state(provider) if item is None else item
        now = self._clock()
        state = item.get("state", "closed")
        if state == "closed":
            return Admission(True)
        if state == "open" and now < float(item.get("open_until", 0)):
            return Admission(False, retry_at=float(item["open_until"]))
        probe_expires = float(item.get("probe_at", 0)) + self.policy.cooldown_s
        if state == "half_open" and now < probe_expires:
            # Another caller is probing: look again soon (it usually answers quickly).
            return Admission(False, retry_at=min(probe_expires, now + PROBE_RECHECK_S))
        # Cool-down over (or a probe that never reported back): a probe may be claimed.
        return Admission(True, probe=True)

    def claim_probe(self, provider: str, item: dict[str, Any]) -> bool:
        """Exactly one caller wins: a conditional write on the state it read."""
        return self._store.breaker_claim_probe(
            provider,
            now=self._clock(),
            seen_state=item.get("state", "closed"),
            seen_probe_at=item.get("probe_at"),
        )

    def record_success(self, provider: str) -> None:
        """The provider answered a probe: close (a no-op when already closed)."""
        self._store.breaker_close(provider, now=self._clock())

    def record_outage(self, provider: str) -> float | None:
        """Count an outage; the time the breaker stays open until when it is open now."""
        now = self._clock()
        open_until = now + self.policy.cooldown_s
        if self._store.breaker_reopen(provider, open_until=open_until):
            return open_until  # the probe failed: open again
        failures = self._store.breaker_count_failure(
            provider, now=now, window_s=self.policy.window_s
        )
        if failures < self.policy.failure_threshold:
            return None
        if self._store.breaker_trip(provider, open_until=open_until):
            return open_until
        item = self.state(provider)  # another caller tripped it (or it is half_open)
        if item.get("state") == "open":
            return float(item.get("open_until", open_until))
        return None
