"""Planning and answers in shape end to end on the offline stack, through the API: a
planned task whose plan ticks through (scripted), an `output_schema` task returning
`answer_json`, one whose answer never validates (FAILED naming the schema error), and the
planning call and structured output through a real provider client against the wire fakes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit.models.domain import TaskStatus
from opspawn.client import ApiError, OpspawnClient
from tests.support.fake_providers import FakeProviders, Reply

TIMEOUT_S = 120

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def _tick(*statuses: str) -> dict[str, Any]:
    titles = ["Add", "Multiply", "Power"]
    return {"name": "update_plan", "arguments": {"steps": [
        {"title": title, "status": status}
        for title, status in zip(titles, statuses, strict=True)]}}


def test_a_planned_three_step_task_ticks_its_plan_through(api: OpspawnClient) -> None:
    task = api.submit({
        "goal": "Work out 2 + 2, then 3 * 3, then 4 ** 2.", "model": "scripted",
        "plan": "always", "tools": ["calculator"],
        "scripted_turns": [
            {"plan": ["Add", "Multiply", "Power"]},
            {"tool_calls": [_tick("in_progress", "pending", "pending"),
                            {"name": "calculator", "arguments": {"expression": "2 + 2"}}]},
            {"tool_calls": [_tick("completed", "in_progress", "pending"),
                            {"name": "calculator", "arguments": {"expression": "3 * 3"}}]},
            {"tool_calls": [_tick("completed", "completed", "in_progress"),
                            {"name": "calculator", "arguments": {"expression": "4 ** 2"}}]},
            {"tool_calls": [_tick("completed", "completed", "completed")]},
            {"content": "4, 9 and 16."},
        ],
    })
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "4, 9 and 16." and view.plan == "always"
    assert [(s.title, s.status) for s in view.plan_steps or []] == [
        ("Add", "completed"), ("Multiply", "completed"), ("Power", "completed")]
    calculator = [m.content for m in view.messages if m.name == "calculator"]
    assert calculator == ["4", "9", "16"]
    # The planning call and the five turns.
    assert view.usage.model_calls == 6

    plans = [event for event in api.events(task.task_id) if event.kind == "plan"]
    done = [sum(step["status"] == "completed" for step in event.detail["steps"])
            for event in plans]
    assert done == [0, 0, 1, 2, 3]  # made, then each tick in order
    assert plans[0].detail["needed"] is True and plans[0].usage is not None


def test_an_output_schema_task_returns_answer_json(api: OpspawnClient) -> None:
    task = api.submit({
        "goal": "Which is the capital of France, and how many people live there?",
        "model": "scripted", "output_schema": CITY,
        "scripted_turns": [{"content": '{"city": "Paris", "population": 2102650}'}],
    })
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer_json == {"city": "Paris", "population": 2102650}
    assert view.output_schema == CITY


def test_an_answer_that_never_validates_fails_naming_the_schema_error(
    api: OpspawnClient,
) -> None:
    task = api.submit({
        "goal": "Which is the capital of France, and how many people live there?",
        "model": "scripted", "output_schema": CITY,
        "scripted_turns": [{"content": "Paris, about two million."},
                           {"content": '{"city": "Paris", "population": "two million"}'}],
    })
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.FAILED
    assert view.error == ("the final answer does not match output_schema: field "
                          "'answer.population': must be integer")
    assert view.answer_json is None
    # The one repair turn the model got, between its two answers.
    assert [m.role for m in view.messages] == ["system", "user", "assistant", "user",
                                               "assistant"]
    assert "the answer is not JSON" in (view.messages[3].content or "")


def test_a_schema_that_is_no_schema_is_refused_naming_the_field(api: OpspawnClient) -> None:
    with pytest.raises(ApiError) as caught:
        api.submit({"goal": "x", "model": "scripted", "scripted_turns": [{"content": "{}"}],
                    "output_schema": {"type": "object", "required": "city"}})
    assert caught.value.status_code == 400
    assert "output_schema" in json.dumps(caught.value.body)


def test_planning_and_structured_output_through_a_provider(
    api: OpspawnClient, fake_providers: FakeProviders
) -> None:
    before = len(fake_providers.requests_for("openai"))
    fake_providers.script(
        "openai",
        Reply(text='{"steps": ["Find the capital", "Count its people"]}'),
        Reply(text='{"city": "Paris", "population": 2102650}'),
    )
    task = api.submit({"goal": "Capital of France and its population?",
                       "model": "openai:gpt-4o-mini", "plan": "auto", "output_schema": CITY})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer_json == {"city": "Paris", "population": 2102650}
    assert [s.title for s in view.plan_steps or []] == ["Find the capital", "Count its people"]
    planning, turn = fake_providers.requests_for("openai")[before:]
    assert planning.body["response_format"]["json_schema"]["name"] == "plan"
    assert planning.body["response_format"]["json_schema"]["strict"] is True
    assert "tools" not in planning.body
    assert turn.body["response_format"]["json_schema"]["schema"] == CITY
    assert any(tool["function"]["name"] == "update_plan" for tool in turn.body["tools"])
