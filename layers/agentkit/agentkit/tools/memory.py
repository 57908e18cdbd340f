"""The long-term memory tools, `remember(text, tags?)` and `recall(query, k?)`.

They act for one task: its tenant and its memory scope are bound when the tools are made
(`memory_tools`), never taken from the model's arguments, so a model can neither read nor
write another tenant's or another scope's memories whatever it sends. The specs the model
sees (`memory_tool_specs()`) need no task: where the deployment has long-term memory its
registry holds `unbound_memory_tools()` (listed and checked like the other built-ins, at
submit and by Plan), and RunTools swaps in the tools bound to the task whose calls it runs
(`ToolRegistry.with_tools`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.memory.models import MAX_MEMORY_CHARS
from agentkit.models.domain import ToolSpec, Usage
from agentkit.tools.registry import Tool, ToolError

if TYPE_CHECKING:
    from agentkit.llm.embeddings import EmbeddingUsage
    from agentkit.memory.long_term import LongTermMemory

logger = logging.getLogger(__name__)

REMEMBER = "remember"
RECALL = "recall"
MAX_TOOL_RECALL = 20
MEMORY_TOOLS = (REMEMBER, RECALL)


class RememberArgs(BaseModel):
    # defer_build: built when the tool is first run or shown (not at cold start).
    model_config = ConfigDict(defer_build=True)

    text: str = Field(
        min_length=1, max_length=MAX_MEMORY_CHARS,
        description="A durable fact worth knowing in later tasks, as one self-contained "
        "statement (who or what it is about, in full: 'The customer Acme pays in euros').",
    )
    tags: list[str] = Field(default=[], max_length=10,
                            description="Optional short labels (e.g. 'billing').")


class RecallArgs(BaseModel):
    model_config = ConfigDict(defer_build=True)

    query: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS,
                       description="What to look for, in words: memories are found by meaning.")
    k: int = Field(default=5, ge=1, le=MAX_TOOL_RECALL,
                   description=f"At most this many memories (1-{MAX_TOOL_RECALL}).")


_DESCRIPTIONS = {
    REMEMBER: "Save a fact to long-term memory, for this and later tasks. A fact already "
    "remembered is not saved twice.",
    RECALL: "Search long-term memory by meaning; the closest memories first, with their "
    "similarity (1.0: the same meaning).",
}


def memory_tool_specs() -> list[ToolSpec]:
    """What the model is shown (the same for every task); made when asked, not at import, so
    a function that only lists or checks tool names never builds the schemas."""
    return [tool.spec() for tool in unbound_memory_tools()]


def unbound_memory_tools(why: str = "long-term memory is not bound to a task here") -> list[Tool]:
    """`remember` and `recall` as the deployment's registry lists them: their specs, and a
    refusal (`error: <why>`) if one is run without being bound to a task (RunTools binds
    them; it also answers with these when the memory cannot be made)."""

    def unbound(_: Any) -> None:
        raise ToolError(why)

    return [
        Tool(name=name, description=_DESCRIPTIONS[name], args_model=model, func=unbound,
             timeout_s=30)
        for name, model in ((REMEMBER, RememberArgs), (RECALL, RecallArgs))
    ]


def memory_tools(
    memory: LongTermMemory, *, tenant_id: str, scope: str | None, task_id: str | None = None,
    on_usage: Callable[[Usage], None] | None = None,
) -> list[Tool]:
    """`remember` and `recall` acting for the task's tenant and scope; `on_usage` is given
    what each call's embedding cost (the task's usage counts it)."""

    def count(usage: EmbeddingUsage) -> None:
        if on_usage is None:
            return
        try:
            on_usage(usage.as_task_usage())
        except Exception:  # the call's work is done: a lost count must not undo it
            logger.warning("task %s: an embedding's usage was not counted", task_id,
                           exc_info=True)

    def remember(args: RememberArgs) -> dict[str, Any]:
        remembered = memory.remember(
            tenant_id, args.text, scope=scope, tags=args.tags,
            source=f"task:{task_id}" if task_id else None,
        )
        count(remembered.usage)
        return {
            "memory_id": remembered.memory.memory_id,
            "saved": remembered.created,
            **({} if remembered.created else {"already_known": remembered.memory.text}),
        }

    def recall(args: RecallArgs) -> dict[str, Any]:
        recalled = memory.recall(tenant_id, args.query, scope=scope, k=args.k)
        count(recalled.usage)
        return {"memories": [
            {"memory_id": hit.memory.memory_id, "text": hit.memory.text,
             "tags": hit.memory.tags, "created_at": hit.memory.created_at,
             "score": round(hit.score, 3)}
            for hit in recalled.memories
        ]}

    return [
        Tool(name=REMEMBER, description=_DESCRIPTIONS[REMEMBER], args_model=RememberArgs,
             func=remember, timeout_s=30),
        Tool(name=RECALL, description=_DESCRIPTIONS[RECALL], args_model=RecallArgs,
             func=recall, timeout_s=30),
    ]
