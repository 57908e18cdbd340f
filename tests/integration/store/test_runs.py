"""Runs and follow-ups on moto: the queue of follow-up messages, beginning a task's next run
(one transaction, once however many callers race), starting it (recovered when its starter
died), the Plan step of a follow-up run, and budgets counted per run."""

from __future__ import annotations

import pytest

from agentkit.loop.call_model import budget_exhausted
from agentkit.loop.runs import continue_run, plan_or_continue, start_next_run
from agentkit.models.domain import Message, Task, TaskStatus, Usage
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.store import TaskStore
from agentkit.store.errors import TaskBusyError
from agentkit.store.tasks import FOLLOW_UP_SEQ, META, task_pk
from agentkit.tools import ToolRegistry


def _ended(store: TaskStore, task_id: str = "tsk_runs", *, turn: int = 2,
           status: TaskStatus = TaskStatus.SUCCEEDED) -> Task:
    task = Task(task_id=task_id, goal="first goal", model="scripted", max_turns=3,
                status=status, turn=turn, answer="first answer",
                usage=Usage(input_tokens=100, output_tokens=10, model_calls=turn),
                execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:agent:{task_id}")
    store.create_task(task)
    store.put_message(task_id, 0, 0, Message(role="system", content="be brief"))
    store.put_message(task_id, 0, 1, Message(role="user", content="first goal"))
    store.put_message(task_id, turn, 0, Message(role="assistant", content="first answer"))
    return task


class Starter:
    """A run starter that records what it started (and can fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.started: list[tuple[str, int]] = []
        self.fail = fail

    def __call__(self, task_id: str, run: int) -> str:
        if self.fail:
            raise RuntimeError("the state machine is gone")
        self.started.append((task_id, run))
        return f"arn:execution:{task_id}-run-{run}"


def test_a_follow_up_on_an_ended_task_begins_its_run_from_where_the_task_stopped(
    store: TaskStore,
) -> None:
    _ended(store)
    _, record = store.add_follow_up("tsk_runs", "and then?", when_idle=True)
    assert (record.follow_up, record.state) == (1, "queued")
    starter = Starter()
    assert start_next_run("tsk_runs", store=store, start_run=starter) == 2
    assert starter.started == [("tsk_runs", 2)]
    task = store.require_task("tsk_runs")
    assert (task.run, task.run_follow_up, task.status) == (2, 1, TaskStatus.QUEUED)
    assert (task.run_first_turn, task.run_usage_start.input_tokens) == (2, 100)
    assert task.answer is None and task.execution_arn == "arn:execution:tsk_runs-run-2"
    assert task.usage.input_tokens == 100  # the task's usage goes on adding up
    assert store.get_follow_up("tsk_runs", 1).state == "started"  # type: ignore[union-attr]
    first, second = store.list_runs(task)
    assert (first.run, first.status, first.answer, first.first_turn, first.last_turn) == (
        1, TaskStatus.SUCCEEDED, "first answer", 0, 2)
    assert first.usage.input_tokens == 100 and first.ended_at
    assert (second.run, second.follow_up, second.status, second.usage) == (
        2, 1, TaskStatus.QUEUED, Usage())
    # Nothing more to begin: a second caller finds the run begun and starts nothing.
    assert start_next_run("tsk_runs", store=store, start_run=starter) is None
    assert starter.started == [("tsk_runs", 2)]


def test_a_busy_task_refuses_a_follow_up_or_queues_it(store: TaskStore) -> None:
    _ended(store, status=TaskStatus.RUNNING)
    with pytest.raises(TaskBusyError, match=r"is RUNNING .*on_busy 'enqueue'"):
        store.add_follow_up("tsk_runs", "now?", when_idle=True)
    assert store.require_task("tsk_runs").follow_ups == 0  # nothing stored
    store.add_follow_up("tsk_runs", "later 1", when_idle=False)
    store.add_follow_up("tsk_runs", "later 2", when_idle=False)
    starter = Starter()
    # Still running: nothing starts.
    assert start_next_run("tsk_runs", store=store, start_run=starter) is None
    store.finish_task("tsk_runs", TaskStatus.SUCCEEDED, answer="done")
    # Ended but two wait: a `reject` follow-up is still refused (it would jump the queue).
    with pytest.raises(TaskBusyError, match="2 follow-up"):
        store.add_follow_up("tsk_runs", "me first", when_idle=True)
    assert start_next_run("tsk_runs", store=store, start_run=starter) == 2
    assert store.require_task("tsk_runs").queued_follow_ups == 1
    store.finish_task("tsk_runs", TaskStatus.SUCCEEDED, answer="second")
    assert start_next_run("tsk_runs", store=store, start_run=starter) == 3
    task = store.require_task("tsk_runs")
    assert (task.run, task.run_follow_up, task.queued_follow_ups) == (3, 2, 0)
    assert [run.answer for run in store.list_runs(task)] == ["done", "second", None]


def test_a_run_whose_starter_died_is_started_by_the_next_caller(store: TaskStore) -> None:
    _ended(store)
    store.add_follow_up("tsk_runs", "again", when_idle=True)
    begun = store.begin_next_run("tsk_runs")  # ... and the Lambda died before starting it
    assert begun is not None and begun.execution_arn is None
    assert store.begin_next_run("tsk_runs") is None  # begun once only
    starter = Starter()
    assert start_next_run("tsk_runs", store=store, start_run=starter) == 2
    assert starter.started == [("tsk_runs", 2)]


def test_a_run_that_cannot_start_fails_with_the_reason_and_the_next_gets_its_turn(
    store: TaskStore,
) -> None:
    _ended(store)
    store.add_follow_up("tsk_runs", "one", when_idle=True)
    store.add_follow_up("tsk_runs", "two", when_idle=False)
    assert start_next_run("tsk_runs", store=store, start_run=Starter(fail=True)) is None
    task = store.require_task("tsk_runs")
    assert (task.run, task.status) == (3, TaskStatus.FAILED)
    assert task.error == "could not start run 3: RuntimeError: the state machine is gone"
    assert [(r.run, r.status) for r in store.list_runs(task)] == [
        (1, TaskStatus.SUCCEEDED), (2, TaskStatus.FAILED), (3, TaskStatus.FAILED)]


def test_a_cancel_discards_what_was_queued_before_it(store: TaskStore) -> None:
    _ended(store, status=TaskStatus.RUNNING)
    store.add_follow_up("tsk_runs", "one", when_idle=False)
    store.add_follow_up("tsk_runs", "two", when_idle=False)
    assert store.discard_follow_ups("tsk_runs", through=2) == 2
    assert store.discard_follow_ups("tsk_runs", through=2) == 0
    task = store.require_task("tsk_runs")
    assert task.queued_follow_ups == 0
    assert store.get_follow_up("tsk_runs", 2).state == "discarded"  # type: ignore[union-attr]


def test_a_task_stored_before_follow_ups_takes_one(store: TaskStore) -> None:
    _ended(store)
    store.client.update_item(
        TableName=store.table_name, Key={"pk": {"S": task_pk("tsk_runs")}, "sk": {"S": META}},
        UpdateExpression="REMOVE run, run_first_turn, run_usage_start, run_follow_up, "
                         "run_message_seq, follow_ups, follow_ups_taken, started_at, ended_at",
    )
    store.add_follow_up("tsk_runs", "old but gold", when_idle=True)
    assert start_next_run("tsk_runs", store=store, start_run=Starter()) == 2


def test_the_plan_step_of_a_follow_up_run_adds_the_message_once(store: TaskStore) -> None:
    _ended(store)
    store.add_follow_up("tsk_runs", "and then?", when_idle=True)
    start_next_run("tsk_runs", store=store, start_run=Starter())
    registry = ToolRegistry()
    store.put_tool_specs("tsk_runs", [])

    def no_plan(*_: object, **__: object) -> TurnRef:
        raise AssertionError("a follow-up run does not plan again")

    ref = plan_or_continue(TaskRef(task_id="tsk_runs"), store=store, registry=registry,
                           plan=no_plan)
    assert ref == TurnRef(task_id="tsk_runs", turn=2)
    again = continue_run(store.require_task("tsk_runs"), store=store)  # a retried step
    assert again == ref
    messages = store.list_messages("tsk_runs")
    assert [(m.role, m.content) for m in messages] == [
        ("system", "be brief"), ("user", "first goal"), ("assistant", "first answer"),
        ("user", "and then?")]
    assert store.get_message("tsk_runs", 2, FOLLOW_UP_SEQ) == messages[-1]
    assert store.require_task("tsk_runs").status == TaskStatus.RUNNING
    events = [e for e in store.list_events("tsk_runs") if e.detail.get("run") == 2]
    assert len(events) == 1 and events[0].detail == {"run": 2, "follow_up": 1}


def test_a_run_that_made_no_turn_leaves_its_message_and_the_next_goes_after_it(
    store: TaskStore,
) -> None:
    _ended(store)
    store.add_follow_up("tsk_runs", "first try", when_idle=True)
    start_next_run("tsk_runs", store=store, start_run=Starter())
    continue_run(store.require_task("tsk_runs"), store=store)
    # Run 2's model call failed for good: no turn made.
    store.finish_task("tsk_runs", TaskStatus.FAILED, error="provider down")
    store.add_follow_up("tsk_runs", "second try", when_idle=True)
    start_next_run("tsk_runs", store=store, start_run=Starter())
    task = store.require_task("tsk_runs")
    assert (task.run, task.run_first_turn, task.run_message_seq) == (3, 2, FOLLOW_UP_SEQ + 1)
    continue_run(task, store=store)
    assert [m.content for m in store.list_messages("tsk_runs", 2)] == [
        "first answer", "first try", "second try"]


def test_a_run_cancelled_before_its_plan_step_adds_nothing(store: TaskStore) -> None:
    _ended(store)
    store.add_follow_up("tsk_runs", "never mind", when_idle=True)
    start_next_run("tsk_runs", store=store, start_run=Starter())
    store.finish_task("tsk_runs", TaskStatus.CANCELLED, error="cancelled by the caller")
    ref = continue_run(store.require_task("tsk_runs"), store=store)
    assert ref == TurnRef(task_id="tsk_runs", turn=2)
    assert [m.content for m in store.list_messages("tsk_runs", 2)] == ["first answer"]
    assert store.require_task("tsk_runs").status == TaskStatus.CANCELLED


def test_budgets_apply_per_run() -> None:
    task = Task(task_id="t", goal="g", model="scripted", max_turns=2, max_tokens=1000,
                max_cost_usd=1.0, turn=5, run=2, run_first_turn=5,
                usage=Usage(input_tokens=5000, cost_usd=3.0),
                run_usage_start=Usage(input_tokens=4500, cost_usd=2.5))
    assert budget_exhausted(task, 6) is None and budget_exhausted(task, 7) is None
    assert budget_exhausted(task, 8) == "max_turns (2) reached before a final answer"
    spent = task.model_copy(update={"usage": Usage(input_tokens=5600, cost_usd=3.0)})
    assert budget_exhausted(spent, 6) == (
        "max_tokens (1000) reached: 1100 tokens spent before a final answer")
    costly = task.model_copy(update={"usage": Usage(input_tokens=4600, cost_usd=3.6)})
    assert "max_cost_usd (1) reached: $1.100000" in (budget_exhausted(costly, 6) or "")
