"""Long-term memory's settings (the functions that remember or recall: memories, plan,
run_tools, and finalize, which extracts a task's memories): which embedding model, which
vector index, the similarity thresholds.

  EMBEDDING_MODEL          the EmbeddingModel parameter (agentkit.llm.embeddings); blank:
                           long-term memory is off in this deployment
  EMBEDDING_DIMENSIONS     its vectors' dimensions (the index holds these and no other)
  MEMORY_VECTOR_STORE      "dynamodb" (exact, the default) or "s3vectors"
  MEMORY_VECTOR_INDEX_ARN  the S3 Vectors index (s3vectors only)
  MEMORY_DEDUP_MIN_SCORE   a new memory this similar to an existing one is that one
  MEMORY_RECALL_MIN_SCORE  recall at plan time keeps memories at least this similar

Similarity scales differ by model (e5's cosines of unrelated texts sit near 0.75, OpenAI's
near 0.1), so both thresholds are the deployment's to set for its model.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from agentkit.config import (
    Environ,
    ProviderSettings,
    SettingsPart,
    StoreSettings,
    _number,
    _text,
)

DEFAULT_DEDUP_MIN_SCORE = 0.95
DEFAULT_RECALL_MIN_SCORE = 0.8


class MemorySwitch(SettingsPart):
    """Whether the deployment has long-term memory (an EMBEDDING_MODEL): what the functions
    that only list the memory tools (submit, schedules) need to know of it."""

    VARIABLES: ClassVar[dict[str, str]] = {"embedding_model": "EMBEDDING_MODEL"}

    embedding_model: str | None = None

    @property
    def memory_enabled(self) -> bool:
        return self.embedding_model is not None

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"embedding_model": _text(env, "EMBEDDING_MODEL")}


class MemorySettings(MemorySwitch, ProviderSettings):
    VARIABLES: ClassVar[dict[str, str]] = {
        "embedding_dimensions": "EMBEDDING_DIMENSIONS",
        "vector_store": "MEMORY_VECTOR_STORE",
        "vector_index_arn": "MEMORY_VECTOR_INDEX_ARN",
        "dedup_min_score": "MEMORY_DEDUP_MIN_SCORE",
        "recall_min_score": "MEMORY_RECALL_MIN_SCORE",
    }

    embedding_dimensions: int = Field(default=384, ge=1, le=8192)
    vector_store: Literal["dynamodb", "s3vectors"] = "dynamodb"
    vector_index_arn: str | None = None
    dedup_min_score: float = Field(default=DEFAULT_DEDUP_MIN_SCORE, gt=0, le=1)
    recall_min_score: float = Field(default=DEFAULT_RECALL_MIN_SCORE, ge=-1, le=1)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "vector_index_arn": _text(env, "MEMORY_VECTOR_INDEX_ARN"),
        }
        store = _text(env, "MEMORY_VECTOR_STORE")
        if store is not None:
            values["vector_store"] = store
        dimensions = _number(env, "EMBEDDING_DIMENSIONS", whole=True)
        if dimensions is not None:
            values["embedding_dimensions"] = dimensions
        for field, name in (("dedup_min_score", "MEMORY_DEDUP_MIN_SCORE"),
                            ("recall_min_score", "MEMORY_RECALL_MIN_SCORE")):
            number = _number(env, name, whole=False)
            if number is not None:
                values[field] = number
        return values

    @model_validator(mode="after")
    def _s3_vectors_named(self) -> MemorySettings:
        if self.vector_store == "s3vectors" and not self.vector_index_arn:
            raise ValueError("MEMORY_VECTOR_STORE=s3vectors needs MEMORY_VECTOR_INDEX_ARN")
        return self


class MemoriesSettings(StoreSettings, MemorySettings):
    """The memories function (the /memories API)."""
