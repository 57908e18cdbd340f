"""A loopback server that speaks each provider's real wire format, replaying scripted replies.

Routes (the base URLs handed to the deployed LLM function):
  POST /openai/v1/chat/completions          OpenAI Chat Completions
  POST /openrouter/api/v1/chat/completions  OpenRouter (OpenAI format)
  POST /anthropic/v1/messages               Anthropic Messages
  POST /google/v1beta/models/<m>:generateContent   Gemini API

Each provider has a queue of replies (`Reply`), rendered in that provider's format, and a
log of the requests received (`Received`: path, headers, JSON body, the status answered,
whether the request was above a rate limit) for assertions. It binds 127.0.0.1 on a free
port and is started and stopped by the tests.

It is strict and can play every fault a provider has:

* **Errors** (`Reply(error_status=...)`) carry the body and headers the real API sends for
  that status: OpenAI `{"error": {"message", "type", "param", "code"}}`, Anthropic
  `{"type": "error", "error": {"type": "rate_limit_error" | ...}}`, Google
  `{"error": {"code", "message", "status": "RESOURCE_EXHAUSTED" | ..., "details"}}`,
  OpenRouter `{"error": {"code", "message", "metadata"}}`. `retry_after_s` on a 429 is
  written the provider's way: `retry-after` plus OpenAI's `x-ratelimit-*` (Go durations)
  or Anthropic's `anthropic-ratelimit-*` (RFC 3339 times), or Google's `RetryInfo`.
  `headers` adds response headers (a None value removes one the fake would send), so a
  test can leave only the reset headers. OpenRouter's errors inside an HTTP 200:
  `Reply(error_status=429, in_body="error")` (the body is the error) or `in_body="choice"`
  (a choice with `finish_reason: "error"`).
* **Rate limits**: `limit(provider, rpm=3, tpm=..., window_s=60)` enforces requests and
  (roughly counted, `estimate_tokens`) prompt tokens per sliding window; a request above
  it gets the provider's 429 with `Retry-After` (seconds until it would fit) and the
  rate-limit headers (every answer carries them: the limit per minute, what remains, and
  when it is wholly replenished, as the real APIs document them), is logged with
  `above_limit=True`, and consumes no scripted reply.
* **Outages**: `outage(provider, seconds=5, status=503)` answers every request with that
  status until the time is up (no scripted reply consumed); `end_outage` ends it early.
* **Responders**: `respond(provider, fn)` answers with `fn(body)` whenever no scripted
  reply is queued, for conversations whose shape the test cannot foresee (a compaction's
  summary calls come when the conversation outgrows its window).
* **Request validation**: each body is checked against the SDKs' own request types
  (openai `CompletionCreateParamsNonStreaming`, anthropic `MessageCreateParamsNonStreaming`,
  google `Content` / `GenerationConfig` / `Tool` / `ToolConfig`), unknown fields refused;
  a bad body gets the provider's 400 naming the field (`FakeProviders(validate=False)`
  turns this off).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

PROVIDERS = ("openai", "openrouter", "anthropic", "google")


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    input_tokens: int = 100
    output_tokens: int = 20
    cached_tokens: int = 0
    # An HTTP error instead of an answer, in the provider's error shape.
    error_status: int | None = None
    error_message: str = ""  # empty: the provider's usual text for the status
    # The provider's own error type/code; default: what its API uses for the status.
    # OpenAI 429: "requests" / "tokens" (which limit ran out) or "insufficient_quota".
    error_type: str | None = None
    # On an error (a 429 above all): the wait, written the provider's way.
    retry_after_s: float | None = None
    # Response headers to add or override; None removes one the fake would send.
    headers: dict[str, str | None] = field(default_factory=dict)
    # OpenRouter: the error inside an HTTP 200, as the body or as a choice's error.
    in_body: Literal["error", "choice"] | None = None


@dataclass
class Received:
    provider: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0  # the status answered
    above_limit: bool = False  # refused by the fake's rate limit (answered 429)
    tokens: int = 0  # the request's tokens as the limit counts them
    at: float = 0.0  # time.monotonic() on arrival


@dataclass
class Limit:
    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str | None] = field(default_factory=dict)


# --- success bodies


def openai_body(reply: Reply, turn: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None,
                               "annotations": []}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{turn}_{i}abc", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{turn}", "object": "chat.completion", "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": {
            "prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default", "system_fingerprint": "fp_06737a9306",
    }


def anthropic_body(reply: Reply, turn: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content += [{"type": "tool_use", "id": f"toolu_{turn}{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(reply.tool_calls)]
    # Anthropic counts cache reads apart from input_tokens.
    return {
        "model": "claude-sonnet-4-5-20250929", "id": f"msg_{turn}", "type": "message",
        "role": "assistant", "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens - reply.cached_tokens,
                  "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": reply.cached_tokens,
                  "output_tokens": reply.output_tokens, "service_tier": "standard"},
    }


def google_body(reply: Reply, turn: int) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if reply.text:
        parts.append({"text": reply.text})
    parts += [{"functionCall": {"name": name, "args": args}} for name, args in reply.tool_calls]
    usage: dict[str, Any] = {
        "promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens,
        "totalTokenCount": reply.input_tokens + reply.output_tokens,
    }
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": f"r{turn}",
    }


_RENDER = {"openai": openai_body, "openrouter": openai_body, "anthropic": anthropic_body,
           "google": google_body}


# --- error bodies and headers, as each API sends them

_DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Incorrect API key provided.",
    402: "Insufficient credits.",
    403: "You are not allowed to use this model.",
    404: "The model does not exist or you do not have access to it.",
    408: "Request timed out.",
    409: "The request conflicted with another one; please retry.",
    413: "Request too large.",
    422: "Unprocessable request.",
    429: "Rate limit reached; please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway: the upstream model returned an invalid response.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
    529: "Overloaded.",
}

_OPENAI_TYPES = {400: ("invalid_request_error", None),
                 401: ("invalid_request_error", "invalid_api_key"),
                 403: ("request_forbidden", "unsupported_country_region_territory"),
                 404: ("invalid_request_error", "model_not_found"),
                 429: ("requests", "rate_limit_exceeded")}

_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    402: "billing_error", 403: "permission_error", 404: "not_found_error",
                    413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error",
                    529: "overloaded_error"}

_GOOGLE_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                    404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED",
                    429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
                    501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


def go_duration(seconds: float) -> str:
    """Seconds as OpenAI writes `x-ratelimit-reset-*`: "20ms", "1.5s", "6m0s", "1h2m3s"."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def rfc3339_in(seconds: float) -> str:
    """The wall-clock time `seconds` from now, as Anthropic writes its reset headers
    (whole seconds, rounded up so a client waiting until then is never early)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    whole = moment.replace(microsecond=0) + timedelta(seconds=1 if moment.microsecond else 0)
    return whole.strftime("%Y-%m-%dT%H:%M:%SZ")


def _proto_duration(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def rate_limit_headers(provider: str, *, limit: int, remaining: int, reset_s: float,
                       tokens: bool = False, token_limit: int = 200_000,
                       tokens_remaining: int = 200_000, token_reset_s: float = 0.0
                       ) -> dict[str, str | None]:
    """The provider's rate-limit headers (OpenAI / OpenRouter `x-ratelimit-*`, Anthropic
    `anthropic-ratelimit-*`; Google sends none). `tokens`: the token limit is the one
    that ran out."""
    if provider in {"openai", "openrouter"}:
        return {"x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": go_duration(reset_s),
                "x-ratelimit-limit-tokens": str(token_limit),
                "x-ratelimit-remaining-tokens": str(0 if tokens else tokens_remaining),
                "x-ratelimit-reset-tokens": go_duration(token_reset_s)}
    if provider == "anthropic":
        headers: dict[str, str | None] = {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": rfc3339_in(reset_s)}
        for name in ("tokens", "input-tokens"):
            headers[f"anthropic-ratelimit-{name}-limit"] = str(token_limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(
                0 if tokens else tokens_remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339_in(token_reset_s)
        return headers
    return {}


def error_response(provider: str, status: int, message: str = "", *,
                   error_type: str | None = None, retry_after_s: float | None = None,
                   param: str | None = None, field_violations: list[dict[str, str]] | None
                   = None, in_body: Literal["error", "choice"] | None = None) -> _Answer:
    """The status, body and headers `provider`'s API answers an error with."""
    message = message or _DEFAULT_MESSAGES.get(status, "Error.")
    headers: dict[str, str | None] = {}
    wait = retry_after_s
    if wait is not None:
        headers["retry-after"] = str(max(math.ceil(wait), 0))
    if provider == "anthropic":
        kind = error_type or _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500
                                                  else "invalid_request_error")
        headers["request-id"] = "req_011CFakeRequestId"
        if status == 429 and wait is not None:
            headers |= rate_limit_headers(provider, limit=50, remaining=0, reset_s=wait,
                                          tokens=kind == "tokens", token_reset_s=wait)
        return _Answer(status, {"type": "error", "error": {"type": "rate_limit_error"
                                                           if kind == "tokens" else kind,
                                                           "message": message},
                                "request_id": "req_011CFakeRequestId"}, headers)
    if provider == "google":
        error: dict[str, Any] = {"code": status, "message": message,
                                 "status": error_type or _GOOGLE_STATUSES.get(
                                     status, "INTERNAL" if status >= 500 else "UNKNOWN")}
        details: list[dict[str, Any]] = []
        if field_violations:
            details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": field_violations})
        if status == 429:
            details.append({
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/"
                                               "generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-"
                                           "FreeTier",
                                "quotaDimensions": {"location": "global",
                                                    "model": "gemini-2.5-flash"},
                                "quotaValue": "10"}]})
            details.append({"@type": "type.googleapis.com/google.rpc.Help",
                            "links": [{"description": "Learn more about Gemini API quotas",
                                       "url": "https://ai.google.dev/gemini-api/docs/"
                                              "rate-limits"}]})
            if wait is not None:
                details.append({"@type": RETRY_INFO_TYPE, "retryDelay": _proto_duration(wait)})
                headers.pop("retry-after", None)  # Gemini says it in the body only
        if details:
            error["details"] = details
        return _Answer(status, {"error": error}, headers)
    if provider == "openrouter":
        body: dict[str, Any] = {"error": {"code": status, "message": message,
                                          "metadata": {"provider_name": "FakeUpstream"}}}
        if error_type:
            body["error"]["metadata"]["error_type"] = error_type
        if in_body == "error":
            return _Answer(200, {**body, "user_id": "user_fake"}, headers)
        if in_body == "choice":
            return _Answer(200, {
                "id": "gen-fake", "object": "chat.completion", "created": 1741569952,
                "model": "openai/gpt-4o-mini", "provider": "FakeUpstream",
                "choices": [{"index": 0, "logprobs": None, "finish_reason": "error",
                             "native_finish_reason": "error", "error": body["error"],
                             "message": {"role": "assistant", "content": ""}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10},
            }, headers)
        return _Answer(status, body, headers)
    # OpenAI
    kind, code = _OPENAI_TYPES.get(status, ("server_error" if status >= 500
                                            else "invalid_request_error", None))
    if error_type == "insufficient_quota":
        kind = code = "insufficient_quota"
        headers.pop("retry-after", None)
    elif error_type in {"requests", "tokens"}:
        kind = error_type
    elif error_type:
        code = error_type
    if status == 429 and wait is not None:
        headers |= rate_limit_headers(provider, limit=500, remaining=0 if kind != "tokens"
                                      else 100, reset_s=wait, tokens=kind == "tokens",
                                      token_reset_s=wait if kind == "tokens" else 0.001)
    return _Answer(status, {"error": {"message": message, "type": kind, "param": param,
                                      "code": code}}, headers)


def error_body(provider: str, reply: Reply) -> dict[str, Any]:
    """The error body for a scripted error reply (kept for callers of the old API)."""
    return error_response(provider, reply.error_status or 500, reply.error_message,
                          error_type=reply.error_type).body


# --- request validation against the SDKs' own request types

_OPENROUTER_EXTENSIONS = frozenset({"provider", "models", "route", "transforms", "plugins",
                                    "usage", "reasoning", "user", "session_id"})


@dataclass
class _Invalid:
    """A refused request body: the path of the bad field (as keys and indexes), what was
    wrong (pydantic's text) and how (pydantic's error type)."""

    path: tuple[str | int, ...]
    message: str
    kind: str


@cache
def _openai_adapter() -> Any:
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    from pydantic import ConfigDict, TypeAdapter

    # A TypedDict takes no config of its own: wrapped in a list, it inherits extra=forbid.
    return TypeAdapter(list[CompletionCreateParamsNonStreaming],
                       config=ConfigDict(extra="forbid"))


@cache
def _anthropic_adapter() -> Any:
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
    from pydantic import ConfigDict, TypeAdapter

    return TypeAdapter(list[MessageCreateParamsNonStreaming],
                       config=ConfigDict(extra="forbid"))


@cache
def _google_fields() -> dict[str, Any]:
    """`generateContent` request fields → the SDK type each holds (camelCase, as sent)."""
    from google.genai import types
    from pydantic import TypeAdapter

    return {"contents": TypeAdapter(list[types.Content]),
            "systemInstruction": TypeAdapter(types.Content),
            "generationConfig": TypeAdapter(types.GenerationConfig),
            "tools": TypeAdapter(list[types.Tool]),
            "toolConfig": TypeAdapter(types.ToolConfig),
            "safetySettings": TypeAdapter(list[types.SafetySetting]),
            "cachedContent": TypeAdapter(str)}


def _drain(value: Any, path: tuple[str | int, ...]) -> None:
    """Validate what pydantic left lazy: `Iterable` fields of the SDKs' TypedDicts come
    back as iterators that check their items only when consumed."""
    from pydantic import ValidationError

    if isinstance(value, Iterator):  # pydantic_core's ValidatorIterator
        try:
            items = list(value)
        except ValidationError as error:
            raise _Failed(error, path) from None
        for index, item in enumerate(items):
            _drain(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            _drain(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _drain(item, (*path, index))


class _Failed(Exception):
    def __init__(self, error: Any, prefix: tuple[str | int, ...]) -> None:
        super().__init__(str(error))
        self.error = error
        self.prefix = prefix


def _walk(data: Any, loc: tuple[Any, ...], kind: str
          ) -> tuple[tuple[str | int, ...], list[tuple[Any, ...]]]:
    """`loc` split into the steps that exist in the body (plus a missing or unknown
    field's own name): the field's path; and the prefixes of `loc` that end at one of
    pydantic's union-member labels (which member of a union the error is about)."""
    path: list[str | int] = []
    members: list[tuple[Any, ...]] = []
    current = data
    for position, step in enumerate(loc):
        last = position == len(loc) - 1
        in_dict = isinstance(current, dict) and isinstance(step, str) and step in current
        in_list = isinstance(current, list) and isinstance(step, int) and step < len(current)
        if in_dict or in_list:
            path.append(step)
            current = current[step]
        elif last and kind in {"missing", "extra_forbidden"} and isinstance(step, str):
            path.append(step)
        else:
            members.append(loc[: position + 1])
    return tuple(path), members


def _worst(error: Any, data: Any, prefix: tuple[str | int, ...] = ()) -> _Invalid:
    """Of pydantic's errors (some for every member of a union), the one that names the
    bad field: not from a union member whose tag (`role`, `type`) does not match, the
    deepest in the body, a wrong value over a wrong tag (unless no member's tag fits)."""
    walked = []
    wrong_members: set[tuple[Any, ...]] = set()
    for item in error.errors():
        path, members = _walk(data, (*prefix, *item["loc"]), item["type"])
        walked.append((item, path, members))
        if item["type"] == "literal_error" and members:
            wrong_members.add(members[-1])
    best: tuple[int, int, int] | None = None
    chosen = _Invalid((), "invalid request", "value_error")
    for item, path, members in walked:
        matching = not any(member in wrong_members for member in members)
        # No member's tag matches: the tag is what is wrong.
        tag_error = item["type"] == "literal_error"
        rank = (int(matching), len(path), int(tag_error != matching))
        if best is None or rank > best:
            best, chosen = rank, _Invalid(path, item["msg"], item["type"])
    return chosen


def _check_typed(adapter: Any, body: dict[str, Any]) -> _Invalid | None:
    from pydantic import ValidationError

    try:
        validated = adapter.validate_python([body])[0]
        _drain(validated, ())
    except ValidationError as error:
        return _drop_first(_worst(error, [body]))
    except _Failed as failed:
        return _drop_first(_worst(failed.error, [body], (0, *failed.prefix)))
    return None


def _drop_first(invalid: _Invalid) -> _Invalid:
    """Without the index of the one-item list the body was validated in."""
    return _Invalid(invalid.path[1:], invalid.message, invalid.kind)


def _check_google(body: dict[str, Any]) -> _Invalid | None:
    from pydantic import ValidationError

    fields = _google_fields()
    if "contents" not in body:
        return _Invalid(("contents",), "contents is not specified", "missing")
    for key, value in body.items():
        adapter = fields.get(key)
        if adapter is None:
            return _Invalid((key,), "Cannot find field.", "extra_forbidden")
        try:
            adapter.validate_python(value)
        except ValidationError as error:
            return _worst(error, body, (key,))
    return None


def validate_body(provider: str, body: dict[str, Any]) -> _Invalid | None:
    """Why `provider`'s API would refuse this body (None: it would take it)."""
    if provider == "openai":
        return _check_typed(_openai_adapter(), body)
    if provider == "openrouter":
        core = {k: v for k, v in body.items() if k not in _OPENROUTER_EXTENSIONS}
        return _check_typed(_openai_adapter(), core)
    if provider == "anthropic":
        return _check_typed(_anthropic_adapter(), body)
    return _check_google(body)


def _dotted(path: tuple[str | int, ...], *, brackets: bool) -> str:
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]" if brackets else f".{step}"
        else:
            text += f".{step}" if text else step
    return text


def invalid_response(provider: str, invalid: _Invalid) -> _Answer:
    """The provider's 400 for a body its API refuses, naming the field."""
    if provider in {"openai", "openrouter"}:
        param = _dotted(invalid.path, brackets=True)
        if invalid.kind == "missing":
            message, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
        elif invalid.kind == "extra_forbidden":
            message, code = f"Unrecognized request argument supplied: {param}", "unknown_parameter"
        elif invalid.kind.endswith("_type"):
            message, code = f"Invalid type for '{param}': {invalid.message}.", "invalid_type"
        else:
            message, code = f"Invalid value for '{param}': {invalid.message}.", "invalid_value"
        return error_response(provider, 400, message, error_type=code, param=param)
    if provider == "anthropic":
        where = _dotted(invalid.path, brackets=False)
        return error_response(provider, 400, f"{where}: {invalid.message}")
    where = _dotted(invalid.path, brackets=True)
    if invalid.kind == "extra_forbidden":
        name = invalid.path[-1]
        parent = _dotted(invalid.path[:-1], brackets=True)
        at = f" at '{parent}'" if parent else ""
        message = f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    else:
        message = f"* GenerateContentRequest.{where}: {invalid.message}"
    return error_response(provider, 400, message,
                          field_violations=[{"field": where, "description": message}])


# --- rate limits


def estimate_tokens(body: dict[str, Any]) -> int:
    """A request's prompt tokens as the fake's TPM limit counts them: about four
    characters of the JSON body a token (at least 1)."""
    return max(1, len(json.dumps(body, separators=(",", ":"))) // 4)


def _provider_of(path: str) -> str | None:
    if path == "/openai/v1/chat/completions":
        return "openai"
    if path == "/openrouter/api/v1/chat/completions":
        return "openrouter"
    if path == "/anthropic/v1/messages":
        return "anthropic"
    if path.startswith("/google/v1beta/models/") and path.endswith(":generateContent"):
        return "google"
    return None


class FakeProviders:
    def __init__(self, *, validate: bool = True, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        """`validate`: check request bodies against the SDKs' request types (400 if not);
        `clock`: the time the limits and outages run on (seconds, monotonic)."""
        self._lock = threading.Lock()
        self._validate = validate
        self._clock = clock
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self._limits: dict[str, Limit] = {}
        self._admitted: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._outages: dict[str, tuple[float, int, float | None]] = {}
        self._responders: dict[str, Callable[[dict[str, Any]], Reply]] = {}
        self.received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll: `stop()` waits for the serve loop to notice at most this long.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_urls(self) -> dict[str, str]:
        root = f"http://127.0.0.1:{self._server.server_port}"
        return {"openai": f"{root}/openai/v1", "openrouter": f"{root}/openrouter/api/v1",
                "anthropic": f"{root}/anthropic", "google": f"{root}/google"}

    def start(self) -> FakeProviders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- scripting

    def script(self, provider: str, *replies: Reply) -> None:
        with self._lock:
            self._replies[provider].extend(replies)

    def respond(self, provider: str, responder: Callable[[dict[str, Any]], Reply] | None
                ) -> None:
        """Answer `provider`'s requests with `responder(body)` when no scripted reply is
        queued (called under the fake's lock, one request at a time); None: no more."""
        with self._lock:
            if responder is None:
                self._responders.pop(provider, None)
            else:
                self._responders[provider] = responder

    def pending(self, provider: str) -> int:
        """Scripted replies not played yet."""
        with self._lock:
            return len(self._replies[provider])

    def limit(self, provider: str, *, rpm: int | None = None, tpm: int | None = None,
              window_s: float = 60.0) -> None:
        """Enforce at most `rpm` requests and `tpm` (estimated) prompt tokens per sliding
        `window_s`; neither given: no limit. Requests admitted so far keep counting."""
        with self._lock:
            if rpm is None and tpm is None:
                self._limits.pop(provider, None)
            else:
                self._limits[provider] = Limit(rpm, tpm, window_s)

    def outage(self, provider: str, *, seconds: float, status: int = 503,
               retry_after_s: float | None = None) -> None:
        """Answer every request to `provider` with `status` (its real error body) for the
        next `seconds`; `retry_after_s` adds a Retry-After header."""
        with self._lock:
            self._outages[provider] = (self._clock() + seconds, status, retry_after_s)

    def end_outage(self, provider: str) -> None:
        with self._lock:
            self._outages.pop(provider, None)

    def reset(self) -> None:
        """Forget scripted replies, limits, outages and the request log."""
        with self._lock:
            self._replies.clear()
            self._limits.clear()
            self._admitted.clear()
            self._outages.clear()
            self._responders.clear()
            self.received.clear()

    def requests_for(self, provider: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.provider == provider]

    # --- answering

    def _answer(self, provider: str, received: Received) -> _Answer:
        with self._lock:
            self.received.append(received)
            answer = self._decide(provider, received)
            received.status = answer.status
            return answer

    def _decide(self, provider: str, received: Received) -> _Answer:
        now = received.at = self._clock()
        outage = self._outages.get(provider)
        if outage is not None and now < outage[0]:
            return error_response(provider, outage[1], retry_after_s=outage[2])
        received.tokens = estimate_tokens(received.body)
        limited = self._limited(provider, received.tokens, now)
        if limited is not None:
            received.above_limit = True
            return limited
        if self._validate:
            invalid = validate_body(provider, received.body)
            if invalid is not None:
                return invalid_response(provider, invalid)
        responder = self._responders.get(provider)
        if not self._replies[provider] and responder is None:
            return error_response(provider, 500, "fake provider: no reply scripted")
        turn = sum(1 for r in self.received if r.provider == provider)
        reply = (self._replies[provider].popleft() if self._replies[provider]
                 else responder(received.body) if responder is not None else Reply())
        if reply.error_status is not None:
            answer = error_response(provider, reply.error_status, reply.error_message,
                                    error_type=reply.error_type,
                                    retry_after_s=reply.retry_after_s,
                                    in_body=reply.in_body)
        else:
            answer = _Answer(200, _RENDER[provider](reply, turn))
        answer.headers |= self._limit_headers(provider, now)
        answer.headers |= reply.headers
        return answer

    def _limited(self, provider: str, tokens: int, now: float) -> _Answer | None:
        """The 429 for a request above `provider`'s limit, else None (and it counts)."""
        limit = self._limits.get(provider)
        if limit is None:
            return None
        admitted = self._admitted[provider]
        while admitted and admitted[0][0] <= now - limit.window_s:
            admitted.popleft()
        waits: list[float] = []
        if limit.rpm is not None and len(admitted) >= limit.rpm:
            waits.append(admitted[len(admitted) - limit.rpm][0] + limit.window_s - now)
        used = sum(count for _, count in admitted)
        by_tokens = limit.tpm is not None and used + tokens > limit.tpm
        if by_tokens and limit.tpm is not None:
            freed, wait = 0, limit.window_s  # a request larger than the limit never fits
            for at, count in admitted:
                freed += count
                if used - freed + tokens <= limit.tpm:
                    wait = at + limit.window_s - now
                    break
            waits.append(wait)
        if not waits:
            admitted.append((now, tokens))
            return None
        wait = max(max(waits), 0.001)
        kind = "tokens" if by_tokens and len(waits) == 1 else "requests"
        allowed = limit.tpm if kind == "tokens" else limit.rpm
        answer = error_response(
            provider, 429,
            f"Rate limit reached on {kind} per {limit.window_s:g} s: limit {allowed}. "
            f"Please try again in {go_duration(wait)}.",
            error_type=kind if provider in {"openai", "openrouter"} else None,
            retry_after_s=wait)
        answer.headers |= self._limit_headers(provider, now, wait=wait, by_tokens=by_tokens)
        return answer

    def _limit_headers(self, provider: str, now: float, *, wait: float | None = None,
                       by_tokens: bool = False) -> dict[str, str | None]:
        """The rate-limit headers of a response under a configured limit."""
        limit = self._limits.get(provider)
        if limit is None:
            return {}
        admitted = self._admitted[provider]
        rpm = limit.rpm if limit.rpm is not None else 1_000_000
        tpm = limit.tpm if limit.tpm is not None else 10_000_000
        remaining = max(rpm - len(admitted), 0)
        used = sum(count for _, count in admitted)
        # As the real APIs document them: the limit per minute (a shorter window states
        # its rate per minute: 4 per 6 s reads 40), and the reset is when the limit is
        # wholly replenished (the newest admitted request leaves the window).
        per_minute = 60.0 / limit.window_s
        replenished = max(admitted[-1][0] + limit.window_s - now, 0.0) if admitted else 0.0
        return rate_limit_headers(provider, limit=math.ceil(rpm * per_minute),
                                  remaining=remaining, reset_s=replenished,
                                  tokens=by_tokens, token_limit=math.ceil(tpm * per_minute),
                                  tokens_remaining=max(tpm - used, 0),
                                  token_reset_s=replenished)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                provider = _provider_of(path)
                try:
                    parsed = json.loads(raw or b"{}")
                except ValueError:
                    parsed = None
                if provider is None:
                    answer = _Answer(404, {"error": {"message": f"no route {path}"}})
                elif not isinstance(parsed, dict):
                    answer = error_response(provider or "openai", 400,
                                            "We could not parse the JSON body of your request.")
                else:
                    received = Received(provider, path, {k.lower(): v for k, v in
                                                         self.headers.items()}, parsed)
                    try:
                        answer = fake._answer(provider, received)
                    except Exception as error:  # a bug in the fake: say so, do not hang up
                        answer = _Answer(500, {"error": {
                            "message": f"fake provider failed: {error!r}",
                            "type": "server_error", "code": None}})
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in answer.headers.items():
                    if value is not None:
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:  # keep test output clean
                return

        return Handler
