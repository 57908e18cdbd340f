"""USD cost of a model call, from the price table in prices.json (one data file)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

from agentkit.models.domain import Usage

_PRICES_FILE = Path(__file__).with_name("prices.json")
_PER = 1_000_000


class Price(BaseModel):
    """USD per million tokens."""

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)


@lru_cache(maxsize=1)
def price_table() -> dict[str, Price]:
    raw = json.loads(_PRICES_FILE.read_text())["prices"]
    return {model: Price.model_validate(price) for model, price in raw.items()}


def price_for(model: str) -> Price | None:
    """Exact `provider:model` first, then the longest matching `prefix*` entry."""
    table = price_table()
    if model in table:
        return table[model]
    prefixes = [key for key in table if key.endswith("*") and model.startswith(key[:-1])]
    return table[max(prefixes, key=len)] if prefixes else None


def with_cost(model: str, usage: Usage) -> Usage:
    """The usage with cost_usd filled in (0.0 when the model has no price entry)."""
    price = price_for(model)
    if price is None:
        return usage
    cached = min(usage.cached_tokens, usage.input_tokens)
    cost = (
        (usage.input_tokens - cached) * price.input
        + cached * price.cached_input
        + usage.output_tokens * price.output
    ) / _PER
    return usage.model_copy(update={"cost_usd": round(cost, 10)})
