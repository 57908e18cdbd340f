"""Settings of the functions that call models: CallModel, and Finalize (which extracts a
task's memories with the task's model). Apart from the other parts because the provider
limits are the rate limiter's own model (agentkit.llm.limiter): the functions that never
call a model do not load the limiter, its store or the LLM interface."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from agentkit.config import (
    ConfigError,
    ContextWindowSettings,
    Environ,
    ProviderSettings,
    SecuritySettings,
    SettingsPart,
    StateMachineSettings,
    StoreSettings,
    TaskDefaultSettings,
    TenantLimitSettings,
)
from agentkit.config.memory import MemorySettings
from agentkit.llm.limiter import ProviderLimits

__all__ = ["CallModelSettings", "FinalizeSettings", "ProviderLimitSettings"]


class ProviderLimitSettings(SettingsPart):
    """PROVIDER_LIMITS: requests/tokens per minute per provider or provider:model (JSON, see
    agentkit.llm.limiter); empty: no limits."""

    VARIABLES: ClassVar[dict[str, str]] = {"provider_limits": "PROVIDER_LIMITS"}

    provider_limits: ProviderLimits = Field(default_factory=ProviderLimits)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        try:
            return {"provider_limits": ProviderLimits.parse(env.get("PROVIDER_LIMITS"))}
        except ValueError as error:
            # A broken limit must stop the function, never silently lift every limit.
            raise ConfigError(str(error)) from None


class CallModelSettings(
    StoreSettings,
    TaskDefaultSettings,
    TenantLimitSettings,
    ProviderLimitSettings,
    ContextWindowSettings,
    SecuritySettings,
    ProviderSettings,
):
    pass


class FinalizeSettings(
    StoreSettings,
    StateMachineSettings,
    TenantLimitSettings,
    TaskDefaultSettings,
    ProviderLimitSettings,
    ContextWindowSettings,
    MemorySettings,
):
    """Finalize, MarkFailed and ReleaseSlot: the terminal write and the tenant slot; for a
    task with memory "auto", the extraction of its durable facts (agentkit.memory.extraction:
    the task's model, routed and paced as CallModel routes it, and the embedding model)."""
