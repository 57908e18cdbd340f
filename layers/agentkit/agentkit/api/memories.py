"""/memories: a tenant's long-term memories, written and searched through the API (logic:
agentkit.memory.long_term; routes: agentkit.http.memories)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import InputError
from agentkit.llm.embeddings import EmbeddingUsage
from agentkit.memory.long_term import LongTermMemory, Remembered
from agentkit.memory.models import MAX_MEMORY_CHARS, Memory
from agentkit.models.domain import MemoryScope, check_scope
from agentkit.store.memories import MemoryNotFoundError as MemoryNotFoundError  # re-exported
from agentkit.store.vectors import MAX_TAG_CHARS, MAX_TAGS


class MemoryDisabledError(RuntimeError):
    """The deployment has no EmbeddingModel: long-term memory is off."""

    def __init__(self) -> None:
        super().__init__("long-term memory is off in this deployment (no EmbeddingModel)")


class CreateMemoryRequest(BaseModel):
    """Body of POST /memories."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS,
                      description="The fact to remember, in a sentence or a few.")
    tags: list[str] = Field(default=[], max_length=MAX_TAGS,
                            description=f"Up to {MAX_TAGS} tags of 1-{MAX_TAG_CHARS} characters "
                            "(a search may ask for tags).")
    scope: MemoryScope | None = Field(
        default=None,
        description="Narrows the memory to a scope the caller chooses (an end user, a project): "
        "only tasks and searches of that scope find it. None: the tenant's own.",
    )


class MemoryMatch(Memory):
    """A memory, with its similarity to the search's query (none in a plain listing)."""

    score: float | None = None


class MemoryList(BaseModel):
    """Body of GET /memories: the best matches first (with `query`), else the newest first."""

    items: list[MemoryMatch]
    usage: EmbeddingUsage | None = Field(
        default=None, description="What embedding the query cost (with `query`)."
    )


MemoryProvider = Callable[[], LongTermMemory | None]


def _memory(provide: MemoryProvider) -> LongTermMemory:
    memory = provide()
    if memory is None:
        raise MemoryDisabledError()
    return memory


def _input_error(error: ValueError, fields: tuple[str, ...]) -> InputError:
    message = str(error)
    field = next((f for f in fields if message.startswith((f"{f}:", f"{f} ", f"memory {f}"))),
                 fields[0])
    return InputError(field, message.split(": ", 1)[1] if message.startswith(f"{field}:")
                      else message)


def add_memory(request: CreateMemoryRequest, *, tenant_id: str,
               memory: MemoryProvider) -> Remembered:
    """Remember `request.text` (a memory that already says the same is answered instead)."""
    long_term = _memory(memory)
    try:
        return long_term.remember(tenant_id, request.text, scope=request.scope,
                                  tags=request.tags, source="api")
    except ValueError as error:
        if type(error) is not ValueError:  # e.g. a VectorDimensionError: not the caller's
            raise
        raise _input_error(error, ("text", "tags", "scope")) from None


def search_memories(*, tenant_id: str, memory: MemoryProvider, query: str | None,
                    limit: int, scope: str | None) -> MemoryList:
    """With `query`: the `limit` memories nearest to it, best first; without: the newest."""
    long_term = _memory(memory)
    try:
        check_scope(scope)
    except ValueError as error:
        raise InputError("scope", str(error)) from None
    if query is None or not query.strip():
        return MemoryList(items=[MemoryMatch(**m.model_dump())
                                 for m in long_term.list_newest(tenant_id, scope=scope,
                                                                limit=limit)])
    try:
        recalled = long_term.recall(tenant_id, query, scope=scope, k=limit)
    except ValueError as error:
        if type(error) is not ValueError:
            raise
        raise _input_error(error, ("query", "limit")) from None
    return MemoryList(
        items=[MemoryMatch(**hit.memory.model_dump(), score=hit.score)
               for hit in recalled.memories],
        usage=recalled.usage,
    )


def get_memory(memory_id: str, *, tenant_id: str, memory: MemoryProvider) -> Memory:
    return _memory(memory).get(tenant_id, memory_id)


def delete_memory(memory_id: str, *, tenant_id: str, memory: MemoryProvider) -> Memory:
    return _memory(memory).forget(tenant_id, memory_id)
