"""Long-term memory's domain models (kept free of the rest of agentkit, so the store can use
them: they belong with the domain models in agentkit.models).

A memory belongs to a tenant and, optionally, a caller-chosen scope (an end user, a
project): the pair is its namespace. Nothing crosses namespaces: a task with scope
`user-1` recalls only `user-1`'s memories, an unscoped task only the unscoped ones.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from agentkit.ids import new_task_id

#: A memory is a fact, not a document: a few sentences. (e5 reads 512 tokens of it.)
MAX_MEMORY_CHARS = 2_000
MAX_SCOPE_CHARS = 128
MAX_RECALL = 50
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@=+-]{0,127}$")


def check_scope(value: str | None) -> str | None:
    """A memory scope: 1-128 of letters, digits and `_ . : @ = + -`, starting with a letter
    or digit (no `/`, `#`, `|`: they separate the parts of a namespace and of a key)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SCOPE.match(value):
        raise ValueError(
            f"memory scope {value!r}: 1-{MAX_SCOPE_CHARS} of letters, digits and '_.:@=+-', "
            "starting with a letter or digit"
        )
    return value


MemoryScope = Annotated[str, AfterValidator(check_scope)]


def namespace(tenant_id: str, scope: str | None) -> str:
    """The vector index's namespace of a tenant's memories in `scope`."""
    return tenant_id if scope is None else f"{tenant_id}/{scope}"


def new_memory_id() -> str:
    """`mem_` + 26 characters, time-ordered like a task id (same generator)."""
    return "mem_" + new_task_id().removeprefix("tsk_")


class Memory(BaseModel):
    memory_id: str
    scope: str | None = Field(default=None, description="The memory's scope; null: the tenant's.")
    text: str
    tags: list[str] = Field(default_factory=list)
    created_at: str
    embedding_model: str = Field(description="The EmbeddingModel its vector was made with.")
    source: str | None = Field(
        default=None, description="Who wrote it: `api`, or the task (`task:<id>`)."
    )


class RecalledMemory(BaseModel):
    memory: Memory
    score: float = Field(description="Cosine similarity to the query (1.0: the same meaning).")
