"""CallModel under provider pressure and at-least-once delivery, on moto: it waits instead
of failing, gives up only when the task's patience is used up, and a duplicate step or a
cancel during a model call ends well (no turn lost, no usage counted twice or dropped)."""

from __future__ import annotations

from typing import Any

from agentkit.api.submit import submit_task
from agentkit.config import Settings
from agentkit.llm.base import LLMRequest, LLMResponse, ProviderWaitError
from agentkit.llm.router import RoutedResponse
from agentkit.loop.call_model import call_model
from agentkit.loop.plan import plan_task
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Message, TaskStatus, Usage
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

SETTINGS = Settings(table_name="t", scripted_model_enabled=True, default_max_wait_seconds=100)
USAGE = Usage(input_tokens=100, output_tokens=10, model_calls=1)


class Router:
    """Plays the router's outcomes in order: a ProviderWaitError, or a reply (optionally
    running `during` first, as a competing writer would while the call is in flight)."""

    def __init__(self, *outcomes: Any, during: Any = None) -> None:
        self.outcomes = list(outcomes)
        self.during = during
        self.calls = 0

    def complete(self, models: Any, request: LLMRequest, **_: Any) -> RoutedResponse:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if self.during is not None:
            self.during()
        reply = Message(role="assistant", content=outcome)
        return RoutedResponse(
            model="scripted", response=LLMResponse(message=reply, finish_reason="stop", usage=USAGE)
        )


def _planned_task(store: TaskStore, registry: ToolRegistry, **extra: Any) -> str:
    request = SubmitTaskRequest.model_validate(
        {"goal": "g", "model": "scripted", "scripted_turns": [{"content": "x"}], "tools": [],
         **extra}
    )
    task = submit_task(request, store=store, registry=registry, settings=SETTINGS,
                       start_execution=lambda task_id: f"arn:{task_id}")
    plan_task(TaskRef(task_id=task.task_id), store=store, registry=registry)
    return task.task_id


def _held(seconds: float = 30) -> ProviderWaitError:
    return ProviderWaitError("openai: 429 until reset", wait_seconds=seconds, provider="openai",
                             reason="rate_limited")


def _call(store: TaskStore, task_id: str, router: Router, turn: int = 0) -> Any:
    return call_model(TurnRef(task_id=task_id, turn=turn), store=store,
                      client_for=lambda *_: None,  # type: ignore[arg-type,return-value]
                      router=router)  # type: ignore[arg-type]


def test_a_held_provider_makes_the_task_wait_then_go_on(store: TaskStore,
                                                        registry: ToolRegistry) -> None:
    task_id = _planned_task(store, registry)
    router = Router(_held(12.2), _held(5), "the answer")

    first = _call(store, task_id, router)
    assert (first.action, first.turn, first.wait_seconds) == ("wait", 0, 13)
    task = store.require_task(task_id)
    assert task.status == TaskStatus.RUNNING and task.waited_seconds == 13
    assert task.waiting is not None
    assert (task.waiting.provider, task.waiting.reason) == ("openai", "rate_limited")
    since = task.waiting.since

    second = _call(store, task_id, router)
    assert (second.action, second.wait_seconds) == ("wait", 5)
    task = store.require_task(task_id)
    assert task.waited_seconds == 18 and task.waiting and task.waiting.since == since

    third = _call(store, task_id, router)
    assert third.action == "final" and third.turn == 1
    task = store.require_task(task_id)
    assert task.waiting is None and task.usage == USAGE
    waits = [e for e in store.list_events(task_id) if e.kind == "wait"]
    assert [e.detail["wait_seconds"] for e in waits] == [13, 5]
    assert waits[0].name == "openai" and waits[0].detail["reason"] == "rate_limited"


def test_patience_used_up_fails_the_task_naming_the_provider(store: TaskStore,
                                                             registry: ToolRegistry) -> None:
    task_id = _planned_task(store, registry, max_wait_seconds=40)
    router = Router(_held(30), _held(30))
    assert _call(store, task_id, router).action == "wait"
    assert _call(store, task_id, router).action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.FAILED
    assert task.error is not None and task.error.startswith(
        "gave up waiting for openai (rate_limited) after 30 s of waiting (max_wait_seconds 40)"
    )


def test_the_deployment_default_patience_applies(store: TaskStore,
                                                 registry: ToolRegistry) -> None:
    task_id = _planned_task(store, registry)
    assert store.require_task(task_id).max_wait_seconds == SETTINGS.default_max_wait_seconds


def test_a_step_delivered_twice_answers_from_the_committed_turn(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id = _planned_task(store, registry)
    # While this run's model call is in flight, its twin commits the same turn.
    twin = Router("the twin's answer")
    router = Router("this run's answer", during=lambda: _call(store, task_id, twin))
    output = _call(store, task_id, router)
    assert output.action == "final" and output.turn == 1
    task = store.require_task(task_id)
    assert task.status == TaskStatus.RUNNING and task.turn == 1
    assert task.usage == USAGE  # the twin's call only: not counted twice
    assert store.get_message(task_id, 1, 0).content == "the twin's answer"  # type: ignore[union-attr]
    assert len([e for e in store.list_events(task_id) if e.kind == "model_call"]) == 1


def test_a_cancel_during_a_model_call_keeps_its_usage_and_event(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id = _planned_task(store, registry)
    cancel = lambda: store.finish_task(task_id, TaskStatus.CANCELLED)  # noqa: E731
    output = _call(store, task_id, Router("late answer", during=cancel))
    assert output.action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.CANCELLED and task.turn == 0
    assert task.usage == USAGE  # paid for, so counted
    calls = [e for e in store.list_events(task_id) if e.kind == "model_call"]
    assert len(calls) == 1 and calls[0].detail["after"] == "CANCELLED"
    assert calls[0].usage == USAGE


def test_a_wait_is_not_recorded_for_a_task_that_ended(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id = _planned_task(store, registry)
    cancel = lambda: store.finish_task(task_id, TaskStatus.CANCELLED)  # noqa: E731

    class CancelThenWait(Router):
        def complete(self, models: Any, request: LLMRequest, **_: Any) -> RoutedResponse:
            cancel()
            raise _held()

    output = _call(store, task_id, CancelThenWait())
    assert output.action == "stop"
    task = store.require_task(task_id)
    assert task.status == TaskStatus.CANCELLED and task.waiting is None
    assert task.waited_seconds == 0


def test_the_wait_shows_in_the_task_view_and_in_watch(store: TaskStore,
                                                      registry: ToolRegistry) -> None:
    from rich.console import Console

    from agentkit.api.tasks import get_task_view
    from opspawn.watch import progress_printer

    task_id = _planned_task(store, registry, max_wait_seconds=600)
    _call(store, task_id, Router(_held(30)))
    view = get_task_view(task_id, store=store, tenant_id="default")
    assert view.waiting is not None and view.waiting.reason == "rate_limited"
    assert (view.waited_seconds, view.max_wait_seconds) == (30, 600)
    console = Console(record=True, width=200)
    progress_printer(console)(view)
    printed = console.export_text()
    assert "wait    openai rate_limited: calling again at " in printed
    assert "UTC (waited 30 s of 600 s)" in printed
