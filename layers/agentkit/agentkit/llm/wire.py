"""Provider-neutral pieces every client shares: error classification (incl. the mapping
of SDK exceptions), Retry-After, tool-argument decoding, secret scrubbing, lazy SDK
imports. No SDK is imported here: SDK exception classes are
passed in by the caller, after its own lazy import."""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from time import time
from typing import TYPE_CHECKING, Any

from agentkit.llm.base import (
    ModelError,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    ProviderRate,
    RateLimitedError,
)
from agentkit.models.domain import INVALID_ARGUMENTS_KEY

if TYPE_CHECKING:
    from agentkit.config import SecretSources

MAX_RAW_ARGUMENTS_CHARS = 2_000
MAX_ERROR_MESSAGE_CHARS = 1_000

# --- error classification: the one table every client goes through
#
#   429                          → RateLimitedError (wait: Retry-After, else the provider's
#                                  reset headers / RetryInfo); but OpenAI's
#                                  `insufficient_quota` 429 (billing) → ModelRequestError
#   503, 529                     → OverloadedError (Anthropic's 529 `overloaded_error`;
#                                  503 "overloaded" / "no provider available")
#   409                          → OverloadedError: a lock conflict on the provider's side
#                                  (the SDKs retry it): contention, worth a short retry, but
#                                  no sign the provider is down, so it must not feed the
#                                  breaker
#   408, other 5xx               → ProviderOutageError: 408 is the server timing out on the
#                                  request, the same as our own timeout
#   timeouts, connection errors  → ProviderOutageError
#   402 with Retry-After         → RateLimitedError (OpenRouter's in-flight spending budget;
#                                  a 402 without it is out of credits: fatal)
#   any other status (400, 401, 403, 404, 413, 422, context too long...) → ModelRequestError
RATE_LIMITED_STATUSES = frozenset({429})
OVERLOADED_STATUSES = frozenset({409, 503, 529})
OUTAGE_STATUSES = frozenset({408})
# Kept for callers that only ask "worth retrying at all?".
RETRYABLE_STATUSES = RATE_LIMITED_STATUSES | OVERLOADED_STATUSES | OUTAGE_STATUSES

# Key-shaped tokens, masked or not: OpenAI/Anthropic/OpenRouter `sk-...`, Google `AIza...`.
_KEY_LIKE = re.compile(r"\b(?:sk-[A-Za-z0-9_*.\-]{3,}|AIza[0-9A-Za-z_\-]{10,})")

# Go-style durations in OpenAI's `x-ratelimit-reset-*` ("1s", "6m0s", "20ms", "1h2m3.5s").
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# protobuf Duration in JSON ("30s", "1.500s"): Google's RetryInfo `retryDelay`.
_PROTO_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"

# Per limit: the header with when it resets, the one with what remains, whether the
# limit is in tokens (a request can exceed what remains of it without it reading 0).
_OPENAI_LIMITS = (
    ("x-ratelimit-reset-requests", "x-ratelimit-remaining-requests", False),
    ("x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens", True),
)
_ANTHROPIC_LIMITS = tuple(
    (
        f"anthropic-ratelimit-{name}-reset",
        f"anthropic-ratelimit-{name}-remaining",
        name != "requests",
    )
    for name in ("requests", "tokens", "input-tokens", "output-tokens")
)


ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def error_for_status(
    message: str, status: int, headers: Any = None, *, body: Any = None
) -> ModelError:
    """The normalized error for an HTTP status (table above). `headers`: the response's
    (any mapping with `.get`); `body`: its decoded JSON, where the wait (Google's
    RetryInfo) or the fatal 429 (OpenAI's `insufficient_quota`) may be written."""
    if status in RATE_LIMITED_STATUSES:
        if _error_code(body) == "insufficient_quota":  # billing: no reset will help
            return ModelRequestError(message, status_code=status)
        return RateLimitedError(
            message,
            status_code=status,
            retry_after_s=rate_limit_wait(headers, body),
            rate=provider_rate(headers),
        )
    wait = retry_after_seconds(headers)
    if status == 402 and wait is not None:
        return RateLimitedError(message, status_code=status, retry_after_s=wait)
    if status in OVERLOADED_STATUSES:
        return OverloadedError(message, status_code=status, retry_after_s=wait)
    if status in OUTAGE_STATUSES or status >= 500:
        return ProviderOutageError(message, status_code=status, retry_after_s=wait)
    return ModelRequestError(message, status_code=status)


def rate_limit_wait(headers: Any, body: Any = None, *, now: float | None = None) -> float | None:
    """Seconds until a rate-limited provider takes requests again, as the provider says:
    `retry-after-ms` / `retry-after`, else its reset headers (OpenAI `x-ratelimit-reset-*`
    durations, Anthropic `anthropic-ratelimit-*-reset` RFC 3339 times), else a Google
    `RetryInfo.retryDelay` in the body. None: the provider said nothing."""
    explicit = retry_after_seconds(headers, now=now)
    if explicit is not None:
        return explicit
    if headers is not None:
        for limits, parse in ((_OPENAI_LIMITS, go_duration_seconds), (_ANTHROPIC_LIMITS, None)):
            wait = _reset_wait(headers, limits, parse, now=now)
            if wait is not None:
                return wait
    return retry_info_delay(body)


# The limit headers, per minute as the providers document them: (requests, tokens).
_LIMIT_HEADERS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens"),
    ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-tokens-limit"),
)


def provider_rate(headers: Any, *, now: float | None = None) -> ProviderRate:
    """The key's limits as the response headers state them (per minute), and when the
    limit that ran out is wholly replenished. Absent or unreadable headers: None each."""
    if headers is None:
        return ProviderRate()
    requests = tokens = None
    for requests_header, tokens_header in _LIMIT_HEADERS:
        requests = requests or _whole(headers.get(requests_header))
        tokens = tokens or _whole(headers.get(tokens_header))
    replenished = None
    for limits, parse in ((_OPENAI_LIMITS, go_duration_seconds), (_ANTHROPIC_LIMITS, None)):
        replenished = _reset_wait(headers, limits, parse, now=now)
        if replenished is not None:
            break
    return ProviderRate(
        requests_per_minute=requests, tokens_per_minute=tokens, replenished_s=replenished
    )


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 1 else None


def _reset_wait(
    headers: Any,
    limits: tuple[tuple[str, str, bool], ...],
    parse: Callable[[str], float | None] | None,
    *,
    now: float | None,
) -> float | None:
    """The latest reset among the limits that ran out (remaining 0, or not said); when
    none reads 0, a token limit the request was too large for: the latest token reset."""
    exhausted: list[float] = []
    token_resets: list[float] = []
    for reset_header, remaining_header, in_tokens in limits:
        raw = headers.get(reset_header)
        if raw is None:
            continue
        seconds = parse(raw) if parse is not None else _seconds_until(raw, now=now)
        if seconds is None:
            continue
        if in_tokens:
            token_resets.append(seconds)
        if _number(headers.get(remaining_header)) in (None, 0.0):
            exhausted.append(seconds)
    pool = exhausted or token_resets
    return max(pool) if pool else None


def retry_after_seconds(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or HTTP date)."""
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = _number(headers.get(header))
        if value is not None:
            return max(value / divisor, 0.0)
    value = headers.get("retry-after")
    if value:
        try:
            moment = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(moment - (time() if now is None else now), 0.0)
    return None


def go_duration_seconds(text: str) -> float | None:
    """A Go duration ("6m0s", "20ms", "1h2m3.5s", "0s") → seconds; anything else → None."""
    text = str(text).strip()
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


def retry_info_delay(body: Any) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "7s"`) of a Google
    error body (`{"error": {"details": [...]}}` or the inner object), if any."""
    error = body.get("error", body) if isinstance(body, dict) else None
    entries = error.get("details") if isinstance(error, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("@type") == _RETRY_INFO_TYPE:
            match = _PROTO_DURATION.match(str(entry.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _seconds_until(timestamp: str, *, now: float | None) -> float | None:
    """An RFC 3339 time ("2026-01-01T00:00:30Z") → seconds from now (not below 0)."""
    try:
        moment = datetime.fromisoformat(str(timestamp).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment.timestamp() - (time() if now is None else now), 0.0)


def _number(value: Any) -> float | None:
    """A finite number from header text; None when absent or not a number."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _error_code(body: Any) -> str | None:
    """`code` (or `type`) of an OpenAI-style error body, inner (`{"code"...}`, as the SDK
    keeps it) or whole (`{"error": {...}}`)."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error", body)
    if not isinstance(inner, dict):
        return None
    code = inner.get("code") or inner.get("type")
    return code if isinstance(code, str) else None


def map_sdk_error(
    provider: str,
    error: BaseException,
    *,
    scrub: Callable[[str], str],
    timeout_types: ExceptionTypes = (),
    connection_types: ExceptionTypes = (),
    status_types: ExceptionTypes = (),
    text_of: Callable[[Any], str] = str,
    status_of: Callable[[Any], int] = lambda error: error.status_code,
    headers_of: Callable[[Any], Any] = lambda error: error.response.headers,
    body_of: Callable[[Any], Any] = lambda error: getattr(error, "body", None),
    cause_of: Callable[[Any], BaseException | None] = lambda error: error.__cause__,
    label_of: Callable[[Any], str] | None = None,
) -> ModelError:
    """An exception raised by a provider SDK → the normalized error, messages prefixed
    `<provider>: `:

    * `timeout_types` (checked first: SDK timeouts often subclass connection errors) →
      `ProviderOutageError` "the request timed out";
    * `connection_types` → `ProviderOutageError` "connection error (<type of
      `cause_of(error)`>)";
    * `status_types` → `error_for_status` with "HTTP <status_of>[ <label_of>]: <text_of,
      scrubbed>", the headers of `headers_of` and the body of `body_of` (defaults: the
      `status_code`, `response.headers` and `body` of the openai/anthropic SDKs'
      `APIStatusError`);
    * anything else (bad configuration, an unusable response) → not transient.

    `scrub` cleans provider text of secrets (usually the client's `_scrub`)."""
    if isinstance(error, timeout_types):
        return ProviderOutageError(f"{provider}: the request timed out")
    if isinstance(error, connection_types):
        cause = cause_of(error)
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return ProviderOutageError(f"{provider}: connection error{detail}")
    if isinstance(error, status_types):
        status = status_of(error)
        label = label_of(error) if label_of is not None else ""
        text = scrub(text_of(error))
        return error_for_status(
            f"{provider}: HTTP {status}{' ' + label if label else ''}: {text}",
            status,
            headers_of(error),
            body=body_of(error),
        )
    text = scrub(str(error) or type(error).__name__)
    return ModelRequestError(f"{provider}: {type(error).__name__}: {text}")


def decode_arguments(raw: str | None) -> dict[str, Any]:
    """The model's argument text → a dict; unusable text → `{INVALID_ARGUMENTS_KEY: why}`."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        problem = f"not valid JSON ({error})"
    else:
        if isinstance(value, dict):
            return value
        problem = f"a JSON {type(value).__name__}, not an object"
    shown = raw if len(raw) <= MAX_RAW_ARGUMENTS_CHARS else raw[:MAX_RAW_ARGUMENTS_CHARS] + "…"
    return {INVALID_ARGUMENTS_KEY: f"the tool arguments are {problem}: {shown}"}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove the given secrets and anything key-shaped; cap the length."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _KEY_LIKE.sub("[redacted]", text)
    if len(text) > MAX_ERROR_MESSAGE_CHARS:
        text = text[:MAX_ERROR_MESSAGE_CHARS] + "…"
    return text


def api_key_from(sources: SecretSources, *names: str) -> str:
    """The first provider key found under `names` (env, then the deployment's secret store
    as `sources` says)."""
    from agentkit.secrets import SecretNotFoundError, provider_key

    places: list[str] = []
    for name in names:
        try:
            return provider_key(name, sources)
        except SecretNotFoundError as error:
            places.extend(error.places)
    alternatives = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
    raise ModelRequestError(
        f"{names[0]}{alternatives} is not set (looked in: {'; '.join(places)})"
    )


def import_sdk(module: str, package: str | None = None) -> Any:
    """The provider SDK `module`, imported now; missing: a `ModelRequestError` naming the
    pip `package` (default: the module's name)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ModelRequestError(
            f"the '{package or module}' package is not installed; "
            "install agentkit with its providers"
        ) from error
