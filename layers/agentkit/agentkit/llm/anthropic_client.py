"""Anthropic through the official `anthropic` SDK (the Messages API with client tools).

The SDK is imported lazily, in `AnthropicClient.__init__`: importing this module costs
nothing, and a deployment without the SDK fails only for tasks that ask for Anthropic.

Decisions worth knowing:

* **Retries** belong to the state machine, so the SDK client is built with
  `max_retries=0`; every failure surfaces at once, classified by `wire.error_for_status`:
  429 `rate_limit_error` → `RateLimitedError` (`retry_after_s` from `retry-after-ms` /
  `retry-after`, else the `anthropic-ratelimit-*-reset` time of the limit that ran
  out), 529 `overloaded_error`, 503 and 409 → `OverloadedError`, 408, other 5xx,
  timeouts and connection failures → `ProviderOutageError`, everything else (400 incl.
  "prompt is too long", 401, 403, 404, 413, a missing key, a missing SDK) →
  `ModelRequestError`.
* **Conversation shape**: system messages become the `system` parameter (several are
  joined with a blank line, wherever they stand). Assistant tool calls become
  `tool_use` blocks; tool results become `tool_result` blocks (`is_error: true` only
  when the result is an error) in a *user* message. Consecutive messages of the same
  wire role are merged into one message, so the tool results of one turn (and a user
  message that follows them) travel as ONE user message, tool results first, as the
  API requires. A message with a single text block is sent as a plain string. Empty
  text is never sent as a block (the API rejects empty text blocks), and an assistant
  turn with neither text nor tool calls is dropped.
* **Output limit**: Anthropic requires `max_tokens`: `request.max_tokens`, else
  `ANTHROPIC_MAX_TOKENS`, else 4096.
* **No temperature**: the SDK (2.x) speaks API version 2026-10-21, which refuses
  `temperature`, `top_p` and `top_k` with a 400 on every model, even at their default
  values, and the SDK no longer has those parameters. `request.temperature` is a
  sampling hint, so it is left out rather than failing the call. (The SDK also sends
  the key as `Authorization: Bearer`, not `x-api-key`; gateways behind
  `ANTHROPIC_BASE_URL` must accept that.)
* **Tool schemas** go out as `tool_schema.anthropic_input_schema` shapes them: an object at
  the top (no top-level `anyOf`/`oneOf`/`allOf`, which the API refuses), references
  inlined; everything else as the tool published it.
* **Tool arguments**: `tool_use.input` is already an object. Anything else never fails
  the call: a string is decoded as JSON text, other values become
  `{INVALID_ARGUMENTS_KEY: "<what was wrong>"}` like the OpenAI client's malformed
  arguments, so the tool step answers with an error result the model can act on.
* **Finish reason**: `end_turn`/`stop_sequence` → stop, `tool_use` → tool_calls,
  `max_tokens` and `model_context_window_exceeded` → length (the answer was cut off
  either way), `refusal` → content_filter, anything else (`pause_turn`, unknown) →
  other. Text blocks are joined into `content`; other block types (thinking, server
  tools) are ignored: agentkit enables neither.
* **Usage**: Anthropic reports `input_tokens` *without* the cached part and counts
  cache reads and cache writes separately; our `input_tokens` is the whole prompt, as
  OpenAI's `prompt_tokens` is, so it is the sum of the three. `cached_tokens` is
  `cache_read_input_tokens`. `cost_usd` stays 0.0 here.
* **Secrets**: no message built here contains the API key; the key and key-like tokens
  are scrubbed from every error message, and SDK exceptions are not chained.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agentkit.llm.base import BaseLLMClient, LLMRequest, LLMResponse, ModelError, ModelRequestError
from agentkit.llm.tool_schema import anthropic_input_schema
from agentkit.llm.wire import (
    api_key_from,
    decode_arguments,
    import_sdk,
    map_sdk_error,
    scrub,
)
from agentkit.models.domain import FinishReason, Message, ToolCall, Usage

if TYPE_CHECKING:
    from agentkit.config import ProviderConfig

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_TOKENS = 4096

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


class AnthropicClient(BaseLLMClient):
    provider = "anthropic"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        http_client: Any = None,
    ) -> None:
        """`max_tokens`: the output limit when a request sets none. `http_client`: an
        `httpx2.Client` for the SDK (proxies, tests); this SDK refuses `httpx` objects."""
        if not api_key:
            raise ModelRequestError("ANTHROPIC_API_KEY is not set")
        anthropic = import_sdk("anthropic")
        self._anthropic = anthropic
        self._api_key = api_key
        self._max_tokens = max_tokens
        # Always pass base_url: given None, the SDK would read ANTHROPIC_BASE_URL itself,
        # and an empty value there would become an empty base URL. An explicit api_key
        # also keeps the SDK from looking for other credentials (profiles, tokens).
        self._sdk = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url or DEFAULT_BASE_URL,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
        )

    @classmethod
    def from_config(cls, config: ProviderConfig, *, http_client: Any = None) -> AnthropicClient:
        """`config.anthropic` (base URL, timeout, default max_tokens) and
        `ANTHROPIC_API_KEY` (required), resolved now."""
        endpoint = config.anthropic
        return cls(
            api_key_from(config.secret_sources, "ANTHROPIC_API_KEY"),
            base_url=endpoint.base_url,
            timeout_s=endpoint.timeout_s,
            max_tokens=endpoint.max_tokens,
            http_client=http_client,
        )

    def complete(self, request: LLMRequest) -> LLMResponse:
        try:
            message = self._sdk.messages.create(
                **build_request_body(request, default_max_tokens=self._max_tokens)
            )
        except self._anthropic.AnthropicError as error:
            raise self._map_error(error) from None
        try:
            return parse_message(message)
        except ValidationError as error:
            raise ModelRequestError(
                self._scrub(f"anthropic: the response could not be used: {error}")
            ) from None

    # --- errors

    def _map_error(self, error: Exception) -> ModelError:
        anthropic = self._anthropic
        return map_sdk_error(
            self.provider,
            error,
            timeout_types=anthropic.APITimeoutError,  # a subclass of the connection error
            connection_types=anthropic.APIConnectionError,
            status_types=anthropic.APIStatusError,
            text_of=_api_error_text,
            scrub=self._scrub,
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._api_key])


# --- request


def build_request_body(
    request: LLMRequest, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """The keyword arguments for `messages.create` (= the JSON body sent)."""
    system = [m.content for m in request.messages if m.role == "system" and m.content]
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _wire_blocks(message)
        if not blocks and role == "assistant":
            continue  # nothing to say; an empty assistant message would be refused
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # keep the roles alternating
        else:
            messages.append({"role": role, "content": blocks})
    for wire in messages:
        wire["content"] = _collapse(wire["content"])
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.tools:
        body["tools"] = [
            {
                "name": spec.name,
                "description": spec.description,
                "input_schema": anthropic_input_schema(spec.parameters),
            }
            for spec in request.tools
        ]
    # request.temperature is not sent: see the module docstring.
    return body


def _wire_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:  # `content` is optional; an empty one is left out
            block["content"] = message.content
        if message.is_error:
            block["is_error"] = True
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content and message.content.strip():
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def _collapse(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone text block → a plain string; no blocks → "" (the API then says what is wrong)."""
    if not blocks:
        return ""
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks


# --- response


def parse_message(message: Any) -> LLMResponse:
    """An SDK `Message` → the normalized response."""
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    for block in message.content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text or "")
        elif kind == "tool_use":
            tool_calls.append(
                ToolCall(id=block.id, name=block.name, arguments=_tool_arguments(block.input))
            )
    content = "".join(texts) if texts else None
    return LLMResponse(
        message=Message(role="assistant", content=content, tool_calls=tool_calls),
        finish_reason=_FINISH_REASONS.get(message.stop_reason or "", "other"),
        usage=_parse_usage(message.usage),
    )


def _tool_arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    if isinstance(value, str):  # JSON text instead of an object (a proxy re-encoding it)
        return decode_arguments(value)
    return decode_arguments(json.dumps(value, ensure_ascii=False, default=str))


def _parse_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(model_calls=1)
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
        cost_usd=0.0,
        model_calls=1,
    )


# --- error details


def _api_error_text(error: Any) -> str:
    """The API's own message and error type from `{"type": "error", "error": {...}}`."""
    body = error.body
    if isinstance(body, dict):
        detail = body.get("error")
        if isinstance(detail, dict):
            message = detail.get("message")
            kind = detail.get("type")
            if isinstance(message, str) and message:
                return f"{message} ({kind})" if isinstance(kind, str) and kind else message
    if isinstance(body, str) and body.strip():
        return body.strip()
    return str(getattr(error, "message", "") or type(error).__name__)
