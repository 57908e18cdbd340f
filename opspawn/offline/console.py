"""Progress output shared by install/up/deploy."""

from __future__ import annotations

import sys
import time

_last_progress = 0.0


def say(message: str) -> None:
    print(f"[offline] {message}", flush=True)


def progress(text: str, final: bool = False) -> None:
    """One updating line on a terminal; a line every few seconds (and the last) otherwise."""
    global _last_progress
    if sys.stdout.isatty():
        print(f"\r[offline] {text}\033[K", end="\n" if final else "", flush=True)
    elif final or time.monotonic() - _last_progress >= 3.0:
        _last_progress = time.monotonic()
        print(f"[offline] {text}", flush=True)
