"""Provider-neutral pieces every client shares: error classification (incl. the mapping
of SDK exceptions), Retry-After, tool-argument decoding, secret scrubbing, lazy SDK
imports and environment settings. No SDK is imported here: SDK exception classes are
passed in by the caller, after its own lazy import."""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

from agentkit.llm.base import ModelError, ModelRequestError, RetryableModelError
from agentkit.models import INVALID_ARGUMENTS_KEY

MAX_RAW_ARGUMENTS_CHARS = 2_000
MAX_ERROR_MESSAGE_CHARS = 1_000

# Timeout, lock conflict, throttling; every 5xx is retryable too.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

# Key-shaped tokens, masked or not: OpenAI/Anthropic/OpenRouter `sk-...`, Google `AIza...`.
_KEY_LIKE = re.compile(r"\b(?:sk-[A-Za-z0-9_*.\-]{3,}|AIza[0-9A-Za-z_\-]{10,})")


ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def error_for_status(message: str, status: int, headers: Any = None) -> ModelError:
    """The normalized error for an HTTP status: retryable (with Retry-After) or not."""
    if is_retryable_status(status):
        return RetryableModelError(
            message, status_code=status, retry_after_s=retry_after_seconds(headers)
        )
    return ModelRequestError(message, status_code=status)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or HTTP date)."""
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds == seconds and seconds != float("inf"):  # not NaN, not infinite
            return max(seconds, 0.0)
    value = headers.get("retry-after")
    if value:
        try:
            return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None


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
    cause_of: Callable[[Any], BaseException | None] = lambda error: error.__cause__,
) -> ModelError:
    """An exception raised by a provider SDK → the normalized error, messages prefixed
    `<provider>: `:

    * `timeout_types` (checked first: SDK timeouts often subclass connection errors) →
      retryable "the request timed out";
    * `connection_types` → retryable "connection error (<type of `cause_of(error)`>)";
    * `status_types` → `error_for_status` with "HTTP <status_of>: <text_of, scrubbed>"
      and the Retry-After of `headers_of` (defaults: the `status_code` and
      `response.headers` of the openai/anthropic SDKs' `APIStatusError`);
    * anything else (bad configuration, an unusable response) → not transient.

    `scrub` cleans provider text of secrets (usually the client's `_scrub`)."""
    if isinstance(error, timeout_types):
        return RetryableModelError(f"{provider}: the request timed out")
    if isinstance(error, connection_types):
        cause = cause_of(error)
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return RetryableModelError(f"{provider}: connection error{detail}")
    if isinstance(error, status_types):
        status = status_of(error)
        text = scrub(text_of(error))
        return error_for_status(f"{provider}: HTTP {status}: {text}", status, headers_of(error))
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


def api_key_from(*names: str) -> str:
    """The first provider key found under `names` (env, then the deployment's secret store)."""
    from agentkit.secrets import SecretNotFoundError, provider_key

    places: list[str] = []
    for name in names:
        try:
            return provider_key(name)
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


def optional_env(name: str) -> str | None:
    """An environment setting, stripped; unset or empty: None (the default applies)."""
    return os.environ.get(name, "").strip() or None


def positive_env(name: str, default: float, *, whole: bool = False) -> float:
    """A positive (`whole`: integral) number from the environment; empty: `default`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf") or (whole and not value.is_integer()):
        kind = "a positive whole number" if whole else "a positive number of seconds"
        raise ModelRequestError(f"{name} must be {kind}, got {raw!r}")
    return value
