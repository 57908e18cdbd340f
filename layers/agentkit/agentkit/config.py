"""Deployment settings, read once from the environment the template sets."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.llm.limiter import ProviderLimits


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class BudgetCeiling(BaseModel):
    """The most a tenant's task may ask for; None: no ceiling on that budget."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int | None = Field(default=None, ge=1, le=50)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


#: Running tasks per tenant when TENANT_LIMITS does not say.
DEFAULT_MAX_RUNNING = 10


class TenantLimit(BaseModel):
    """How many of a tenant's tasks may run at once (the rest wait QUEUED, in order), and
    its share of a provider that is paced after a 429 (by weight against the other tenants
    calling it)."""

    model_config = ConfigDict(extra="forbid")

    max_running: int = Field(default=DEFAULT_MAX_RUNNING, ge=1, le=100_000)
    weight: float = Field(default=1.0, gt=0, le=1000)


class _TenantLimitsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: TenantLimit = Field(default_factory=TenantLimit)
    tenants: dict[str, TenantLimit] = Field(default_factory=dict)


class Settings(BaseModel):
    table_name: str = Field(min_length=1)
    state_machine_arn: str | None = None
    default_model: str = "openai:gpt-4o-mini"
    scripted_model_enabled: bool = False
    default_max_turns: int = Field(default=10, ge=1, le=50)
    # Budgets applied when a request sets none; None: no limit beyond max_turns.
    default_max_tokens: int | None = Field(default=None, ge=1)
    default_max_cost_usd: float | None = Field(default=None, gt=0)
    # Patience: how long in all a task may wait for its providers (DEFAULT_MAX_WAIT_SECONDS).
    default_max_wait_seconds: int = Field(default=3600, ge=0)
    # BUDGET_CEILINGS: {"default": {...}, "tenants": {"<tenant>": {...}}}; a tenant's own
    # entry replaces the default one.
    default_ceiling: BudgetCeiling = Field(default_factory=BudgetCeiling)
    tenant_ceilings: dict[str, BudgetCeiling] = Field(default_factory=dict)
    # PROVIDER_LIMITS: requests/tokens per minute per provider or provider:model (JSON, see
    # agentkit.llm.limiter); empty: no limits.
    provider_limits: ProviderLimits = Field(default_factory=ProviderLimits)

    # TENANT_LIMITS: {"default": {"max_running": n}, "tenants": {"<tenant>": {...}}}; a
    # tenant's own entry replaces the default one.
    default_tenant_limit: TenantLimit = Field(default_factory=TenantLimit)
    tenant_limits: dict[str, TenantLimit] = Field(default_factory=dict)

    def ceiling_for(self, tenant_id: str) -> BudgetCeiling:
        return self.tenant_ceilings.get(tenant_id, self.default_ceiling)

    def max_running_for(self, tenant_id: str) -> int:
        return self.tenant_limits.get(tenant_id, self.default_tenant_limit).max_running

    def weight_for(self, tenant_id: str) -> float:
        return self.tenant_limits.get(tenant_id, self.default_tenant_limit).weight

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
            default_max_wait_seconds=int(os.environ.get("DEFAULT_MAX_WAIT_SECONDS") or 3600),
            **_ceilings(os.environ.get("BUDGET_CEILINGS") or "{}"),
            provider_limits=_provider_limits(os.environ.get("PROVIDER_LIMITS")),
            **_tenant_limits(os.environ.get("TENANT_LIMITS") or "{}"),
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


def _tenant_limits(raw: str) -> dict[str, Any]:
    """TENANT_LIMITS parsed; a bad value stops the function with the field it is about."""
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise RuntimeError(f"TENANT_LIMITS is invalid: not JSON ({error})") from None
    try:
        document = _TenantLimitsDocument.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        )
        raise RuntimeError(
            f'TENANT_LIMITS is invalid: {problems} (expected {{"default": {{"max_running": n}}, '
            f'"tenants": {{"<tenant>": {{"max_running": n}}}}}})'
        ) from None
    return {"default_tenant_limit": document.default, "tenant_limits": document.tenants}


def _provider_limits(raw: str | None) -> ProviderLimits:
    try:
        return ProviderLimits.parse(raw)
    except ValueError as error:
        # A broken limit must stop the function, never silently lift every limit.
        raise RuntimeError(str(error)) from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
