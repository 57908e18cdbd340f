"""The `delegate` tool: the model hands independent sub-goals to sub-tasks (child tasks)
that run in parallel, each its own execution of the agent loop; their answers come back
as the call's result.

The tool is not run like the others. The gate routes a turn with `delegate` calls through
WaitForChildren (agentkit.loop.children), which makes the sub-tasks (`plan_children`, here:
the limits, the tools and the budgets), starts them, and parks the task; the last sub-task
to end writes each call's result. When RunTools reaches the call its result is stored
already; the function registered here only answers a call that never got one.

The rules (each refusal is the call's error result, naming the limit):
* at most `max_fanout` sub-tasks in one turn (all its `delegate` calls together);
* a sub-task is one level deeper than its parent, at most `max_depth` (a task at the
  deepest level cannot delegate: its sub-tasks do not get `delegate` by default, and may
  not ask for it);
* a sub-task's tools are a subset of its parent's (default: the parent's own);
* budgets are carved out of what the parent has left: of n sub-tasks in a turn, each gets
  at most 1/n of the parent's remaining max_tokens and max_cost_usd, and at most the
  parent's max_turns; the parent's usage includes its sub-tasks' (they add theirs when
  they end), so what they spend counts against the parent's budgets too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.models.domain import ModelText, Task, ToolCall
from agentkit.tools.registry import Tool, ToolError, describe_validation_error

DELEGATE = "delegate"
#: Built-ins a task gets only when its request names them (not in the default tool list):
#: sub-tasks multiply what a task spends, so a caller asks for them.
OPT_IN_TOOLS = frozenset({DELEGATE})
#: Documented defaults of the deployment parameters MaxDelegationDepth / MaxDelegationFanout.
DEFAULT_MAX_DEPTH = 2
DEFAULT_MAX_FANOUT = 10
MAX_SUBGOAL_CHARS = 16_000


class SubTask(BaseModel):
    # defer_build: built when a task first delegates (not at cold start).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

    goal: ModelText = Field(
        min_length=1, max_length=MAX_SUBGOAL_CHARS,
        description="The sub-goal, self-contained: the sub-agent sees only this text.",
    )
    tools: list[str] | None = Field(
        default=None, max_length=64,
        description="Tools the sub-agent may use, a subset of yours; default: yours.",
    )
    max_turns: int | None = Field(
        default=None, ge=1, le=50, description="Model calls at most; default: your max_turns."
    )


class DelegateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    tasks: list[SubTask] = Field(
        min_length=1, max_length=50,
        description="Independent sub-goals; each runs as its own agent, all in parallel.",
    )


DESCRIPTION = (
    "Hand independent sub-goals to sub-agents that work on them in parallel and answer "
    "you. Use it for parts of the work that do not depend on each other. The result lists "
    "each sub-task's status and answer (or error), in the order given."
)


def delegate_tool() -> Tool:
    """`delegate` as the registry lists it. Its sub-tasks answer through WaitForChildren;
    run directly (its result was never written), it says so."""

    def not_started(_: Any) -> None:
        raise ToolError("the sub-tasks of this call were not started or did not report")

    return Tool(name=DELEGATE, description=DESCRIPTION, args_model=DelegateArgs,
                func=not_started, timeout_s=5)


@dataclass(frozen=True)
class DelegationLimits:
    max_depth: int = DEFAULT_MAX_DEPTH
    max_fanout: int = DEFAULT_MAX_FANOUT


@dataclass(frozen=True)
class ChildPlan:
    """One sub-task to make: its record, and which call and position it answers."""

    task: Task
    call_id: str
    index: int
    position: int


@dataclass
class Delegation:
    """What a turn's `delegate` calls make: the sub-tasks, and each refused call's reason."""

    children: list[ChildPlan] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def child_task_id(parent_id: str, turn: int, call_id: str, position: int) -> str:
    """The same id on every retry (so a retried step makes no second sub-task), shaped like
    agentkit.ids' (`tsk_` + 26 Crockford base32 characters)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    digest = hashlib.sha256(f"{parent_id}|{turn}|{call_id}|{position}".encode()).digest()
    value = int.from_bytes(digest[:17], "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(alphabet[index])
    return "tsk_" + "".join(chars)


def plan_children(
    parent: Task,
    turn: int,
    calls: list[tuple[int, ToolCall]],
    *,
    limits: DelegationLimits,
) -> Delegation:
    """The sub-tasks of the turn's `delegate` calls (`(index in the turn, call)`), or why a
    call is refused. Checks every call before making anything, so the budget is split
    among the sub-tasks that will run."""
    delegation = Delegation()
    accepted: list[tuple[int, ToolCall, DelegateArgs]] = []
    depth = parent.depth + 1
    for index, call in calls:
        try:
            args = DelegateArgs.model_validate(call.arguments)
        except ValidationError as error:
            delegation.refused[call.id] = (
                f"error: invalid arguments: {describe_validation_error(error)}")
            continue
        if depth > limits.max_depth:
            delegation.refused[call.id] = (
                f"error: delegation depth limit reached: this task is at depth "
                f"{parent.depth} and the deployment allows sub-tasks {limits.max_depth} "
                "level(s) deep (MaxDelegationDepth); do the work yourself")
            continue
        problem = _tools_problem(parent, args, depth, limits)
        if problem:
            delegation.refused[call.id] = f"error: {problem}"
            continue
        accepted.append((index, call, args))
    count = sum(len(args.tasks) for _, _, args in accepted)
    if count > limits.max_fanout:
        for _, call, _ in accepted:
            delegation.refused[call.id] = (
                f"error: fan-out limit: this turn asks for {count} sub-tasks, the deployment "
                f"allows {limits.max_fanout} per turn (MaxDelegationFanout); ask for fewer")
        return delegation
    if not count:
        return delegation
    budgets = _carve(parent, count)
    if isinstance(budgets, str):
        for _, call, _ in accepted:
            delegation.refused[call.id] = f"error: {budgets}"
        return delegation
    for index, call, args in accepted:
        for position, sub in enumerate(args.tasks):
            tools = sub.tools if sub.tools is not None else _default_tools(parent, depth, limits)
            delegation.children.append(ChildPlan(
                task=Task(
                    task_id=child_task_id(parent.task_id, turn, call.id, position),
                    tenant_id=parent.tenant_id,
                    goal=sub.goal,
                    model=parent.model,
                    fallback_models=parent.fallback_models,
                    tools=list(dict.fromkeys(tools)),
                    memory_scope=parent.memory_scope,
                    memory=parent.memory,
                    max_turns=min(sub.max_turns or parent.max_turns, parent.max_turns),
                    max_wait_seconds=parent.max_wait_seconds,
                    parent_id=parent.task_id,
                    depth=depth,
                    **budgets,
                ),
                call_id=call.id, index=index, position=position,
            ))
    return delegation


def _default_tools(parent: Task, depth: int, limits: DelegationLimits) -> list[str]:
    if depth >= limits.max_depth:
        return [name for name in parent.tools if name != DELEGATE]
    return list(parent.tools)


def _tools_problem(parent: Task, args: DelegateArgs, depth: int,
                   limits: DelegationLimits) -> str | None:
    for position, sub in enumerate(args.tasks):
        if sub.tools is None:
            continue
        foreign = [name for name in sub.tools if name not in parent.tools]
        if foreign:
            return (f"tasks[{position}].tools: {', '.join(foreign)} not among this task's "
                    f"tools ({', '.join(parent.tools) or 'none'}); a sub-task's tools are a "
                    "subset of its parent's")
        if DELEGATE in sub.tools and depth >= limits.max_depth:
            return (f"tasks[{position}].tools: a sub-task at depth {depth} cannot delegate "
                    f"(MaxDelegationDepth {limits.max_depth})")
    return None


def _carve(parent: Task, count: int) -> dict[str, Any] | str:
    """Each sub-task's max_tokens / max_cost_usd: 1/count of what the parent has left (its
    own limits unset: none). A message when nothing is left to give."""
    budgets: dict[str, Any] = {"max_tokens": None, "max_cost_usd": None}
    if parent.max_tokens is not None:
        left = parent.max_tokens - parent.run_usage.total_tokens
        share = left // count
        if share < 1:
            return (f"no token budget left to delegate: {max(left, 0)} of max_tokens "
                    f"{parent.max_tokens} left for {count} sub-task(s)")
        budgets["max_tokens"] = share
    if parent.max_cost_usd is not None:
        left_usd = parent.max_cost_usd - parent.run_usage.cost_usd
        share_usd = math.floor(left_usd / count * 1e6) / 1e6
        if share_usd <= 0:
            return (f"no cost budget left to delegate: ${max(left_usd, 0):.6f} of "
                    f"max_cost_usd {parent.max_cost_usd:g} left for {count} sub-task(s)")
        budgets["max_cost_usd"] = share_usd
    return budgets
