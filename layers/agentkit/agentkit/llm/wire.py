"""Provider-neutral pieces every client shares: error classification, Retry-After,
tool-argument decoding and secret scrubbing. No SDK is imported here."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
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
