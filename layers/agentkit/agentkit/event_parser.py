"""`event_parser(model=M)`: a handler gets its event validated into the pydantic model `M`.

What Powertools' `utilities.parser.event_parser` does without an envelope (a dict is
validated as Python data, a string as JSON; a bad event raises pydantic's
`ValidationError`, which Powertools re-exports), without its import: that package loads
pydantic's network types and `importlib.metadata`, tens of milliseconds of every cold
start of a state's function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)
ReturnT = TypeVar("ReturnT")


def event_parser(
    *, model: type[ModelT]
) -> Callable[[Callable[[ModelT, Any], ReturnT]], Callable[[Any, Any], ReturnT]]:
    def decorate(handler: Callable[[ModelT, Any], ReturnT]) -> Callable[[Any, Any], ReturnT]:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> ReturnT:
            parsed = (
                model.model_validate_json(event)
                if isinstance(event, str)
                else model.model_validate(event)
            )
            return handler(parsed, context)

        return wrapper

    return decorate
