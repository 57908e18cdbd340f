"""Which client serves which provider: `provider:model` → a client, made once per warm
Lambda. Each provider's module (and its SDK) is imported only when a task uses it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agentkit.llm.base import BaseLLMClient, ModelRequestError
from agentkit.llm.scripted import ScriptedClient
from agentkit.model_names import PROVIDER_CLIENTS, known_providers, parse_model

if TYPE_CHECKING:
    from agentkit.config import ProviderConfig
    from agentkit.models.scripted import ScriptedTurn

_client_cache: dict[str, BaseLLMClient] = {}


def get_client(
    model: str,
    *,
    providers: ProviderConfig | None = None,
    scripted_turns: list[ScriptedTurn] | None = None,
    scripted_enabled: bool = False,
) -> BaseLLMClient:
    """The client for `provider:model`, made from `providers` (the function's endpoints and
    key sources, agentkit.config.ProviderConfig; None: the providers' own endpoints, keys
    from the environment only). Provider clients are reused across warm invocations; the
    scripted client is never a silent fallback and never cached (it is per task)."""
    provider, _ = parse_model(model)
    if provider == "scripted":
        if not scripted_enabled:
            raise ModelRequestError("model 'scripted' is disabled in this deployment")
        return ScriptedClient(scripted_turns or [])
    cached = _client_cache.get(provider)
    if cached is not None:
        return cached
    target = PROVIDER_CLIENTS.get(provider)
    if target is None:
        known = ", ".join(known_providers())
        raise ModelRequestError(f"unknown model provider '{provider}' (known: {known})")
    module_name, _, class_name = target.partition(":")
    client_class = getattr(importlib.import_module(module_name), class_name)
    if providers is None:
        from agentkit.config import ProviderConfig

        providers = ProviderConfig()
    client: BaseLLMClient = client_class.from_config(providers)
    _client_cache[provider] = client
    return client


def clear_client_cache() -> None:
    """Forget reused provider clients (tests; a rotated key)."""
    _client_cache.clear()


