"""Context windows per model, from the table in context_windows.json (one data file).

`context_window(model)`: exact `provider:model` first, then the longest matching `prefix*`
entry, else the table's default. A deployment may override or add entries (CONTEXT_WINDOWS,
read by agentkit.config; the tests use it to give the scripted model a small window).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

_WINDOWS_FILE = Path(__file__).with_name("context_windows.json")


@lru_cache(maxsize=1)
def window_table() -> tuple[int, dict[str, int]]:
    """(the default window, `provider:model` or `prefix*` → window), in tokens."""
    raw = json.loads(_WINDOWS_FILE.read_text())
    return int(raw["default"]), {model: int(size) for model, size in raw["windows"].items()}


def _lookup(model: str, table: Mapping[str, int]) -> int | None:
    if model in table:
        return table[model]
    prefixes = [key for key in table if key.endswith("*") and model.startswith(key[:-1])]
    return table[max(prefixes, key=len)] if prefixes else None


def context_window(model: str, overrides: Mapping[str, int] | None = None) -> int:
    """The window of `provider:model` in tokens; `overrides` (same keys) are looked up first."""
    if overrides:
        found = _lookup(model, overrides)
        if found is not None:
            return found
    default, table = window_table()
    found = _lookup(model, table)
    return default if found is None else found
