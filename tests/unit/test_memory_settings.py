"""MemorySettings: read from the environment, bad values named."""

from __future__ import annotations

import pytest

from agentkit.config import ConfigError
from agentkit.config.memory import MemoriesSettings, MemorySettings


def test_defaults_leave_memory_off_with_the_dynamodb_index() -> None:
    settings = MemorySettings.from_env({})
    assert settings.embedding_model is None
    assert settings.vector_store == "dynamodb"
    assert settings.embedding_dimensions == 384


def test_values_are_read() -> None:
    settings = MemoriesSettings.from_env({
        "TABLE_NAME": "t", "EMBEDDING_MODEL": "openai:text-embedding-3-small",
        "EMBEDDING_DIMENSIONS": "1536", "MEMORY_VECTOR_STORE": "s3vectors",
        "MEMORY_VECTOR_INDEX_ARN": "arn:i",
        "MEMORY_DEDUP_MIN_SCORE": "0.9", "MEMORY_RECALL_MIN_SCORE": "0.3",
    })
    assert (settings.embedding_dimensions, settings.vector_index_arn, settings.dedup_min_score,
            settings.recall_min_score) == (1536, "arn:i", 0.9, 0.3)


@pytest.mark.parametrize(("env", "named"), [
    ({"EMBEDDING_DIMENSIONS": "many"}, "EMBEDDING_DIMENSIONS"),
    ({"EMBEDDING_DIMENSIONS": "0"}, "EMBEDDING_DIMENSIONS"),
    ({"MEMORY_VECTOR_STORE": "faiss"}, "MEMORY_VECTOR_STORE"),
    ({"MEMORY_DEDUP_MIN_SCORE": "1.5"}, "MEMORY_DEDUP_MIN_SCORE"),
    ({"MEMORY_VECTOR_STORE": "s3vectors"}, "MEMORY_VECTOR_INDEX_ARN"),
])
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        MemorySettings.from_env(env)
