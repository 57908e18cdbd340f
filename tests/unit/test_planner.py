"""agentkit.planner: the planning reply read into a plan, and update_plan's answers."""

from __future__ import annotations

import json

import pytest

from agentkit.llm.base import LLMResponse
from agentkit.models.domain import Message, PlanStep, Task, ToolCall, Usage
from agentkit.planner.planning import (
    PLAN_SCHEMA,
    PlanReplyError,
    plan_from_reply,
    plan_message,
    planning_request,
)
from agentkit.planner.update_plan import UPDATE_PLAN_SPEC, apply_update


def _task(plan: str) -> Task:
    return Task(task_id="tsk_1", goal="  Find the\ncapital  ", model="scripted", max_turns=5,
                plan=plan)


def _reply(text: str) -> LLMResponse:
    return LLMResponse(message=Message(role="assistant", content=text), finish_reason="stop",
                       usage=Usage())


def test_the_planning_request_is_a_structured_call_without_tools():
    request = planning_request(_task("auto"), [UPDATE_PLAN_SPEC], model="gpt-x")
    assert request.purpose == "plan" and request.tools == []
    assert request.response_format is not None
    assert request.response_format.json_schema == PLAN_SCHEMA
    assert request.response_format.strict is True
    prompt = request.messages[-1].content or ""
    assert '{"steps": []}' in prompt and "update_plan" in prompt  # auto; the tools named
    always = planning_request(_task("always"), [], model="gpt-x").messages[-1].content or ""
    assert "at least one step" in always and '{"steps": []}' not in always


def test_a_reply_becomes_pending_steps_within_the_limits():
    steps = [f"  step\n{n}  " for n in range(12)] + ["", "x" * 300]
    plan = plan_from_reply(_task("auto"), _reply("```json\n" + json.dumps({"steps": steps})
                                                 + "\n```"))
    assert [step.title for step in plan] == [f"step {n}" for n in range(10)]
    assert {step.status for step in plan} == {"pending"}
    assert len(plan_from_reply(_task("auto"), _reply(json.dumps(
        {"steps": ["x" * 300]})))[0].title) == 200


def test_no_steps_is_no_plan_with_auto_and_the_goal_with_always():
    assert plan_from_reply(_task("auto"), _reply('{"steps": []}')) == []
    assert plan_from_reply(_task("always"), _reply('{"steps": []}')) == [
        PlanStep(title="Find the capital")]


@pytest.mark.parametrize("text", ["no plan", '{"steps": "a"}', '["a"]', '{"steps": [1]}'])
def test_a_reply_of_another_shape_is_refused(text):
    with pytest.raises(PlanReplyError):
        plan_from_reply(_task("auto"), _reply(text))


def test_update_plan_answers_with_the_plan_as_it_stands():
    call = ToolCall(id="c1", name="update_plan", arguments={"steps": [
        {"title": "Look", "status": "completed"}, {"title": "Answer", "status": "in_progress"}]})
    update = apply_update(call)
    assert not update.is_error
    assert update.steps == [PlanStep(title="Look", status="completed"),
                            PlanStep(title="Answer", status="in_progress")]
    assert update.result == ("plan updated (1/2 done):\n1. [completed] Look\n"
                             "2. [in_progress] Answer")
    refused = apply_update(ToolCall(id="c2", name="update_plan", arguments={"steps": []}))
    assert refused.is_error and refused.steps is None
    assert refused.result.startswith("error: field 'steps':")


def test_the_plan_message_names_the_tool():
    text = plan_message([PlanStep(title="Look")])
    assert "1. [pending] Look" in text and "update_plan" in text
    assert UPDATE_PLAN_SPEC.parameters["properties"]["steps"]["maxItems"] == 10
