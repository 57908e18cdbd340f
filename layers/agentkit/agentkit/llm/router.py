"""One model turn across an ordered list of models: retry, back off, fail over.

* A retryable error (429, 5xx, timeout, connection) is retried on the same model after
  max(Retry-After, exponential backoff with full jitter), while the Lambda has time.
* After `attempts_per_model` retryable failures the next model in the task's list is
  tried; a provider whose shared circuit breaker is open is skipped without a call.
* A non-retryable error (bad request, auth, context too long) ends the turn at once:
  another try or another model cannot fix the request.
* When every model is exhausted the last retryable error is raised, so the state machine
  can still retry the whole step later (its Retry on RetryableModelError).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    RetryableModelError,
    parse_model,
)
from agentkit.llm.breaker import CircuitBreaker, NoBreaker
from agentkit.llm.pricing import with_cost


class RetryPolicy(BaseModel):
    attempts_per_model: int = Field(default=3, ge=1)
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=20.0, ge=0)


@dataclass
class Attempt:
    model: str
    error: str


@dataclass
class RoutedResponse:
    model: str
    response: LLMResponse
    attempts: list[Attempt] = field(default_factory=list)


ClientFor = Callable[[str], BaseLLMClient]


class ModelRouter:
    def __init__(
        self,
        *,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float], float] = lambda cap: random.uniform(0, cap),
    ) -> None:
        self._breaker = breaker or NoBreaker()
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def backoff(self, attempt: int, retry_after_s: float | None) -> float:
        """Full jitter on an exponential cap; never sooner than the server asked."""
        cap = min(self._retry.max_delay_s, self._retry.base_delay_s * 2**attempt)
        return max(retry_after_s or 0.0, self._jitter(cap))

    def complete(
        self,
        models: Sequence[str],
        request: LLMRequest,
        *,
        client_for: ClientFor,
        time_budget_s: float,
    ) -> RoutedResponse:
        deadline = self._clock() + time_budget_s
        attempts: list[Attempt] = []
        last_error: RetryableModelError | None = None
        for model in models:
            provider, name = parse_model(model)
            if not self._breaker.allow(provider):
                attempts.append(Attempt(model, f"skipped: the {provider} circuit is open"))
                last_error = RetryableModelError(f"{provider}: circuit open after failures")
                continue
            client = client_for(model)
            model_request = request.model_copy(update={"model": name})
            for attempt in range(self._retry.attempts_per_model):
                try:
                    response = client.complete(model_request)
                except RetryableModelError as error:
                    self._breaker.record_failure(provider)
                    attempts.append(Attempt(model, str(error)))
                    last_error = error
                    if attempt + 1 >= self._retry.attempts_per_model:
                        break  # threshold reached: fail over to the next model
                    delay = self.backoff(attempt, error.retry_after_s)
                    if self._clock() + delay >= deadline:
                        break  # no time left for this model in this invocation
                    self._sleep(delay)
                    continue
                self._breaker.record_success(provider)
                response = response.model_copy(update={"usage": with_cost(model, response.usage)})
                return RoutedResponse(model=model, response=response, attempts=attempts)
        summary = "; ".join(f"{a.model}: {a.error}" for a in attempts[-len(models) * 2 :])
        raise RetryableModelError(
            f"no model answered ({summary})",
            status_code=last_error.status_code if last_error else None,
            retry_after_s=last_error.retry_after_s if last_error else None,
        )
