"""Anthropic's Messages API with client tools, spoken directly over `httpx`.

There is no SDK here on purpose: `import anthropic` (2.x) costs about a second and 3,500
modules on a warm cache (its `__init__` builds thousands of pydantic response types,
Vertex, Bedrock and streaming helpers, and no import path avoids it), which is more than
the whole CallModel function and most of a cold start. The API we use is one POST of a
JSON body, answered by one JSON object, so this module builds the body, sends it with
`httpx` (in the agentkit layer; imported when the client is built) and reads the answer
itself. Importing this module loads neither `httpx` nor any provider SDK.

Decisions worth knowing:

* **Request**: `POST {base_url}/v1/messages` with `x-api-key: <key>` (the header the API
  documents for API keys) and `anthropic-version: 2026-10-21`. That is the version the
  body here is shaped for: the one `anthropic` SDK 2.x speaks, whose request types the
  test fake validates every body against (tests/support/fake_providers.py), and whose
  responses the parsing below reads (e.g. the `refusal` and
  `model_context_window_exceeded` stop reasons). A different version may change the
  shapes, so it changes only together with those tests.
* **Retries** belong to the state machine: one request per call, every failure surfaces
  at once, classified by `wire.error_for_status`: 429 `rate_limit_error` →
  `RateLimitedError` (`retry_after_s` from `retry-after-ms` / `retry-after`, else the
  `anthropic-ratelimit-*-reset` time of the limit that ran out), 529
  `overloaded_error`, 503 and 409 → `OverloadedError`, 408, other 5xx, timeouts and
  connection failures → `ProviderOutageError`, everything else (400 incl. "prompt is too
  long", 401, 403, 404, 413, a 3xx, a missing key) → `ModelRequestError`. A 2xx whose
  body is not a usable message (not JSON, not an object, wrong types) is a
  `ModelRequestError` too ("the response could not be used").
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
* **No temperature**: API version 2026-10-21 refuses `temperature`, `top_p` and `top_k`
  with a 400 on every model, even at their default values. `request.temperature` is a
  sampling hint, so it is left out rather than failing the call.
* **Tool choice and structured output**: `request.tool_choice` becomes `tool_choice`
  (`required` is Anthropic's `any`; sent only with tools); `request.response_format`
  becomes `output_config.format` (`json_schema`, self-contained, objects closed), the
  API's native structured output, which works alongside tools.
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
  are scrubbed from every error message, and transport exceptions are not chained.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelError,
    ModelRequestError,
    ProviderOutageError,
    ToolChoice,
)
from agentkit.llm.tool_schema import anthropic_input_schema, anthropic_output_schema
from agentkit.llm.wire import api_key_from, decode_arguments, error_for_status, import_sdk, scrub
from agentkit.models.domain import FinishReason, Message, ToolCall, Usage

if TYPE_CHECKING:
    import httpx

    from agentkit.config import ProviderConfig

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_TOKENS = 4096
API_VERSION = "2026-10-21"  # see the module docstring

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
        http_client: httpx.Client | None = None,
    ) -> None:
        """`max_tokens`: the output limit when a request sets none. `http_client`: an
        `httpx.Client` to send with (proxies, tests); its own timeout is replaced by
        `timeout_s` per request."""
        if not api_key:
            raise ModelRequestError("ANTHROPIC_API_KEY is not set")
        self._httpx = import_sdk("httpx")  # lazily: see the module docstring
        self._api_key = api_key
        self._max_tokens = max_tokens
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout_s = timeout_s
        self._url = f"{self.base_url}/v1/messages"
        self._headers = {
            "x-api-key": api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }
        self._timeout = self._httpx.Timeout(timeout_s)
        self._http: httpx.Client = http_client or self._httpx.Client(timeout=self._timeout)

    @classmethod
    def from_config(
        cls, config: ProviderConfig, *, http_client: httpx.Client | None = None
    ) -> AnthropicClient:
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
        body = build_request_body(request, default_max_tokens=self._max_tokens)
        response = self._post(body)
        if not response.is_success:
            raise self._status_error(response)
        try:
            return parse_message(response.json())
        except (ValueError, TypeError) as error:  # incl. JSON and pydantic's ValidationError
            raise ModelRequestError(
                self._scrub(f"anthropic: the response could not be used: {error}")
            ) from None

    # --- transport and errors

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        httpx = self._httpx
        try:
            return self._http.post(
                self._url,
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            raise ProviderOutageError("anthropic: the request timed out") from None
        except httpx.TransportError as error:  # refused, reset, a broken response...
            kind = type(error).__name__
            raise ProviderOutageError(f"anthropic: connection error ({kind})") from None
        except httpx.HTTPError as error:  # e.g. an unusable base URL
            text = self._scrub(str(error) or type(error).__name__)
            raise ModelRequestError(f"anthropic: {type(error).__name__}: {text}") from None

    def _status_error(self, response: httpx.Response) -> ModelError:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        text = self._scrub(_api_error_text(body) or response.reason_phrase or "no details")
        return error_for_status(
            f"anthropic: HTTP {response.status_code}: {text}",
            response.status_code,
            response.headers,
            body=body,
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
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["output_config"] = {
            "format": {
                "type": "json_schema",
                "schema": anthropic_output_schema(request.response_format.json_schema),
            }
        }
    # request.temperature is not sent: see the module docstring.
    return body


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    """Anthropic's words: `auto`, `any` (at least one tool), `none`, `tool` with a name."""
    if choice.mode == "tool":
        return {"type": "tool", "name": choice.name}
    return {"type": "any" if choice.mode == "required" else choice.mode}


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
    """A Messages API `message` object (decoded JSON) → the normalized response;
    ValueError / TypeError when it is not one."""
    if not isinstance(message, dict):
        raise ValueError(f"a JSON {type(message).__name__}, not a message object")
    blocks = message.get("content") or []
    if not isinstance(blocks, list):
        raise ValueError(f"`content` is a JSON {type(blocks).__name__}, not a list of blocks")
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text = block.get("text") or ""
            if not isinstance(text, str):
                raise ValueError(f"a text block's `text` is a JSON {type(text).__name__}")
            texts.append(text)
        elif kind == "tool_use":
            tool_calls.append(
                ToolCall(
                    id=block.get("id"),
                    name=block.get("name"),
                    arguments=_tool_arguments(block.get("input")),
                )
            )
    content = "".join(texts) if texts else None
    stop_reason = message.get("stop_reason")
    finish = _FINISH_REASONS.get(stop_reason, "other") if isinstance(stop_reason, str) else None
    return LLMResponse(
        message=Message(role="assistant", content=content, tool_calls=tool_calls),
        finish_reason=finish or "other",
        usage=_parse_usage(message.get("usage")),
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
    if not isinstance(usage, dict):
        return Usage(model_calls=1)
    cache_read = _tokens(usage, "cache_read_input_tokens")
    cache_write = _tokens(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_tokens(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=_tokens(usage, "output_tokens"),
        cached_tokens=cache_read,
        cost_usd=0.0,
        model_calls=1,
    )


def _tokens(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"usage.{name} is {value!r}, not a whole number")
    return value


# --- error details


def _api_error_text(body: Any) -> str:
    """The API's own message and error type from `{"type": "error", "error": {...}}`, else
    the body's text (a proxy's HTML page); "" when there is nothing to show."""
    if isinstance(body, dict):
        detail = body.get("error")
        if isinstance(detail, dict):
            message = detail.get("message")
            kind = detail.get("type")
            if isinstance(message, str) and message:
                return f"{message} ({kind})" if isinstance(kind, str) and kind else message
        return json.dumps(body, ensure_ascii=False)[:500]
    if isinstance(body, str):
        return body.strip()
    return json.dumps(body, ensure_ascii=False)[:500]
