"""The built-in `update_plan` tool: the model keeps its task's plan current (each step's
status, or new steps). It is offered only to a task that has a plan, and is handled by
CallModel itself, with no tool step (no RunTools message, no external call): the new plan
is written to the task, a `plan` event records it, and the result tells the model the plan
as it now stands.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from agentkit.models.domain import MAX_PLAN_STEPS, PlanStep, ToolCall, ToolSpec
from agentkit.planner.planning import plan_text

UPDATE_PLAN = "update_plan"


class UpdatePlanArgs(BaseModel):
    steps: list[PlanStep] = Field(
        min_length=1,
        max_length=MAX_PLAN_STEPS,
        description="The whole plan, in order, each step with its status: pending, "
        "in_progress, completed or skipped.",
    )


def _spec() -> ToolSpec:
    schema = UpdatePlanArgs.model_json_schema()
    schema.pop("title", None)
    return ToolSpec(
        name=UPDATE_PLAN,
        description="Update your plan: send every step, in order, with its current status "
        "(mark steps completed as you finish them).",
        parameters=schema,
    )


#: What the model is shown (the same for every task with a plan).
UPDATE_PLAN_SPEC = _spec()


class PlanUpdate(BaseModel):
    """What one `update_plan` call makes: the new plan (None when the call was invalid)
    and the tool result's text."""

    steps: list[PlanStep] | None
    result: str
    is_error: bool = False


def apply_update(call: ToolCall) -> PlanUpdate:
    """The plan a call asks for, or an error result naming the bad field."""
    try:
        args = UpdatePlanArgs.model_validate(call.arguments)
    except ValidationError as error:
        problems = "; ".join(
            f"field '{'.'.join(str(part) for part in item['loc']) or '(arguments)'}': "
            f"{item['msg']}"
            for item in error.errors(include_url=False)
        )
        return PlanUpdate(steps=None, result=f"error: {problems}", is_error=True)
    done = sum(1 for step in args.steps if step.status in ("completed", "skipped"))
    return PlanUpdate(
        steps=args.steps,
        result=f"plan updated ({done}/{len(args.steps)} done):\n{plan_text(args.steps)}",
    )
