"""A function's cold start: the garbage collector rests while its modules load, and what
they built is then frozen.

Loading a function builds some 90,000 long-lived objects (modules, classes, pydantic
validators, botocore's service models) and almost no garbage (about 700 unreachable
objects). With the collector on, the allocations trigger collections that walk that
growing heap again and again: about 5 % of every function's import (bench/cold_start.py).
Frozen afterwards (`gc.freeze`), those objects sit in the permanent generation, so a full
collection during a request walks only what requests made (one full collection over an
unfrozen heap costs a function 65-80 ms here).

Every `functions/<name>/app.py` calls `begin()` before its first other import and
`ready()` once its module-level set-up is done (tests/unit/test_startup.py checks both);
`ready` also builds the deferred models the function's requests use.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel


def begin() -> None:
    """Pause automatic collection for the cold start."""
    gc.disable()


def ready(*models: type[BaseModel]) -> None:
    """The cold start is over: build `models` (ones defined with `defer_build` that this
    function's requests use, so that no request pays for them), freeze what the cold start
    built and collect as usual from here on."""
    for model in models:
        model.model_rebuild()
    gc.freeze()
    gc.enable()
