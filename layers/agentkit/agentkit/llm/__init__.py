"""LLM clients behind one interface. Provider SDKs are imported lazily by `get_client`
(agentkit.llm.providers)."""

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelError,
    ModelRequestError,
    RetryableModelError,
)
from agentkit.llm.providers import get_client
from agentkit.model_names import parse_model

__all__ = [
    "BaseLLMClient",
    "LLMRequest",
    "LLMResponse",
    "ModelError",
    "ModelRequestError",
    "RetryableModelError",
    "get_client",
    "parse_model",
]
