"""Deployment settings, read once from the environment the template sets."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class BudgetCeiling(BaseModel):
    """The most a tenant's task may ask for; None: no ceiling on that budget."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int | None = Field(default=None, ge=1, le=50)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


class Settings(BaseModel):
    table_name: str = Field(min_length=1)
    state_machine_arn: str | None = None
    default_model: str = "openai:gpt-4o-mini"
    scripted_model_enabled: bool = False
    default_max_turns: int = Field(default=10, ge=1, le=50)
    # Budgets applied when a request sets none; None: no limit beyond max_turns.
    default_max_tokens: int | None = Field(default=None, ge=1)
    default_max_cost_usd: float | None = Field(default=None, gt=0)
    # BUDGET_CEILINGS: {"default": {...}, "tenants": {"<tenant>": {...}}}; a tenant's own
    # entry replaces the default one.
    default_ceiling: BudgetCeiling = Field(default_factory=BudgetCeiling)
    tenant_ceilings: dict[str, BudgetCeiling] = Field(default_factory=dict)

    def ceiling_for(self, tenant_id: str) -> BudgetCeiling:
        return self.tenant_ceilings.get(tenant_id, self.default_ceiling)

    @classmethod
    def from_env(cls) -> Settings:
        table = os.environ.get("TABLE_NAME", "")
        if not table:
            raise RuntimeError("TABLE_NAME is not set: the function is missing its configuration")
        return cls(
            table_name=table,
            state_machine_arn=os.environ.get("STATE_MACHINE_ARN") or None,
            default_model=os.environ.get("DEFAULT_MODEL") or "openai:gpt-4o-mini",
            scripted_model_enabled=_flag(os.environ.get("SCRIPTED_MODEL_ENABLED")),
            default_max_turns=int(os.environ.get("DEFAULT_MAX_TURNS") or 10),
            default_max_tokens=int(os.environ.get("DEFAULT_MAX_TOKENS") or 0) or None,
            default_max_cost_usd=float(os.environ.get("DEFAULT_MAX_COST_USD") or 0) or None,
            **_ceilings(os.environ.get("BUDGET_CEILINGS") or "{}"),
        )


def _ceilings(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) - {"default", "tenants"}:
            raise ValueError('expected {"default": {...}, "tenants": {"<tenant>": {...}}}')
        return {
            "default_ceiling": BudgetCeiling.model_validate(data.get("default") or {}),
            "tenant_ceilings": {
                tenant: BudgetCeiling.model_validate(ceiling)
                for tenant, ceiling in (data.get("tenants") or {}).items()
            },
        }
    except ValueError as error:  # includes pydantic's ValidationError
        # A broken ceiling must stop the function, never silently lift every limit.
        raise RuntimeError(f"BUDGET_CEILINGS is invalid: {error}") from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
