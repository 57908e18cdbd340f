"""The provider-neutral request/response and the client interface.

Error classes double as Step Functions error names: the state machine retries
`RetryableModelError` with backoff and sends `ModelRequestError` straight to the
failure path (a bad request or bad credentials never gets better by retrying).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

# parse_model lives in agentkit.model_names (the API checks names without this module)
from agentkit.model_names import parse_model as parse_model
from agentkit.models.domain import FinishReason, Message, ToolSpec, Usage


class ModelError(Exception):
    """A model call failed. Messages must never contain credentials."""

    retryable = False

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class RetryableModelError(ModelError):
    """Throttling, 5xx, timeouts, connection failures: worth another try later.

    Raised as such only where the kind is unknown; clients raise one of the three kinds
    below, which decide what the router does: a rate limit holds the provider (for every
    Lambda) until its reset, an overload is retried briefly, an outage feeds the breaker."""

    retryable = True
    kind = "retryable"


class ProviderRate(BaseModel):
    """What a provider's rate-limit headers say about this key (OpenAI / OpenRouter
    `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`; Google sends none)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    #: Seconds until the limit that ran out is wholly replenished (its reset header).
    replenished_s: float | None = None


class RateLimitedError(RetryableModelError):
    """429: the provider's limits for this key are used up until `retry_after_s` (from
    Retry-After or the provider's own reset headers). `rate`: the limits the headers
    state, from which the router paces calls after the hold."""

    kind = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        rate: ProviderRate | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, retry_after_s=retry_after_s)
        self.rate = rate or ProviderRate()


class OverloadedError(RetryableModelError):
    """503 / 529 (Anthropic's overloaded_error): the provider is busy, not down."""

    kind = "overloaded"


class ProviderOutageError(RetryableModelError):
    """Other 5xx, timeouts, connection failures: the provider may be down (feeds the
    circuit breaker)."""

    kind = "outage"


class ModelRequestError(ModelError):
    """Bad request, auth, context too long, unknown model: retrying cannot help."""

    kind = "fatal"


class ProviderWaitError(ModelError):
    """No model of the task can be called now (its provider is held after a 429, its
    limiter is empty, or its breaker is open): not a failure. The loop waits
    `wait_seconds` in a Wait state (no compute billed) and calls again."""

    retryable = True
    kind = "wait"

    def __init__(self, message: str, *, wait_seconds: float, provider: str, reason: str) -> None:
        super().__init__(message, retry_after_s=wait_seconds)
        self.wait_seconds = wait_seconds
        self.provider = provider
        #: why: "rate_limited" (held), "limiter" (no budget now) or "breaker_open"
        self.reason = reason


class ToolChoice(BaseModel):
    """Which tools the model may (must) call: `auto` (the default when tools are given),
    `required` (at least one), `none` (answer in text), or `tool` (exactly the one named).
    Each client words it its provider's way."""

    mode: Literal["auto", "required", "none", "tool"] = "auto"
    name: str | None = Field(default=None, description="The tool, with mode `tool`.")

    @model_validator(mode="after")
    def _name_with_tool(self) -> ToolChoice:
        if (self.mode == "tool") != (self.name is not None):
            raise ValueError("a tool name goes with mode 'tool', and only with it")
        return self


class ResponseFormat(BaseModel):
    """The reply's text must be JSON matching `json_schema` (the provider's native
    structured output: OpenAI/OpenRouter `response_format`, Anthropic
    `output_config.format`, Google `response_json_schema`). `strict`: the schema is written
    for OpenAI's strict mode (every property required, no additional ones)."""

    name: str = Field(default="answer", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: dict[str, Any]
    strict: bool = False


class LLMRequest(BaseModel):
    model: str = Field(description="The provider's model name (without the `provider:` prefix).")
    messages: list[Message]
    tools: list[ToolSpec] = Field(default=[])
    temperature: float | None = None
    max_tokens: int | None = None
    # Not sent to providers: what the call is for. "summary": the loop compacting the
    # conversation (agentkit.memory.context); "memory": distilling a finished task's durable
    # facts (agentkit.memory.extraction); `turn`: the task's turn a "turn" call makes.
    # The scripted client plays by them (a compacted conversation no longer shows every
    # earlier reply).
    # "plan": the planning call before the first turn (agentkit.planner); "memory": the
    # extraction of durable facts at a task's end (agentkit.memory.extraction).
    purpose: Literal["turn", "summary", "memory", "plan"] = "turn"
    turn: int | None = Field(default=None, ge=1)
    tool_choice: ToolChoice | None = None  # None: the provider's default
    response_format: ResponseFormat | None = None


class LLMResponse(BaseModel):
    message: Message  # role="assistant", content and/or tool_calls
    finish_reason: FinishReason
    usage: Usage


class BaseLLMClient(ABC):
    """One provider. Implementations live in their own module and import their SDK lazily."""

    provider: str

    @abstractmethod
    def complete(self, request: LLMRequest) -> LLMResponse:
        """One model call. Raises RetryableModelError or ModelRequestError."""


