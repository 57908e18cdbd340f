"""The loop's logic driven in-process on moto, state by state, as the state machine would."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.api.submit import submit_task
from agentkit.api.tasks import get_task_view
from agentkit.config import Settings, TenantLimit
from agentkit.errors import InputError
from agentkit.llm import ModelRequestError, get_client
from agentkit.loop.call_model import MISSING_RESULT, call_model
from agentkit.loop.finalize import fail_task, finalize_task, readable_reason
from agentkit.loop.plan import plan_task
from agentkit.loop.run_tools import run_tool_call
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import TaskStatus
from agentkit.models.payloads import ModelStepOutput, StepError, TaskRef, TurnRef
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

SETTINGS = Settings(table_name="t", scripted_model_enabled=True, default_max_turns=6)


def _scripted(store: TaskStore) -> Any:
    """CallModel's client_for, as the function makes it: the script read by task id."""
    return lambda task, model: get_client(model, scripted_turns=store.get_script(task.task_id),
                                          scripted_enabled=True)


def _submit(
    store: TaskStore, registry: ToolRegistry, turns: list[dict[str, Any]], **extra: Any
) -> str:
    started: list[str] = []
    request = SubmitTaskRequest.model_validate(
        {
            "goal": "What is 17 * 23, and what time is it?",
            "model": "scripted",
            "scripted_turns": turns,
            **extra,
        }
    )
    task = submit_task(
        request,
        store=store,
        registry=registry,
        settings=SETTINGS,
        start_execution=lambda task_id: started.append(task_id) or f"arn:{task_id}",
    )
    assert started == [task.task_id]
    return task.task_id


def _drive(
    store: TaskStore, registry: ToolRegistry, task_id: str, skip_tools: frozenset[int] = frozenset()
) -> ModelStepOutput:
    """Plan → (CallModel → RunTools)* → CallModel, returning the last CallModel output."""
    step = plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    while True:
        output = call_model(
            TurnRef(task_id=task_id, turn=step.turn),
            store=store,
            client_for=_scripted(store),
        )
        if output.action != "tool_calls":
            return output
        for ref in output.tool_calls:
            if ref.index not in skip_tools:
                run_tool_call(ref, store=store, registry=registry)
        step = TurnRef(task_id=task_id, turn=output.turn)


TWO_TOOLS_THEN_ANSWER = [
    {
        "tool_calls": [
            {"name": "calculator", "arguments": {"expression": "17 * 23"}},
            {"name": "current_time", "arguments": {"timezone": "UTC"}},
        ],
        "usage": {"input_tokens": 100, "output_tokens": 20},
    },
    {
        "content": "17 * 23 = 391.",
        "usage": {"input_tokens": 150, "output_tokens": 10, "cached_tokens": 80},
    },
]


def test_two_tool_calls_then_a_final_answer(store: TaskStore, registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, TWO_TOOLS_THEN_ANSWER)
    assert store.require_task(task_id).status == TaskStatus.QUEUED
    output = _drive(store, registry, task_id)
    assert output.action == "final" and output.turn == 2
    finalize_task(task_id, store=store)

    view = get_task_view(task_id, store=store, tenant_id="default")
    assert view.status == TaskStatus.SUCCEEDED
    assert view.answer == "17 * 23 = 391."
    assert [m.role for m in view.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert view.messages[2].model == "scripted"  # which model answered is recorded
    assert view.messages[3].content == "391" and not view.messages[3].is_error
    assert view.messages[4].name == "current_time"
    assert view.usage.input_tokens == 250 and view.usage.output_tokens == 30
    assert view.usage.cached_tokens == 80 and view.usage.model_calls == 2
    assert view.turn == 2


def test_a_failing_tool_becomes_an_error_result(store: TaskStore, registry: ToolRegistry) -> None:
    task_id = _submit(
        store,
        registry,
        [
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1 / 0"}}]},
            {"content": "Division by zero is undefined."},
        ],
    )
    assert _drive(store, registry, task_id).action == "final"
    finalize_task(task_id, store=store)
    view = get_task_view(task_id, store=store, tenant_id="default")
    tool_message = view.messages[3]
    assert tool_message.is_error and "ZeroDivisionError" in (tool_message.content or "")
    assert view.status == TaskStatus.SUCCEEDED


def test_a_lost_tool_call_gets_an_error_result(store: TaskStore, registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, TWO_TOOLS_THEN_ANSWER)
    _drive(store, registry, task_id, skip_tools=frozenset({1}))
    messages = store.list_messages(task_id)
    assert messages[4].role == "tool" and messages[4].content == MISSING_RESULT
    assert messages[4].is_error


def test_a_fatal_model_error_propagates_and_marks_failed(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id = _submit(store, registry, [{"error": {"kind": "fatal", "message": "bad request"}}])
    with pytest.raises(ModelRequestError):
        _drive(store, registry, task_id)
    cause = '{"errorMessage": "scripted error: bad request", "errorType": "ModelRequestError"}'
    task = fail_task(task_id, StepError(Error="ModelRequestError", Cause=cause), store=store)
    assert task.status == TaskStatus.FAILED
    assert task.error == "ModelRequestError: scripted error: bad request"
    assert len(store.list_messages(task_id)) == 2  # the conversation so far is kept


def test_a_retryable_error_makes_the_task_wait_not_fail(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id = _submit(store, registry, [{"error": {"kind": "retryable", "message": "429"}}])
    output = _drive(store, registry, task_id)
    assert output.action == "wait" and output.turn == 0 and (output.wait_seconds or 0) >= 1
    task = store.require_task(task_id)
    assert task.status == TaskStatus.RUNNING and task.turn == 0
    assert task.waiting is not None and task.waiting.provider == "scripted"


def test_max_turns_ends_the_task_as_budget_exceeded(
    store: TaskStore, registry: ToolRegistry
) -> None:
    loop = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}
    task_id = _submit(store, registry, [loop] * 5, max_turns=2)
    output = _drive(store, registry, task_id)
    assert output.action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.BUDGET_EXCEEDED and task.turn == 2
    assert "max_turns (2)" in (task.error or "")


def test_retried_steps_do_not_repeat_work(store: TaskStore, registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, TWO_TOOLS_THEN_ANSWER)
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    ref = TurnRef(task_id=task_id, turn=0)
    first = call_model(ref, store=store, client_for=_scripted(store))
    again = call_model(ref, store=store, client_for=_scripted(store))
    assert again == first
    assert store.require_task(task_id).usage.model_calls == 1
    result = run_tool_call(first.tool_calls[0], store=store, registry=registry)
    replay = run_tool_call(first.tool_calls[0], store=store, registry=registry)
    assert (replay.call_id, replay.content, replay.is_error) == (
        result.call_id, result.content, result.is_error)
    assert len(store.list_messages(task_id)) == 4


def test_a_cancelled_task_stops_at_the_next_step(store: TaskStore, registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, TWO_TOOLS_THEN_ANSWER)
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    first = call_model(
        TurnRef(task_id=task_id, turn=0), store=store, client_for=_scripted(store)
    )
    store.finish_task(task_id, TaskStatus.CANCELLED, error="cancelled")
    result = run_tool_call(first.tool_calls[0], store=store, registry=registry)
    assert result.is_error and "CANCELLED" in result.content
    after = call_model(
        TurnRef(task_id=task_id, turn=1), store=store, client_for=_scripted(store)
    )
    assert after.action == "stop"
    finalize_task(task_id, store=store)
    assert store.require_task(task_id).status == TaskStatus.CANCELLED


def test_submit_rejects_what_the_deployment_does_not_offer(
    store: TaskStore, registry: ToolRegistry
) -> None:
    request = SubmitTaskRequest(goal="g", tools=["calculator", "shell"])
    with pytest.raises(InputError) as caught:
        submit_task(
            request,
            store=store,
            registry=registry,
            settings=SETTINGS,
            start_execution=lambda _: "arn",
        )
    assert caught.value.field == "tools" and "shell" in caught.value.problem
    scripted = SubmitTaskRequest(goal="g", model="scripted", scripted_turns=[{"content": "x"}])
    with pytest.raises(InputError) as caught:
        submit_task(
            scripted,
            store=store,
            registry=registry,
            settings=SETTINGS.model_copy(update={"scripted_model_enabled": False}),
            start_execution=lambda _: "arn",
        )
    assert caught.value.field == "model"


def test_a_failed_start_keeps_the_task_with_the_reason(
    store: TaskStore, registry: ToolRegistry
) -> None:
    def broken(_: str) -> str:
        raise RuntimeError("state machine unreachable")

    request = SubmitTaskRequest(goal="keep me")
    one_slot = SETTINGS.model_copy(update={"default_tenant_limit": TenantLimit(max_running=1)})
    with pytest.raises(RuntimeError):
        submit_task(
            request, store=store, registry=registry, settings=one_slot, start_execution=broken
        )
    items = store.client.scan(TableName=store.table_name)["Items"]
    [item] = [i for i in items if i["sk"]["S"] == "META"]  # beside it: events, tenant slots
    task = store.require_task(item["task_id"]["S"])
    assert task.goal == "keep me" and task.status == TaskStatus.FAILED
    assert "state machine unreachable" in (task.error or "")
    # its slot went back: the tenant's next task starts at once
    started: list[str] = []
    again = submit_task(request, store=store, registry=registry, settings=one_slot,
                        start_execution=lambda task_id: started.append(task_id) or "arn")
    assert started == [again.task_id]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (StepError(Error="States.Timeout"), "States.Timeout"),
        (
            StepError(Error="MaxTurnsExceeded", Cause="turn limit 50"),
            "MaxTurnsExceeded: turn limit 50",
        ),
        (
            StepError(
                Error="Lambda.Unknown",
                Cause='{"errorMessage": "Task timed out after 3.00 '
                'seconds", "errorType": "Sandbox.Timedout"}',
            ),
            "Sandbox.Timedout: Task timed out after 3.00 seconds",
        ),
    ],
)
def test_readable_reason(error: StepError, expected: str) -> None:
    assert readable_reason(error) == expected


def test_the_timeline_records_each_model_and_tool_call(store: TaskStore,
                                                       registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, TWO_TOOLS_THEN_ANSWER)
    _drive(store, registry, task_id)
    finalize_task(task_id, store=store)
    admitted, *events = store.list_events(task_id)
    assert admitted.kind == "admission"  # its execution started at submit
    assert [e.kind for e in events] == ["model_call", "tool_call", "tool_call", "model_call",
                                        "status"]
    # The two tools of a turn run concurrently in production: no order between them.
    assert {events[1].name, events[2].name} == {"calculator", "current_time"}
    assert events[4].name == "SUCCEEDED"
    assert events[0].usage is not None and events[0].usage.input_tokens == 100
    assert events[0].detail["tool_calls"] == 2 and events[3].detail["finish_reason"] == "stop"
    assert events[1].call_id and events[1].error is None and events[2].error is None


def test_a_failed_model_call_is_on_the_timeline(store: TaskStore, registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, [{"error": {"kind": "fatal", "message": "nope"}}])
    with pytest.raises(ModelRequestError):
        _drive(store, registry, task_id)
    [admitted, event] = store.list_events(task_id)
    assert admitted.kind == "admission"
    assert event.kind == "model_call" and "nope" in (event.error or "")
    assert event.detail["error_type"] == "ModelRequestError"


LOOP_TURN = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}],
             "usage": {"input_tokens": 100, "output_tokens": 20}}


def test_max_tokens_ends_the_task_with_its_partial_result(store: TaskStore,
                                                          registry: ToolRegistry) -> None:
    task_id = _submit(store, registry, [LOOP_TURN] * 5, max_tokens=200)
    assert _drive(store, registry, task_id).action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.BUDGET_EXCEEDED
    assert task.turn == 2 and task.usage.total_tokens == 240
    assert task.error == "max_tokens (200) reached: 240 tokens spent before a final answer"
    assert len(store.list_messages(task_id)) == 6  # the partial conversation is kept
    assert store.list_events(task_id)[-1].name == "BUDGET_EXCEEDED"


def test_max_cost_ends_the_task_when_the_priced_spend_reaches_it(
    store: TaskStore, registry: ToolRegistry
) -> None:
    from agentkit.llm.scripted import ScriptedClient
    from agentkit.models.scripted import ScriptedTurn

    # Priced as openai:gpt-4o-mini (0.15 in / 0.60 out per M): 1M in + 0.1M out = 0.21 USD.
    expensive = ScriptedTurn.model_validate(
        {**LOOP_TURN, "usage": {"input_tokens": 1_000_000, "output_tokens": 100_000}})
    request = SubmitTaskRequest(goal="spend", model="openai:gpt-4o-mini", max_cost_usd=0.4)
    task = submit_task(request, store=store, registry=registry, settings=SETTINGS,
                       start_execution=lambda task_id: f"arn:{task_id}")
    client = ScriptedClient([expensive] * 5)
    step = plan_task(TaskRef(task_id=task.task_id), store=store, registry=registry)
    while True:
        output = call_model(TurnRef(task_id=task.task_id, turn=step.turn), store=store,
                            client_for=lambda _task, _model: client)
        if output.action != "tool_calls":
            break
        for ref in output.tool_calls:
            run_tool_call(ref, store=store, registry=registry)
        step = TurnRef(task_id=task.task_id, turn=output.turn)
    stored = store.require_task(task.task_id)
    assert stored.status == TaskStatus.BUDGET_EXCEEDED and stored.turn == 2
    assert stored.usage.cost_usd == pytest.approx(0.42)
    assert stored.error == ("max_cost_usd (0.4) reached: $0.420000 spent before a final "
                            "answer")


def test_the_tool_surface_is_fixed_at_plan_time(store: TaskStore,
                                                registry: ToolRegistry) -> None:
    from agentkit.llm.scripted import ScriptedClient
    from agentkit.models.scripted import ScriptedTurn
    from agentkit.tools import ToolRegistry as Registry

    task_id = _submit(store, registry, [{"content": "done"}], tools=["calculator"])
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    assert [s.name for s in store.get_tool_specs(task_id) or []] == ["calculator"]
    seen: list[list[str]] = []

    class Spy(ScriptedClient):
        def complete(self, request: Any) -> Any:
            seen.append([tool.name for tool in request.tools])
            return super().complete(request)

    spy = Spy([ScriptedTurn(content="done")])
    # CallModel reads the planned surface only (it lists no tool source).
    call_model(TurnRef(task_id=task_id, turn=0), store=store, client_for=lambda *_: spy)
    assert seen == [["calculator"]]
    # A retried Plan keeps the first snapshot.
    plan_task(TaskRef(task_id=task_id), store=store, registry=Registry())
    assert [s.name for s in store.get_tool_specs(task_id) or []] == ["calculator"]


def test_tenant_ceilings_bound_the_budgets(store: TaskStore, registry: ToolRegistry) -> None:
    from agentkit.config import BudgetCeiling

    settings = SETTINGS.model_copy(update={
        "default_max_cost_usd": 5.0,
        "default_ceiling": BudgetCeiling(max_turns=8, max_cost_usd=1.0),
        "tenant_ceilings": {"big": BudgetCeiling(max_turns=40)},
    })

    def submit(tenant: str, **budgets: Any) -> Any:
        request = SubmitTaskRequest(goal="g", **budgets)
        return submit_task(request, store=store, registry=registry, settings=settings,
                           start_execution=lambda task_id: f"arn:{task_id}", tenant_id=tenant)

    defaults = submit("small")
    assert (defaults.max_turns, defaults.max_cost_usd) == (6, 1.0)  # default lowered to 1.0
    with pytest.raises(InputError) as caught:
        submit("small", max_turns=9)
    assert caught.value.field == "max_turns"
    assert caught.value.problem == "at most 8 for this tenant, got 9"
    assert submit("big", max_turns=30).max_turns == 30  # the tenant's own ceiling applies
    assert submit("big").max_cost_usd == 5.0  # ...and replaces the default one


def test_a_broken_ceiling_setting_stops_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "t")
    monkeypatch.setenv("BUDGET_CEILINGS", '{"tenants": {"acme": {"max_turns": "lots"}}}')
    with pytest.raises(RuntimeError, match="BUDGET_CEILINGS is invalid"):
        Settings.from_env()


class _Source:
    """A tool source (as an MCP server is) whose listing is counted, or fails."""

    prefix = "srv__"

    def __init__(self, names: list[str], error: Exception | None = None) -> None:
        self.names, self.error, self.listings = names, error, 0

    def tools(self) -> list[Any]:
        from agentkit.tools import Tool

        self.listings += 1
        if self.error is not None:
            raise self.error
        return [Tool(name=f"srv__{n}", description=n, args_model=None, func=lambda a: "ok",
                     input_schema={"type": "object"}) for n in self.names]


def _registry_with(source: _Source) -> ToolRegistry:
    from agentkit.tools import ToolRegistry as Registry
    from agentkit.tools.builtin import BUILTIN_TOOLS

    return Registry(BUILTIN_TOOLS, sources=[source])


def test_submit_accepts_a_source_tool_without_listing_the_source(store: TaskStore) -> None:
    # The submit function has no MCP SDK: listing a server there fails (as on AWS).
    source = _Source([], error=ModuleNotFoundError("No module named 'mcp'"))
    registry = _registry_with(source)
    task = submit_task(SubmitTaskRequest(goal="g", tools=["srv__echo", "calculator"]),
                       store=store, registry=registry, settings=SETTINGS,
                       start_execution=lambda task_id: f"arn:{task_id}")
    assert task.tools == ["srv__echo", "calculator"]
    assert source.listings == 0
    with pytest.raises(InputError) as caught:
        submit_task(SubmitTaskRequest(goal="g", tools=["other__echo", "srv__"]), store=store,
                    registry=registry, settings=SETTINGS, start_execution=lambda t: t)
    assert caught.value.field == "tools"
    assert caught.value.problem.startswith("unknown tool(s): other__echo, srv__; available: ")
    assert "srv__<tool>" in caught.value.problem


def test_plan_refuses_a_tool_its_source_does_not_offer(store: TaskStore) -> None:
    from agentkit.loop.plan import UnknownToolError

    registry = _registry_with(_Source(["echo", "add"]))
    task_id = _submit(store, registry, [{"content": "done"}], tools=["srv__nope", "calculator"])
    with pytest.raises(UnknownToolError) as caught:
        plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    assert str(caught.value) == "unknown tool 'srv__nope'; srv__* offers: srv__add, srv__echo"
    assert store.get_tool_specs(task_id) is None  # nothing planned: the task fails instead


def test_plan_waits_for_an_unreachable_source_then_snapshots_it(store: TaskStore) -> None:
    from agentkit.loop.plan import ToolSourceUnavailableError

    source = _Source(["echo"], error=ConnectionError("server 'srv' unreachable"))
    registry = _registry_with(source)
    task_id = _submit(store, registry, [{"content": "done"}], tools=["srv__echo"])
    with pytest.raises(ToolSourceUnavailableError, match=r"srv__echo.*unreachable"):
        plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    source.error = None  # the state machine retries Plan; the server is back
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    assert [s.name for s in store.get_tool_specs(task_id) or []] == ["srv__echo"]


def test_call_model_needs_the_planned_tool_surface(store: TaskStore,
                                                   registry: ToolRegistry) -> None:
    from agentkit.loop.call_model import MissingToolSnapshotError

    task_id = _submit(store, registry, [{"content": "done"}], tools=["calculator"])
    store.update_task(task_id, changes={"status": TaskStatus.RUNNING.value})
    with pytest.raises(MissingToolSnapshotError, match="Plan step did not complete"):
        call_model(TurnRef(task_id=task_id, turn=0), store=store, client_for=_scripted(store))
