"""The planning call: before its first turn a task with plan `always` or `auto` asks its
model for a short plan, in one structured call (the reply is JSON `{"steps": [...]}`, by
the provider's native structured output where it has one).

With `auto` the model may answer no steps: the goal needs no plan (one step). With
`always` an empty answer still makes a plan: the goal as its one step. The steps start
`pending`; the model keeps them current with the `update_plan` tool
(agentkit.planner.update_plan).
"""

from __future__ import annotations

import json
from typing import Any

from agentkit.llm.base import LLMRequest, LLMResponse, ResponseFormat
from agentkit.models.domain import (
    MAX_PLAN_STEP_CHARS,
    MAX_PLAN_STEPS,
    Message,
    PlanStep,
    Task,
    ToolSpec,
)

#: The planning reply's shape (OpenAI strict mode: every property required, none extra).
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "items": {"type": "string"},
            "description": f"The ordered steps, at most {MAX_PLAN_STEPS}, each one short "
            "sentence.",
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}

#: The reply's room: a few short steps.
PLAN_MAX_TOKENS = 1024

_PROMPT = """Before working on the goal below, write a short plan: the ordered steps you will
take, at most {max_steps}, each one short sentence (what, not how). {when}
Answer with JSON only: {{"steps": ["...", "..."]}}.

Tools you will have: {tools}

Goal:
{goal}"""

_AUTO = ('If the goal needs only one step (a direct answer, a single tool call), answer '
         '{"steps": []}: no plan is needed.')
_ALWAYS = "Always give at least one step."


class PlanReplyError(ValueError):
    """The model's planning reply is not the plan's JSON shape."""


def planning_request(task: Task, tools: list[ToolSpec], *, model: str) -> LLMRequest:
    """The structured call that asks `model` (the provider's model name) for the plan."""
    prompt = _PROMPT.format(
        max_steps=MAX_PLAN_STEPS,
        when=_AUTO if task.plan == "auto" else _ALWAYS,
        tools=", ".join(spec.name for spec in tools) or "(none)",
        goal=task.goal,
    )
    return LLMRequest(
        model=model,
        messages=[
            Message(role="system", content="You plan the work of an autonomous agent."),
            Message(role="user", content=prompt),
        ],
        max_tokens=PLAN_MAX_TOKENS,
        purpose="plan",
        response_format=ResponseFormat(name="plan", json_schema=PLAN_SCHEMA, strict=True),
    )


def plan_from_reply(task: Task, response: LLMResponse) -> list[PlanStep]:
    """The plan the reply gives: its steps, pending ([] with `auto` and no steps: no plan
    needed). Long steps are cut, extra steps dropped; PlanReplyError when it is not JSON of
    the plan's shape."""
    text = (response.message.content or "").strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except ValueError as error:
        raise PlanReplyError(f"the planning reply is not JSON: {error}") from None
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
        raise PlanReplyError('the planning reply is not {"steps": ["...", ...]}')
    titles = [" ".join(step.split())[:MAX_PLAN_STEP_CHARS] for step in steps]
    titles = [title for title in titles if title][:MAX_PLAN_STEPS]
    if not titles and task.plan == "always":
        titles = [" ".join(task.goal.split())[:MAX_PLAN_STEP_CHARS]]
    return [PlanStep(title=title) for title in titles]


def plan_text(steps: list[PlanStep]) -> str:
    """The plan as the model reads it: `1. [completed] Find the data`, one step a line."""
    return "\n".join(
        f"{number}. [{step.status}] {step.title}" for number, step in enumerate(steps, start=1)
    )


def plan_message(steps: list[PlanStep]) -> str:
    """The instructions that carry the plan into the conversation."""
    return (
        "Your plan for this task:\n"
        f"{plan_text(steps)}\n"
        "Follow it. Keep it current with the update_plan tool: mark a step in_progress "
        "when you start it and completed (or skipped) when it is done, and change the steps "
        "if the plan must change."
    )
