"""Long-term memory's domain models (kept free of the rest of agentkit, so the store can use
them: they belong with the domain models in agentkit.models).

A memory belongs to a tenant and, optionally, a caller-chosen scope (an end user, a
project): the pair is its namespace. Nothing crosses namespaces: a task with scope
`user-1` recalls only `user-1`'s memories, an unscoped task only the unscoped ones. (The
scope's rule, `check_scope` / `MemoryScope`, is in agentkit.models.domain: a task carries
one.)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentkit.ids import new_task_id

#: A memory is a fact, not a document: a few sentences. (e5 reads 512 tokens of it.)
MAX_MEMORY_CHARS = 2_000
MAX_RECALL = 50


def namespace(tenant_id: str, scope: str | None) -> str:
    """The vector index's namespace of a tenant's memories in `scope`."""
    return tenant_id if scope is None else f"{tenant_id}/{scope}"


def new_memory_id() -> str:
    """`mem_` + 26 characters, time-ordered like a task id (same generator)."""
    return "mem_" + new_task_id().removeprefix("tsk_")


class Memory(BaseModel):
    # defer_build: built when long-term memory is first used (not at cold start).
    model_config = ConfigDict(defer_build=True)

    memory_id: str
    scope: str | None = Field(default=None, description="The memory's scope; null: the tenant's.")
    text: str
    tags: list[str] = Field(default=[])
    created_at: str
    embedding_model: str = Field(description="The EmbeddingModel its vector was made with.")
    source: str | None = Field(
        default=None, description="Who wrote it: `api`, or the task (`task:<id>`)."
    )


class RecalledMemory(BaseModel):
    model_config = ConfigDict(defer_build=True)

    memory: Memory
    score: float = Field(description="Cosine similarity to the query (1.0: the same meaning).")
