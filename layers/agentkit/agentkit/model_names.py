"""Model names (`provider:model`) and the providers a deployment knows.

Apart from `agentkit.llm` so that what only checks a name (the API, at submit and when a
schedule is made) loads neither the LLM interface nor a client: importing any module of
`agentkit.llm` loads that package's interface first.
"""

from __future__ import annotations

#: provider → "module:Class" of its client; a module is imported only when a task uses it.
PROVIDER_CLIENTS = {
    "openai": "agentkit.llm.openai_client:OpenAIClient",
    "anthropic": "agentkit.llm.anthropic_client:AnthropicClient",
    "openrouter": "agentkit.llm.openrouter_client:OpenRouterClient",
    "google": "agentkit.llm.google_client:GoogleClient",
}


def parse_model(model: str) -> tuple[str, str]:
    """`openai:gpt-4o-mini` → (`openai`, `gpt-4o-mini`); `scripted` → (`scripted`, `scripted`)."""
    provider, sep, name = model.partition(":")
    if not sep:
        return provider, provider
    return provider, name


def known_providers() -> list[str]:
    return sorted([*PROVIDER_CLIENTS, "scripted"])
