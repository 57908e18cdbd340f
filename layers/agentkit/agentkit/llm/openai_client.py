"""OpenAI through the official `openai` SDK (Chat Completions with function tools).

The SDK is imported lazily, in `OpenAIClient.__init__`: importing this module costs
nothing, and a deployment without the SDK fails only for tasks that ask for OpenAI.

Decisions worth knowing:

* **Retries** belong to the state machine, so the SDK client is built with
  `max_retries=0`; every failure surfaces at once, classified by `wire.error_for_status`:
  429 → `RateLimitedError` (`retry_after_s` from `retry-after-ms` / `retry-after`, else
  the `x-ratelimit-reset-requests` / `-tokens` durations of the limit that ran out;
  `insufficient_quota` is billing, so fatal), 503 and 409 → `OverloadedError`, 408,
  other 5xx, timeouts and connection failures → `ProviderOutageError`, everything else
  (400 incl. `context_length_exceeded`, 401, 403, 404, 422, a missing key, a missing
  SDK) → `ModelRequestError`.
* **Output limit** goes out as `max_completion_tokens`: the SDK documents `max_tokens`
  as deprecated on Chat Completions and the reasoning models (o-series, gpt-5) reject
  it. OpenAI-compatible servers behind `OPENAI_BASE_URL` that only know `max_tokens`
  would ignore or refuse it.
* **Malformed tool arguments** (not JSON, or JSON that is not an object) never fail
  the call: the tool call is kept and its arguments become
  `{INVALID_ARGUMENTS_KEY: "<what was wrong, with the raw text>"}`, so the tool step
  can answer with an error tool result naming the problem and the model can retry.
  An empty argument string counts as `{}`.
* **Finish reason**: OpenAI's values map one to one (`function_call` → `tool_calls`,
  anything unknown → `other`); a reply that carries tool calls but says `stop` (as
  OpenAI does when `tool_choice` forces a function) is reported as `tool_calls`.
* **Usage**: `input_tokens` is OpenAI's `prompt_tokens`, which *includes* the cached
  ones; `cached_tokens` is the cached subset. `cost_usd` stays 0.0 until a price table
  exists.
* **Tool choice and structured output**: `request.tool_choice` becomes `tool_choice`
  (`auto`/`required`/`none`, or `{"type": "function", ...}`; sent only with tools, which
  the API requires); `request.response_format` becomes `response_format` `json_schema`
  (its `strict` as given: a caller's schema is rarely written for strict mode, so the
  answer is validated by the loop either way).
* **Tool schemas** go out as `tool_schema.openai_parameters` shapes them (an object at the
  top, objects with `properties`, arrays with `items`, references inlined): MCP servers
  publish schemas the API would refuse with a 400 for the whole request. A subclass for
  another OpenAI-compatible API overrides `tool_parameters`.
* **Secrets**: no message built here contains the API key. OpenAI's own 401 message
  echoes a masked key (`sk-proj-****…Ab1c`); key-like tokens and the key itself are
  scrubbed from every error message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelError,
    ModelRequestError,
    ToolChoice,
)
from agentkit.llm.tool_schema import openai_parameters
from agentkit.llm.wire import (
    api_key_from,
    decode_arguments,
    import_sdk,
    map_sdk_error,
    scrub,
)
from agentkit.models.domain import FinishReason, Message, ToolCall, Usage

if TYPE_CHECKING:
    from agentkit.config import ProviderConfig, ProviderEndpoint

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_S = 60.0


_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


class OpenAIClient(BaseLLMClient):
    """Also the base of OpenAI-compatible providers (see `openrouter_client`): they set
    `provider` (error-message prefix), `env_prefix` (`<PREFIX>_API_KEY`, `_BASE_URL`,
    `_TIMEOUT_S`) and `default_base_url`."""

    provider = "openai"
    env_prefix = "OPENAI"
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: Any = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        """`http_client`: an `httpx2.Client` or `httpx.Client` for the SDK (proxies, tests);
        `default_headers`: extra headers sent with every request."""
        if not api_key:
            raise ModelRequestError(f"{self.env_prefix}_API_KEY is not set")
        openai = import_sdk("openai")
        self._openai = openai
        self._api_key = api_key
        # Always pass base_url: given None, the SDK would read OPENAI_BASE_URL itself,
        # and an empty value there would become an empty base URL.
        self._sdk = openai.OpenAI(
            api_key=api_key,
            base_url=base_url or self.default_base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
            default_headers=default_headers,
        )

    @classmethod
    def from_config(
        cls, config: ProviderConfig, *, http_client: Any = None, **options: Any
    ) -> Self:
        """The endpoint of `config` (`config.openai`; other providers per `provider`) and
        the key `<env_prefix>_API_KEY` (required), resolved now. `options` go to the
        constructor as they are."""
        endpoint: ProviderEndpoint = getattr(config, cls.provider)
        api_key = api_key_from(config.secret_sources, f"{cls.env_prefix}_API_KEY")
        return cls(
            api_key,
            base_url=endpoint.base_url,
            timeout_s=endpoint.timeout_s,
            http_client=http_client,
            **options,
        )

    def complete(self, request: LLMRequest) -> LLMResponse:
        try:
            body = build_request_body(request, tool_parameters=self.tool_parameters)
            raw = self._sdk.chat.completions.with_raw_response.create(**body)
            completion = raw.parse()
        except self._openai.OpenAIError as error:
            raise self._map_error(error) from None
        failure = self.error_in_body(completion, raw.headers)
        if failure is not None:
            raise failure
        try:
            return parse_completion(completion, provider=self.provider)
        except ValidationError as error:
            raise ModelRequestError(
                self._scrub(f"{self.provider}: the response could not be used: {error}")
            ) from None

    def tool_parameters(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A tool's input schema as this API takes it as `parameters`."""
        return openai_parameters(schema)

    # --- errors

    def error_in_body(self, completion: Any, headers: Any) -> ModelError | None:
        """An error the API reports inside an HTTP 200 (OpenRouter does); None here."""
        return None

    def _map_error(self, error: Exception) -> ModelError:
        openai = self._openai
        return map_sdk_error(
            self.provider,
            error,
            timeout_types=openai.APITimeoutError,
            connection_types=openai.APIConnectionError,
            status_types=openai.APIStatusError,
            text_of=_api_error_text,
            scrub=self._scrub,
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._api_key])


# --- request


def build_request_body(
    request: LLMRequest,
    *,
    tool_parameters: Callable[[dict[str, Any]], dict[str, Any]] = openai_parameters,
) -> dict[str, Any]:
    """The keyword arguments for `chat.completions.create` (= the JSON body sent);
    `tool_parameters` shapes each tool's input schema for the API."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_wire_message(message) for message in request.messages],
    }
    if request.tools:  # the API rejects an empty `tools` array
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": tool_parameters(spec.parameters),
                },
            }
            for spec in request.tools
        ]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.response_format.name,
                "schema": request.response_format.json_schema,
                "strict": request.response_format.strict,
            },
        }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_completion_tokens"] = request.max_tokens
    return body


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    """`auto` / `required` / `none`, or the named function."""
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        # Chat Completions has no error flag on tool results: the content says it.
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": message.content or "",
        }
    if message.role == "assistant":
        wire: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:  # the API rejects an empty `tool_calls` array
            wire["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in message.tool_calls
            ]
        elif message.content is None:
            wire["content"] = ""
        return wire
    return {"role": message.role, "content": message.content or ""}


# --- response


def parse_completion(completion: Any, *, provider: str = "openai") -> LLMResponse:
    """An SDK `ChatCompletion` → the normalized response."""
    if not completion.choices:
        raise ModelRequestError(f"{provider}: the response has no choices")
    choice = completion.choices[0]
    wire = choice.message
    tool_calls = [_parse_tool_call(call) for call in (wire.tool_calls or [])]
    content = wire.content
    if not content and getattr(wire, "refusal", None):
        content = wire.refusal
    finish_reason = _FINISH_REASONS.get(choice.finish_reason or "", "other")
    if tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return LLMResponse(
        message=Message(role="assistant", content=content, tool_calls=tool_calls),
        finish_reason=finish_reason,
        usage=_parse_usage(completion.usage),
    )


def _parse_tool_call(call: Any) -> ToolCall:
    function = getattr(call, "function", None)
    if function is not None:
        name, raw = function.name, function.arguments
    else:  # a non-function (custom) tool call; agentkit never declares those
        name, raw = getattr(call, "name", "") or "unknown", getattr(call, "input", "")
    return ToolCall(id=call.id, name=name, arguments=decode_arguments(raw))


def _parse_usage(usage: Any) -> Usage:
    if usage is None:  # some OpenAI-compatible servers omit it
        return Usage(model_calls=1)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=cached or 0,
        cost_usd=0.0,
        model_calls=1,
    )


# --- error details


def _api_error_text(error: Any) -> str:
    """The API's own error message (and code), not the SDK's dump of the whole body."""
    body = error.body
    if isinstance(body, dict):
        message = body.get("message")
        code = body.get("code") or body.get("type")
        if isinstance(message, str) and message:
            return f"{message} ({code})" if isinstance(code, str) and code else message
    if isinstance(body, str) and body.strip():
        return body.strip()
    return str(getattr(error, "message", "") or type(error).__name__)
