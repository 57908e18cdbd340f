"""Google Gemini through the official `google-genai` SDK (Gemini API `generateContent`).

The SDK is imported lazily, in `GoogleClient.__init__` (and by the request builder
it calls): importing this module costs nothing, and a deployment without the SDK
fails only for tasks that ask for Google.

Decisions worth knowing:

* **Endpoint**: the Gemini Developer API with an API key (`x-goog-api-key`), always
  `vertexai=False` and API version `v1beta` (`POST {base}/v1beta/models/{model}:
  generateContent`), so `GOOGLE_GENAI_USE_VERTEXAI` / `GOOGLE_GENAI_API_VERSION` in the
  environment cannot silently redirect calls. `v1beta` is where function-call ids and
  `parametersJsonSchema` live; the SDK's own default is `v1`.
* **One call, one request**: retries belong to the state machine, so the SDK gets
  `HttpRetryOptions(attempts=1)` (its default of "no retry_options" means no retries
  too, but the explicit value survives a change of default). Automatic function
  calling is disabled (the agent loop runs tools; agentkit never hands the SDK a
  Python callable anyway) and so is automatic continuation, which would otherwise
  send follow-up requests inside one `complete()`; a `CONTINUATION` finish is
  reported as `length`.
* **Errors**: `google.genai.errors.APIError` is classified by `wire.error_for_status`
  (the table there): 429 `RESOURCE_EXHAUSTED` → `RateLimitedError`, 503 `UNAVAILABLE`
  → `OverloadedError`, 409 `ABORTED` → `OverloadedError`, 408 / other 5xx →
  `ProviderOutageError`, every other status (400 `INVALID_ARGUMENT` incl. a prompt over
  the context window, 401, 403, 404) → `ModelRequestError`. The wait comes from
  `retry-after-ms` / `retry-after` headers and, since the Gemini API usually sends
  neither, from the `google.rpc.RetryInfo` `retryDelay` in the error details. Timeouts
  and connection failures (the SDK lets httpx2/httpx exceptions through) are
  `ProviderOutageError`. A prompt blocked by safety filters
  (no candidates, `promptFeedback.blockReason`) is a `ModelRequestError` naming the
  reason: the same prompt would be blocked again.
* **Tools** are declared with `parameters_json_schema` (JSON Schema; the OpenAPI-subset
  `parameters` field rejects far more), shaped by `tool_schema.gemini_parameters` into the
  JSON Schema subset the Gemini API documents: references inlined, `oneOf`/`allOf`/`const`
  rewritten, `default` moved into the description, other keywords dropped. A tool without
  parameters declares none. Arguments are still validated against the original schema.
* **Tool choice and structured output**: `request.tool_choice` becomes the
  `function_calling_config` mode (AUTO by default, `required` ANY, `tool` ANY with that
  one allowed name, `none` NONE); `request.response_format` becomes
  `response_mime_type: application/json` with `response_json_schema` (reduced to the
  subset Gemini documents), Gemini's native structured output; not for models before
  Gemini 3 when tools are declared and may be called (they refuse the two together), where
  the loop's validation and repair turn do the work alone.
* **Contents**: system messages become `system_instruction` (joined by blank lines);
  user → role `user`; assistant → role `model` with a text part and `function_call`
  parts (with our call ids); consecutive tool results → one role `user` content of
  `function_response` parts (`{"result": ...}`, or `{"error": ...}` when `is_error`),
  as Gemini wants all answers to a parallel call in one turn. Empty messages are
  left out: Gemini rejects contents without parts and empty text parts.
* **Thought signatures**: Gemini 3 models answer 400 when a replayed function call
  lacks the `thoughtSignature` they attached to it, and agentkit's `ToolCall` has
  nowhere to keep the real one. The first `function_call` of each replayed model turn
  carries Google's documented placeholder `skip_thought_signature_validator` (which
  also covers history written by another provider after a failover); older models
  ignore it. The cost: the model does not get its earlier reasoning back.
* **Tool call ids**: the call's own `id` when Gemini sends one, else `call_<n>` (n
  counting from 1 within the reply); the loop makes them unique per turn. Gemini
  sends arguments as a JSON object, so there is no argument text to decode.
* **Finish reason**: `STOP` → `stop` (`tool_calls` when the reply has function calls,
  which Gemini also ends with `STOP`); `MAX_TOKENS`/`CONTINUATION` → `length`; the
  safety family (`SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`,
  the `IMAGE_*` variants, `MODEL_ARMOR`) → `content_filter`; anything else (e.g.
  `MALFORMED_FUNCTION_CALL`) → `other`. Text parts are joined; `thought` parts are
  skipped.
* **Usage**: `input_tokens` is `promptTokenCount`, which *includes* the cached tokens;
  `cached_tokens` is `cachedContentTokenCount`; `output_tokens` is
  `candidatesTokenCount` **plus** `thoughtsTokenCount`, since thinking tokens are
  billed as output. `cost_usd` stays 0.0 here (the router prices calls).
* **Secrets**: no message built here contains the API key; the key itself and
  anything key-shaped (`AIza...`) are scrubbed from every error message, and SDK
  exceptions (which carry the raw response) are never chained.
"""

from __future__ import annotations

import base64
import importlib
from typing import TYPE_CHECKING, Any

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelError,
    ModelRequestError,
    ToolChoice,
)
from agentkit.llm.tool_schema import gemini_parameters, gemini_response_schema
from agentkit.llm.wire import (
    api_key_from,
    import_sdk,
    map_sdk_error,
    scrub,
)
from agentkit.models.domain import FinishReason, Message, ToolCall, Usage

if TYPE_CHECKING:
    from agentkit.config import ProviderConfig

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
API_VERSION = "v1beta"
DEFAULT_TIMEOUT_S = 60.0

# Google's documented stand-in for a thought signature the client does not have. The
# SDK base64-encodes `thought_signature` bytes, so these bytes put the literal
# placeholder string on the wire.
SKIP_THOUGHT_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}



class GoogleClient(BaseLLMClient):
    provider = "google"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: Any = None,
    ) -> None:
        """`http_client`: an `httpx2.Client` or `httpx.Client` for the SDK (proxies, tests)."""
        if not api_key:
            raise ModelRequestError("GOOGLE_API_KEY (or GEMINI_API_KEY) is not set")
        genai = import_sdk("google.genai", "google-genai")
        errors = import_sdk("google.genai.errors", "google-genai")
        types = import_sdk("google.genai.types", "google-genai")
        self._errors = errors
        self._api_key = api_key
        self._timeout_errors, self._transport_errors = _transport_exceptions()
        # Also mapped by `map_sdk_error`: SDK-side validation, or a body that is not a
        # usable response (not transient).
        self._mapped_errors: _Exceptions = (
            *self._timeout_errors,
            *self._transport_errors,
            ValueError,
            TypeError,
        )
        # Always pass base_url: given None, the SDK would read GOOGLE_GEMINI_BASE_URL.
        http_options = types.HttpOptions(
            base_url=base_url or DEFAULT_BASE_URL,
            api_version=API_VERSION,
            timeout=max(1, round(timeout_s * 1000)),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),
            httpx_client=http_client,
        )
        try:
            self._sdk = genai.Client(vertexai=False, api_key=api_key, http_options=http_options)
        except ValueError as error:
            raise ModelRequestError(self._scrub(f"google: bad client settings: {error}")) from None

    @classmethod
    def from_config(cls, config: ProviderConfig, *, http_client: Any = None) -> GoogleClient:
        """`config.google` (base URL, timeout) and `GOOGLE_API_KEY`, else `GEMINI_API_KEY`
        (one required), resolved now."""
        api_key = api_key_from(config.secret_sources, "GOOGLE_API_KEY", "GEMINI_API_KEY")
        endpoint = config.google
        return cls(api_key, base_url=endpoint.base_url, timeout_s=endpoint.timeout_s,
                   http_client=http_client)

    def complete(self, request: LLMRequest) -> LLMResponse:
        try:
            contents, config = build_request(request)
            response = self._sdk.models.generate_content(
                model=request.model, contents=contents, config=config
            )
        except self._errors.APIError as error:
            raise self._map_api_error(error) from None
        except self._mapped_errors as error:
            raise map_sdk_error(
                self.provider,
                error,
                timeout_types=self._timeout_errors,
                connection_types=self._transport_errors,
                cause_of=lambda transport_error: transport_error,  # it names itself
                scrub=self._scrub,
            ) from None
        try:
            return parse_response(response)
        except ValueError as error:  # incl. pydantic's ValidationError
            raise ModelRequestError(
                self._scrub(f"google: the response could not be used: {error}")
            ) from None

    # --- errors

    def _map_api_error(self, error: Any) -> ModelError:
        return map_sdk_error(
            self.provider,
            error,
            status_types=self._errors.APIError,
            status_of=lambda api_error: api_error.code if isinstance(api_error.code, int) else 0,
            label_of=lambda api_error: str(api_error.status or ""),
            text_of=lambda api_error: str(api_error.message or "") or type(api_error).__name__,
            headers_of=lambda api_error: getattr(api_error.response, "headers", None),
            body_of=lambda api_error: api_error.details,  # RetryInfo lives here
            scrub=self._scrub,
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._api_key])


_Exceptions = tuple[type[BaseException], ...]


def _transport_exceptions() -> tuple[_Exceptions, _Exceptions]:
    """(timeouts, other transport failures) of whichever of httpx2 / httpx is installed;
    the SDK uses httpx2 by default and httpx with `GOOGLE_GENAI_HTTP_CLIENT=httpx`."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


# --- request


def build_request(request: LLMRequest) -> tuple[list[Any], Any]:
    """The `contents` and `config` for `models.generate_content`."""
    from google.genai import types

    system = [m.content for m in request.messages if m.role == "system" and m.content]
    config: dict[str, Any] = {
        "system_instruction": "\n\n".join(system) if system else None,
        "temperature": request.temperature,
        "max_output_tokens": request.max_tokens,
        # The agent loop runs the tools and owns every follow-up request.
        "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
        "automatic_continuation": False,
    }
    if request.tools:  # an empty function_declarations list is rejected
        config["tools"] = [
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name=spec.name,
                        description=spec.description,
                        parameters_json_schema=gemini_parameters(spec.parameters),
                    )
                    for spec in request.tools
                ]
            )
        ]
        config["tool_config"] = types.ToolConfig(
            function_calling_config=_function_calling(request.tool_choice or ToolChoice())
        )
    if request.response_format is not None and _structured_output_fits(request):
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = gemini_response_schema(
            request.response_format.json_schema
        )
    return build_contents(request.messages), types.GenerateContentConfig(**config)


def _structured_output_fits(request: LLMRequest) -> bool:
    """Gemini before 3 refuses a response schema beside function declarations (unless no
    call may be made): the loop then validates the answer without the native help."""
    if not request.tools or (request.tool_choice is not None
                             and request.tool_choice.mode == "none"):
        return True
    return not request.model.startswith(("gemini-1", "gemini-2"))


def _function_calling(choice: ToolChoice) -> Any:
    """Gemini's words: AUTO, ANY (at least one call; with one allowed name: that tool),
    NONE."""
    from google.genai import types

    modes = types.FunctionCallingConfigMode
    if choice.mode == "tool":
        assert choice.name is not None
        return types.FunctionCallingConfig(mode=modes.ANY, allowed_function_names=[choice.name])
    mode = {"auto": modes.AUTO, "required": modes.ANY, "none": modes.NONE}[choice.mode]
    return types.FunctionCallingConfig(mode=mode)


def build_contents(messages: list[Message]) -> list[Any]:
    """Our conversation (system messages excluded) as Gemini `Content`s."""
    from google.genai import types

    contents: list[types.Content] = []
    call_names: dict[str, str] = {}  # call id → tool name, for results without a name
    previous: Message | None = None
    for message in messages:
        after_tool_result, previous = previous is not None and previous.role == "tool", message
        if message.role == "system":
            continue
        if message.role == "tool":
            call_id = message.tool_call_id or ""
            key = "error" if message.is_error else "result"
            part = types.Part(
                function_response=types.FunctionResponse(
                    id=call_id,
                    name=message.name or call_names.get(call_id) or "unknown",
                    response={key: message.content or ""},
                )
            )
            if after_tool_result and contents:  # answers to one turn's calls travel together
                contents[-1].parts = [*(contents[-1].parts or []), part]
            else:
                contents.append(types.Content(role="user", parts=[part]))
            continue
        parts: list[types.Part] = []
        if message.content:
            parts.append(types.Part(text=message.content))
        if message.role == "assistant":
            for index, call in enumerate(message.tool_calls):
                call_names[call.id] = call.name
                parts.append(
                    types.Part(
                        function_call=types.FunctionCall(
                            id=call.id, name=call.name, args=call.arguments
                        ),
                        thought_signature=SKIP_THOUGHT_SIGNATURE if index == 0 else None,
                    )
                )
        if parts:
            contents.append(
                types.Content(role="model" if message.role == "assistant" else "user", parts=parts)
            )
    return contents


# --- response


def parse_response(response: Any) -> LLMResponse:
    """An SDK `GenerateContentResponse` → the normalized response."""
    if not response.candidates:
        feedback = response.prompt_feedback
        reason = _enum_name(getattr(feedback, "block_reason", None))
        if reason:
            detail = getattr(feedback, "block_reason_message", None)
            suffix = f": {detail}" if detail else ""
            raise ModelRequestError(f"google: the prompt was blocked ({reason}){suffix}")
        raise ModelRequestError("google: the response has no candidates")
    candidate = response.candidates[0]
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    parts = candidate.content.parts if candidate.content is not None else None
    for part in parts or []:
        if part.thought:
            continue
        if part.function_call is not None:
            call = part.function_call
            tool_calls.append(
                ToolCall(
                    id=call.id or f"call_{len(tool_calls) + 1}",
                    name=call.name or "unknown",
                    arguments=call.args or {},
                )
            )
        elif part.text:
            texts.append(part.text)
    finish_reason = _FINISH_REASONS.get(_enum_name(candidate.finish_reason) or "", "other")
    if tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return LLMResponse(
        message=Message(role="assistant", content="".join(texts) or None, tool_calls=tool_calls),
        finish_reason=finish_reason,
        usage=_parse_usage(response.usage_metadata),
    )


def _parse_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(model_calls=1)
    return Usage(
        input_tokens=usage.prompt_token_count or 0,
        output_tokens=(usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0),
        cached_tokens=usage.cached_content_token_count or 0,
        cost_usd=0.0,
        model_calls=1,
    )


def _enum_name(value: Any) -> str | None:
    """`FinishReason.STOP` / `"STOP"` → `"STOP"`; None stays None."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
