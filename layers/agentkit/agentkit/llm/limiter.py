"""Provider rate limits: the deployment's configuration and the limiter's policy.

Configuration: the `ProviderLimits` template parameter → env `PROVIDER_LIMITS`, JSON:

    {"openai": {"rpm": 500, "tpm": 200000},
     "anthropic": {"rpm": 50},
     "openai:gpt-4o-mini": {"tpm": 100000}}

* A key is a provider (its API key: one per provider per deployment) or `provider:model`
  (that model's own limit, taken IN ADDITION to its provider's).
* `rpm`: requests per minute, `tpm`: tokens (input + output) per minute; whole numbers
  >= 1. A missing dimension, a missing key, or an empty/absent variable: no limit (and no
  DynamoDB traffic for it). A bad value raises naming the field (`openai.rpm`).

Policy (the state is in `agentkit.store.provider_state`):
* A fixed one-minute window per scope: exact under any concurrency (one conditional write
  per take), one item per scope. Its price is the known boundary burst (up to twice the
  limit across the end of one minute and the start of the next); a provider that objects
  answers 429, which holds the provider. A token bucket would need a read-modify-write
  per take with optimistic retries under contention, for little gain at these rates.
* Before each call: one request and an ESTIMATE of its tokens are reserved:
  ceil(chars / 4) of the messages (content + tool calls) and tool declarations, plus
  4 tokens per message, plus the output allowance (`max_tokens`, else
  `DEFAULT_OUTPUT_TOKENS` = 1024). A reservation bigger than a scope's whole `tpm` is
  capped at `tpm` (it then needs an empty window rather than never running).
* After the reply the reservation is corrected to the reply's usage (input + output);
  after a 429 or an overload the tokens are given back (the provider processed nothing)
  and the request stays counted; after an outage the estimate stays (it may have run).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator

from agentkit.llm.base import LLMRequest
from agentkit.model_names import parse_model
from agentkit.models.domain import Usage
from agentkit.store.provider_state import (
    ProviderStateStore,
    RateDenied,
    RateGrant,
    WindowLimit,
)

DEFAULT_OUTPUT_TOKENS = 1024
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
ENV_VAR = "PROVIDER_LIMITS"


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute.")


class ProviderLimits(RootModel[dict[str, Limit]]):
    """`provider` or `provider:model` → its limit."""

    root: dict[str, Limit] = Field(default={})

    @field_validator("root")
    @classmethod
    def _check_keys(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        for key in value:
            provider, sep, model = key.partition(":")
            if not provider.strip() or (sep and not model.strip()) or key != key.strip():
                raise ValueError(f"'{key}' is not a provider or provider:model")
        return value

    @classmethod
    def parse(cls, raw: str | None) -> ProviderLimits:
        """From the JSON text; empty or absent: no limits. ValueError naming the field."""
        if not raw or not raw.strip():
            return cls()
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise ValueError(f"{ENV_VAR} is not JSON: {error}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or ENV_VAR}: {problem['msg']}"
                for problem in error.errors()
            )
            raise ValueError(f"{ENV_VAR} is invalid: {problems}") from None

    def for_model(self, model: str) -> list[WindowLimit]:
        """The scopes a call to `provider:model` takes from: its provider's, its own."""
        provider, name = parse_model(model)
        scopes = [provider, f"{provider}:{name}"]
        return [
            WindowLimit(scope, limit.rpm, limit.tpm)
            for scope in dict.fromkeys(scopes)
            if (limit := self.root.get(scope)) is not None and (limit.rpm or limit.tpm)
        ]


def estimate_tokens(request: LLMRequest) -> int:
    chars = 0
    for message in request.messages:
        chars += len(message.content or "")
        for call in message.tool_calls:
            chars += len(call.name) + len(json.dumps(call.arguments, default=str))
    for spec in request.tools:
        chars += len(spec.name) + len(spec.description) + len(json.dumps(spec.parameters))
    prompt = math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)
    return prompt + (request.max_tokens or DEFAULT_OUTPUT_TOKENS)


class Limiter:
    """Takes from the shared windows before a call and corrects them after it. Without a
    store or without limits for a model every take is granted and nothing is written."""

    def __init__(
        self,
        limits: ProviderLimits | None = None,
        store: ProviderStateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits or ProviderLimits()
        self._store = store
        self._clock = clock

    def take(self, model: str, tokens: int) -> RateGrant | RateDenied:
        scopes = self.limits.for_model(model)
        if self._store is None or not scopes:
            return RateGrant()
        return self._store.take(scopes, tokens, now=self._clock())

    def settle(self, grant: RateGrant, usage: Usage | None) -> None:
        """Correct to the tokens used; None: nothing was processed (tokens given back)."""
        if self._store is not None and grant.reservations:
            used = 0 if usage is None else usage.input_tokens + usage.output_tokens
            self._store.settle(grant, used)

    def release(self, grant: RateGrant) -> None:
        if self._store is not None and grant.reservations:
            self._store.release(grant)
