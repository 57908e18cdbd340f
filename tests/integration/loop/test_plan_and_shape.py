"""The planner (plan on submit, the planning call, `update_plan`) and answers in shape
(`output_schema`, `answer_json`, the repair turn) driven in-process on moto with the
scripted model, state by state, as the state machine would."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.api.submit import submit_task
from agentkit.api.tasks import get_task_view
from agentkit.config import Settings
from agentkit.errors import InputError
from agentkit.llm import get_client
from agentkit.llm.base import BaseLLMClient, LLMRequest, LLMResponse
from agentkit.loop.call_model import call_model
from agentkit.loop.finalize import finalize_task
from agentkit.loop.plan import plan_task
from agentkit.loop.run_tools import run_tool_call
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Message, Task, TaskStatus, Usage
from agentkit.models.payloads import ModelStepOutput, TaskRef, TurnRef
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

SETTINGS = Settings(table_name="t", scripted_model_enabled=True, default_max_turns=8)

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def _submit(store: TaskStore, registry: ToolRegistry, turns: list[dict[str, Any]],
            settings: Settings = SETTINGS, **extra: Any) -> str:
    request = SubmitTaskRequest.model_validate(
        {"goal": "Work out 2 + 2, then 3 * 3, then 4 ** 2.", "model": "scripted",
         "scripted_turns": turns, **extra}
    )
    task = submit_task(request, store=store, registry=registry, settings=settings,
                       start_execution=lambda task_id: f"arn:{task_id}")
    return task.task_id


def _scripted(store: TaskStore) -> Any:
    return lambda task, model: get_client(model, scripted_turns=store.get_script(task.task_id),
                                          scripted_enabled=True)


def _drive(store: TaskStore, registry: ToolRegistry, task_id: str,
           client_for: Any = None) -> list[ModelStepOutput]:
    """Plan → (CallModel → RunTools)* → CallModel; every CallModel output."""
    step = plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    outputs = []
    while True:
        output = call_model(TurnRef(task_id=task_id, turn=step.turn), store=store,
                            client_for=client_for or _scripted(store))
        outputs.append(output)
        if output.action != "tool_calls":
            return outputs
        for ref in output.tool_calls:
            run_tool_call(ref, store=store, registry=registry)
        step = TurnRef(task_id=task_id, turn=output.turn)


def _tick(*statuses: str) -> dict[str, Any]:
    titles = ["Add", "Multiply", "Power"]
    return {"name": "update_plan", "arguments": {"steps": [
        {"title": title, "status": status} for title, status in zip(titles, statuses,
                                                                    strict=True)]}}


PLANNED = [
    {"plan": ["Add", "Multiply", "Power"], "usage": {"input_tokens": 40, "output_tokens": 12}},
    {"tool_calls": [_tick("completed", "in_progress", "pending"),
                    {"name": "calculator", "arguments": {"expression": "2 + 2"}}]},
    {"tool_calls": [_tick("completed", "completed", "in_progress"),
                    {"name": "calculator", "arguments": {"expression": "3 * 3"}}]},
    {"tool_calls": [_tick("completed", "completed", "completed")]},
    {"content": "4, 9 and 16."},
]


def test_a_planned_task_shows_its_plan_and_ticks_it_off(store, registry):
    task_id = _submit(store, registry, PLANNED, plan="always")
    outputs = _drive(store, registry, task_id)
    # update_plan runs in CallModel: a turn of only update_plan goes straight back to it.
    assert [(o.action, o.route) for o in outputs] == [
        ("tool_calls", "run_tools"), ("tool_calls", "run_tools"),
        ("tool_calls", "call_model"), ("final", None)]
    assert [ref.index for ref in outputs[0].tool_calls] == [1]  # only the calculator
    finalize_task(task_id, store=store)

    view = get_task_view(task_id, store=store, tenant_id="default")
    assert view.status == TaskStatus.SUCCEEDED and view.plan == "always"
    assert [(s.title, s.status) for s in view.plan_steps or []] == [
        ("Add", "completed"), ("Multiply", "completed"), ("Power", "completed")]
    # The plan is part of the opening, as instructions.
    assert [m.role for m in view.messages[:3]] == ["system", "user", "system"]
    assert "1. [pending] Add" in (view.messages[2].content or "")
    assert "update_plan" in (view.messages[2].content or "")
    results = [m for m in view.messages if m.role == "tool" and m.name == "update_plan"]
    assert len(results) == 3 and "(3/3 done)" in (results[-1].content or "")
    # The planning call counts: its usage, and one more model call.
    assert view.usage.model_calls == 5
    assert view.usage.input_tokens >= 40

    plans = [e for e in store.list_events(task_id) if e.kind == "plan"]
    done = [sum(s["status"] == "completed" for s in e.detail["steps"]) for e in plans]
    assert done == [0, 1, 2, 3]
    assert plans[0].usage is not None and plans[0].usage.input_tokens == 40
    assert plans[0].detail["mode"] == "always" and plans[0].turn == 0


def test_update_plan_is_offered_only_to_a_task_with_a_plan(store, registry):
    seen: list[list[str]] = []

    def client_for(task: Task, model: str) -> BaseLLMClient:
        inner = _scripted(store)(task, model)

        class Watching(BaseLLMClient):
            provider = "scripted"

            def complete(self, request: LLMRequest) -> LLMResponse:
                seen.append([spec.name for spec in request.tools])
                return inner.complete(request)

        return Watching()

    planned = _submit(store, registry, [{"plan": ["One", "Two"]}, {"content": "done"}],
                      plan="auto", tools=["calculator"])
    _drive(store, registry, planned, client_for)
    assert seen == [[], ["calculator", "update_plan"]]  # the planning call has no tools
    seen.clear()
    unplanned = _submit(store, registry, [{"plan": []}, {"content": "4"}], plan="auto",
                        tools=["calculator"])
    _drive(store, registry, unplanned, client_for)
    assert seen == [[], ["calculator"]]
    task = store.require_task(unplanned)
    assert task.plan_steps == []  # asked, and none needed
    [event] = [e for e in store.list_events(unplanned) if e.kind == "plan"]
    assert event.detail["needed"] is False


def test_plan_never_makes_no_planning_call_and_is_the_default(store, registry):
    task_id = _submit(store, registry, [{"content": "4"}])
    outputs = _drive(store, registry, task_id)
    assert outputs[-1].action == "final"
    task = store.require_task(task_id)
    assert task.plan == "never" and task.plan_steps is None and task.usage.model_calls == 1
    assert not [e for e in store.list_events(task_id) if e.kind == "plan"]


def test_the_deployment_default_plan_applies(store, registry):
    settings = SETTINGS.model_copy(update={"default_plan": "always"})
    # A script without a plan turn: the scripted model answers "no steps"; `always` still
    # makes a plan, of the goal as its one step.
    task_id = _submit(store, registry, [{"content": "4"}], settings=settings)
    _drive(store, registry, task_id)
    task = store.require_task(task_id)
    assert task.plan == "always"
    assert [s.title for s in task.plan_steps or []] == [
        "Work out 2 + 2, then 3 * 3, then 4 ** 2."]


def test_an_invalid_update_plan_gets_an_error_result_and_keeps_the_plan(store, registry):
    turns = [{"plan": ["One"]},
             {"tool_calls": [{"name": "update_plan", "arguments": {"steps": [
                 {"title": "One", "status": "finished"}]}}]},
             {"content": "done"}]
    task_id = _submit(store, registry, turns, plan="always")
    _drive(store, registry, task_id)
    [result] = [m for m in store.list_messages(task_id) if m.name == "update_plan"]
    assert result.is_error and "field 'steps.0.status'" in (result.content or "")
    assert [s.status for s in store.require_task(task_id).plan_steps or []] == ["pending"]


def test_a_planning_reply_that_is_no_plan_leaves_the_task_unplanned(store, registry):
    class Prose(BaseLLMClient):
        provider = "scripted"

        def complete(self, request: LLMRequest) -> LLMResponse:
            text = "I will think about it." if request.purpose == "plan" else "4"
            return LLMResponse(message=Message(role="assistant", content=text),
                               finish_reason="stop", usage=Usage(input_tokens=5, model_calls=1))

    task_id = _submit(store, registry, [{"content": "4"}], plan="always")
    outputs = _drive(store, registry, task_id, lambda task, model: Prose())
    assert outputs[-1].action == "final"
    [event] = [e for e in store.list_events(task_id) if e.kind == "plan"]
    assert event.error is not None and "not JSON" in event.error
    assert store.require_task(task_id).plan_steps == []


def test_a_refused_planning_call_leaves_the_task_unplanned(store, registry):
    turns = [{"plan": [], "error": {"kind": "fatal", "message": "no structured output"}},
             {"content": "4"}]
    task_id = _submit(store, registry, turns, plan="always")
    outputs = _drive(store, registry, task_id)
    assert outputs[-1].action == "final"
    [event] = [e for e in store.list_events(task_id) if e.kind == "plan"]
    assert event.error is not None and "no structured output" in event.error
    assert store.require_task(task_id).plan_steps == []


def test_a_task_cancelled_during_its_planning_call_stops(store, registry):
    task_id = _submit(store, registry, PLANNED, plan="always")

    def client_for(task: Task, model: str) -> BaseLLMClient:
        inner = _scripted(store)(task, model)

        class Cancelling(BaseLLMClient):
            provider = "scripted"

            def complete(self, request: LLMRequest) -> LLMResponse:
                store.finish_task(task_id, TaskStatus.CANCELLED, error="cancelled")
                return inner.complete(request)

        return Cancelling()

    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    output = call_model(TurnRef(task_id=task_id, turn=0), store=store, client_for=client_for)
    assert output.action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.CANCELLED and task.turn == 0 and task.plan_steps is None
    assert task.usage.model_calls == 1  # the planning call was paid for


def test_planning_counts_in_the_budgets(store, registry):
    turns = [{"plan": ["One", "Two"], "usage": {"input_tokens": 500, "output_tokens": 10}},
             {"content": "done"}]
    task_id = _submit(store, registry, turns, plan="always", max_tokens=400)
    outputs = _drive(store, registry, task_id)
    assert outputs[-1].action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.BUDGET_EXCEEDED and "max_tokens (400)" in (task.error or "")


def test_a_retried_first_turn_does_not_plan_twice(store, registry):
    task_id = _submit(store, registry, PLANNED, plan="always")
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    ref = TurnRef(task_id=task_id, turn=0)
    first = call_model(ref, store=store, client_for=_scripted(store))
    again = call_model(ref, store=store, client_for=_scripted(store))
    assert first == again
    assert len([e for e in store.list_events(task_id) if e.kind == "plan"]) == 2  # made, ticked
    assert store.require_task(task_id).usage.model_calls == 2


# --- answers in shape


def test_an_answer_that_validates_is_kept_as_answer_json(store, registry):
    turns = [{"content": '```json\n{"city": "Paris", "population": 2102650}\n```'}]
    task_id = _submit(store, registry, turns, output_schema=CITY)
    outputs = _drive(store, registry, task_id)
    assert outputs[-1].action == "final"
    finalize_task(task_id, store=store)
    view = get_task_view(task_id, store=store, tenant_id="default")
    assert view.status == TaskStatus.SUCCEEDED
    assert view.answer_json == {"city": "Paris", "population": 2102650}
    assert view.output_schema == CITY
    # The model was told the schema in its instructions.
    assert '"population"' in (view.messages[0].content or "")


def test_one_repair_turn_then_the_answer_validates(store, registry):
    turns = [{"content": "Paris, about two million people."},
             {"content": '{"city": "Paris", "population": 2102650}'}]
    task_id = _submit(store, registry, turns, output_schema=CITY)
    outputs = _drive(store, registry, task_id)
    assert [(o.action, o.route) for o in outputs] == [("tool_calls", "call_model"),
                                                      ("final", None)]
    repair = store.get_message(task_id, 1, 1)
    assert repair is not None and repair.role == "user"
    assert "not JSON" in (repair.content or "")
    finalize_task(task_id, store=store)
    task = store.require_task(task_id)
    assert task.status == TaskStatus.SUCCEEDED and task.answer_json["city"] == "Paris"


def test_an_answer_that_never_validates_fails_naming_the_schema_error(store, registry):
    turns = [{"content": '{"city": "Paris"}'},
             {"content": '{"city": "Paris", "population": "two million"}'}]
    task_id = _submit(store, registry, turns, output_schema=CITY)
    outputs = _drive(store, registry, task_id)
    assert outputs[-1].action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.FAILED and task.answer_json is None
    assert task.error == ("the final answer does not match output_schema: field "
                          "'answer.population': must be integer")
    first_repair = store.get_message(task_id, 1, 1)
    assert first_repair is not None and "field 'answer.population': required" in (
        first_repair.content or "")


def test_the_repair_turn_asks_for_no_tool_calls(store, registry):
    requests: list[LLMRequest] = []

    def client_for(task: Task, model: str) -> BaseLLMClient:
        inner = _scripted(store)(task, model)

        class Watching(BaseLLMClient):
            provider = "scripted"

            def complete(self, request: LLMRequest) -> LLMResponse:
                requests.append(request)
                return inner.complete(request)

        return Watching()

    turns = [{"content": "Paris"}, {"content": '{"city": "Paris", "population": 1}'}]
    task_id = _submit(store, registry, turns, output_schema=CITY, tools=["calculator"])
    _drive(store, registry, task_id, client_for)
    assert [r.response_format is not None for r in requests] == [True, True]
    assert requests[0].response_format.json_schema == CITY  # type: ignore[union-attr]
    assert requests[0].tool_choice is None
    assert requests[1].tool_choice is not None and requests[1].tool_choice.mode == "none"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "strng"}, "not a valid JSON Schema (draft-07): field 'schema.type'"),
        ({"type": "object", "required": "city"}, "field 'schema.required'"),
        ({"type": "object", "properties": {"x": {"minimum": "1"}}},
         "field 'schema.properties.x.minimum'"),
        ({"description": "x" * 17_000}, "at most 16000 bytes"),
    ],
)
def test_submit_refuses_a_schema_that_is_no_schema(store, registry, schema, message):
    with pytest.raises(InputError) as caught:
        _submit(store, registry, [{"content": "{}"}], output_schema=schema)
    assert caught.value.field == "output_schema"
    assert message in str(caught.value)


def test_submit_refuses_a_plan_turn_that_is_not_first():
    with pytest.raises(ValueError, match="only the first scripted turn may be a plan"):
        SubmitTaskRequest.model_validate({
            "goal": "x", "model": "scripted",
            "scripted_turns": [{"content": "a"}, {"plan": ["b"]}]})
    with pytest.raises(ValueError, match="plan"):
        SubmitTaskRequest.model_validate({"goal": "x", "plan": "sometimes"})
