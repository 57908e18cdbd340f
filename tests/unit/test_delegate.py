"""The `delegate` tool's rules, without a store: limits, tools, budgets, ids."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.models.domain import Task, ToolCall, Usage
from agentkit.models.scripted import ScriptedTurn
from agentkit.tools.delegate import (
    DELEGATE,
    DelegationLimits,
    child_task_id,
    delegate_tool,
    plan_children,
)


def _parent(**changes: Any) -> Task:
    values: dict[str, Any] = {"task_id": "tsk_PARENT", "tenant_id": "acme", "goal": "g",
                              "model": "openai:gpt-4o-mini", "tools": [DELEGATE, "calculator"],
                              "max_turns": 8, "memory_scope": "user-1", **changes}
    return Task(**values)


def _call(*goals: str, call_id: str = "c1", **extra: Any) -> ToolCall:
    return ToolCall(id=call_id, name=DELEGATE,
                    arguments={"tasks": [{"goal": g, **extra} for g in goals]})


def test_sub_tasks_inherit_the_parent_and_split_what_it_has_left() -> None:
    parent = _parent(max_tokens=1000, max_cost_usd=0.9,
                     usage=Usage(input_tokens=50, output_tokens=50, cost_usd=0.3))
    plan = plan_children(parent, 2, [(0, _call("a", "b")), (1, _call("c", call_id="c2"))],
                         limits=DelegationLimits())
    assert not plan.refused
    assert [(c.call_id, c.index, c.position) for c in plan.children] == [
        ("c1", 0, 0), ("c1", 0, 1), ("c2", 1, 0)]
    for child in plan.children:
        task = child.task
        assert task.parent_id == "tsk_PARENT" and task.depth == 1 and task.tenant_id == "acme"
        assert task.model == parent.model and task.memory_scope == "user-1"
        assert task.max_tokens == 900 // 3 and task.max_cost_usd == pytest.approx(0.2)
        assert task.max_turns == 8 and task.tools == [DELEGATE, "calculator"]
    assert [c.task.goal for c in plan.children] == ["a", "b", "c"]


def test_ids_are_stable_across_retries_and_shaped_like_task_ids() -> None:
    first = child_task_id("tsk_P", 3, "call_3_0", 1)
    assert first == child_task_id("tsk_P", 3, "call_3_0", 1)
    assert first != child_task_id("tsk_P", 3, "call_3_0", 2)
    assert first.startswith("tsk_") and len(first) == 30


def test_a_sub_task_asks_for_fewer_turns_never_more() -> None:
    plan = plan_children(_parent(), 1, [(0, _call("a", max_turns=3)),
                                        (1, _call("b", call_id="c2", max_turns=50))],
                         limits=DelegationLimits())
    assert [c.task.max_turns for c in plan.children] == [3, 8]


@pytest.mark.parametrize(
    ("parent", "call", "limits", "expected"),
    [
        (_parent(), _call("a", tools=["http_fetch", "calculator"]), DelegationLimits(),
         "tasks[0].tools: http_fetch not among this task's tools"),
        (_parent(depth=1), _call("a", tools=[DELEGATE]), DelegationLimits(max_depth=2),
         "a sub-task at depth 2 cannot delegate (MaxDelegationDepth 2)"),
        (_parent(depth=2), _call("a"), DelegationLimits(max_depth=2),
         "this task is at depth 2 and the deployment allows sub-tasks 2 level(s) deep"),
        (_parent(), _call(*"abc"), DelegationLimits(max_fanout=2),
         "this turn asks for 3 sub-tasks, the deployment allows 2 per turn"),
        (_parent(max_cost_usd=0.1, usage=Usage(cost_usd=0.1)), _call("a"), DelegationLimits(),
         "no cost budget left to delegate"),
        (_parent(), ToolCall(id="c1", name=DELEGATE, arguments={"tasks": [{"goal": ""}]}),
         DelegationLimits(), "invalid arguments: field 'tasks.0.goal'"),
    ],
)
def test_refusals_name_the_rule(parent: Task, call: ToolCall, limits: DelegationLimits,
                                expected: str) -> None:
    plan = plan_children(parent, 1, [(0, call)], limits=limits)
    assert not plan.children
    assert expected in plan.refused["c1"], plan.refused


def test_at_the_deepest_level_delegate_is_left_out_by_default() -> None:
    plan = plan_children(_parent(depth=1), 1, [(0, _call("a"))],
                         limits=DelegationLimits(max_depth=2))
    assert plan.children[0].task.tools == ["calculator"]


def test_the_tool_is_listed_with_its_schema_and_refuses_to_run_alone() -> None:
    tool = delegate_tool()
    assert tool.spec().parameters["required"] == ["tasks"]
    from agentkit.tools.registry import ToolRegistry

    result = ToolRegistry([tool]).run(_call("a"))
    assert result.is_error and "not started or did not report" in result.content


def test_a_scripted_delegate_call_carries_its_sub_tasks_scripts() -> None:
    turn = ScriptedTurn.model_validate({"tool_calls": [{
        "name": DELEGATE, "arguments": {"tasks": [{"goal": "a"}]},
        "child_scripts": [[{"content": "A"}]]}]})
    call = turn.tool_calls[0]
    assert call.child_script(0) == [ScriptedTurn(content="A")]
    assert call.child_script(1) is None
    with pytest.raises(ValueError, match="content, tool_calls, plan or error"):
        ScriptedTurn.model_validate({"tool_calls": [{
            "name": DELEGATE, "child_scripts": [[{}]]}]})
