"""Fair tenants on moto: a cap on each tenant's running tasks, the rest QUEUED and started
in submit order as that tenant's slots free; exact under concurrent submits and releases."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import boto3
import pytest

from agentkit.admission import release_and_start_next, step_functions_starter
from agentkit.api.submit import submit_task
from agentkit.api.tasks import cancel_task
from agentkit.config import Settings, TenantLimit
from agentkit.loop.finalize import end_task
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task, TaskStatus
from agentkit.store import TaskStore
from agentkit.store.tenant_slots import TenantSlots
from agentkit.tools import ToolRegistry
from tests.conftest import TABLE
from tests.support.api_events import call_handler, keyed, submit_event, task_event
from tests.support.aws import AtomicRequests, FakeLambdaContext, load_handler


class Starter:
    """step_functions_starter on moto, counting calls per task; fails for `failing` ids."""

    def __init__(self, machine: str, *, fail_all: bool = False) -> None:
        self.machine = machine
        self._start = step_functions_starter(boto3.client("stepfunctions"), machine)
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()
        self.fail_all = fail_all
        self._lock = threading.Lock()

    def __call__(self, task_id: str) -> str:
        with self._lock:
            self.calls[task_id] += 1
        if self.fail_all or task_id in self.failing:
            raise RuntimeError("StateMachineDoesNotExist: gone")
        return self._start(task_id)

    def executions(self) -> list[str]:
        """Names of the executions started on the state machine, oldest first."""
        listed = boto3.client("stepfunctions").list_executions(stateMachineArn=self.machine)
        return [e["name"] for e in sorted(listed["executions"], key=lambda e: e["startDate"])]


def _settings(cap: int = 2, **tenants: int) -> Settings:
    return Settings(
        table_name=TABLE,
        scripted_model_enabled=True,
        default_tenant_limit=TenantLimit(max_running=cap),
        tenant_limits={name: TenantLimit(max_running=n) for name, n in tenants.items()},
    )


def _submit(store: TaskStore, registry: ToolRegistry, settings: Settings, start: Starter,
            tenant: str = "acme") -> Task:
    request = SubmitTaskRequest(goal="g", model="scripted",
                                scripted_turns=[{"content": "done"}])  # type: ignore[list-item]
    return submit_task(request, store=store, registry=registry, settings=settings,
                       start_execution=start, tenant_id=tenant)


def _end(store: TaskStore, task_id: str, start: Starter, settings: Settings,
         outcome: str = "succeeded") -> str | None:
    return end_task(task_id, outcome, store=store, start_execution=start,  # type: ignore[arg-type]
                    max_running_for=settings.max_running_for)[1]


def _queued(store: TaskStore, tenant: str = "acme") -> list[str]:
    return [entry.task_id for entry in TenantSlots(store).queued(tenant, limit=1000)]


def _running(store: TaskStore, tenant: str = "acme") -> int:
    return TenantSlots(store).running(tenant)


# --- admission and order


def test_beyond_the_cap_a_task_is_accepted_queued_with_no_execution(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=2)
    first, second, third = (_submit(store, registry, settings, start) for _ in range(3))
    assert first.execution_arn and second.execution_arn
    assert third.status == TaskStatus.QUEUED and third.execution_arn is None
    assert start.executions() == [first.task_id, second.task_id]
    assert _queued(store) == [third.task_id] and _running(store) == 2


def test_ending_one_starts_the_oldest_queued_and_order_holds_over_five(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=2)
    running = [_submit(store, registry, settings, start).task_id for _ in range(2)]
    queued = [_submit(store, registry, settings, start).task_id for _ in range(5)]
    assert _queued(store) == queued

    started_in_order = []
    while running:
        started = _end(store, running.pop(0), start, settings)
        if started:
            started_in_order.append(started)
            running.append(started)
        assert _running(store) == len(running) <= 2
    assert started_in_order == queued
    assert start.executions()[2:] == queued
    assert _queued(store) == [] and _running(store) == 0
    assert all(store.require_task(t).execution_arn for t in queued)


def test_the_submit_response_keeps_its_shape_when_queued(
    store: TaskStore, state_machine_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANT_LIMITS", '{"default": {"max_running": 1}}')

    statuses = [call_handler("submit", keyed(submit_event(), None)) for _ in range(2)]
    assert [(code, body["status"]) for code, body in statuses] == [(202, "QUEUED")] * 2
    assert store.require_task(statuses[0][1]["task_id"]).execution_arn
    assert store.require_task(statuses[1][1]["task_id"]).execution_arn is None


def test_another_tenant_starts_at_once_while_one_has_50_queued(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=2)
    busy = [_submit(store, registry, settings, start, "busy") for _ in range(52)]
    assert len(_queued(store, "busy")) == 50 and _running(store, "busy") == 2
    other = _submit(store, registry, settings, start, "calm")
    assert other.execution_arn and start.calls[other.task_id] == 1
    # and its ending starts none of the busy tenant's tasks
    assert _end(store, other.task_id, start, settings) is None
    assert len(_queued(store, "busy")) == 50 and _running(store, "calm") == 0
    assert _end(store, busy[0].task_id, start, settings) == busy[2].task_id


def test_a_tenants_own_limit_replaces_the_default(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=1, big=3)
    big = [_submit(store, registry, settings, start, "big") for _ in range(4)]
    small = [_submit(store, registry, settings, start, "small") for _ in range(2)]
    assert [bool(t.execution_arn) for t in big] == [True, True, True, False]
    assert [bool(t.execution_arn) for t in small] == [True, False]


def test_a_lowered_cap_lets_running_tasks_drain_below_it_first(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start = Starter(state_machine_arn)
    running = [_submit(store, registry, _settings(cap=3), start).task_id for _ in range(3)]
    waiting = _submit(store, registry, _settings(cap=3), start).task_id
    lowered = _settings(cap=2)
    assert _end(store, running[0], start, lowered) is None  # 3 ran: one ends, 2 = cap
    assert _queued(store) == [waiting] and _running(store) == 2
    assert _end(store, running[1], start, lowered) == waiting
    assert _running(store) == 2


# --- releasing exactly once


def test_a_retried_finalize_releases_once(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=2)
    running = [_submit(store, registry, settings, start).task_id for _ in range(2)]
    queued = [_submit(store, registry, settings, start).task_id for _ in range(2)]
    assert _end(store, running[0], start, settings) == queued[0]
    for outcome in ("succeeded", "failed", "stopped"):  # retries, and the other paths
        assert _end(store, running[0], start, settings, outcome) is None
    assert _queued(store) == [queued[1]] and _running(store) == 2
    assert store.require_task(running[0]).status == TaskStatus.SUCCEEDED
    assert start.calls[queued[0]] == 1 and start.calls[queued[1]] == 0


def test_a_retry_finishes_a_release_that_crashed_before_starting_the_next(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=1)
    first = _submit(store, registry, settings, start)
    waiting = _submit(store, registry, settings, start)
    store.finish_task(first.task_id, TaskStatus.SUCCEEDED)
    # the first attempt handed the slot over, then its Lambda died before the start
    slots = TenantSlots(store)
    [entry] = slots.queued("acme")
    assert slots.hand_over(first.task_id, "acme", entry, 1).value == "done"
    assert store.require_task(waiting.task_id).execution_arn is None

    assert _end(store, first.task_id, start, settings, "stopped") == waiting.task_id
    assert start.executions()[-1] == waiting.task_id and _running(store) == 1


class _OneAtATime(AtomicRequests):
    """One request at a time, with every thread held at its first query until all got
    there: after it (`hold_after`), all contenders read the same queue head before any
    writes; before it, every contender's earlier writes are in before anyone reads."""

    def __init__(self, client: Any, contenders: int, *, hold_after: bool = True) -> None:
        super().__init__(client)
        self._hold_after = hold_after
        self._barrier = threading.Barrier(contenders, timeout=20)
        self._local = threading.local()

    def _first_query(self, name: str) -> bool:
        return name == "query" and not getattr(self._local, "queried", False)

    def before(self, name: str) -> None:
        if self._first_query(name) and not self._hold_after:
            self._local.queried = True
            self._barrier.wait()

    def after(self, name: str) -> None:
        if self._first_query(name) and self._hold_after:
            self._local.queried = True
            self._barrier.wait()


def _concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def test_two_concurrent_releasers_start_each_queued_task_once(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=2)
    running = [_submit(store, registry, settings, start).task_id for _ in range(2)]
    queued = [_submit(store, registry, settings, start).task_id for _ in range(5)]
    racing = TaskStore(TABLE, client=_OneAtATime(store.client, 2))
    started = _concurrently([
        partial(release_and_start_next, task_id, "acme", store=racing,
                start_execution=start, max_running=2)
        for task_id in running
    ])
    assert sorted(started) == sorted(queued[:2])  # both heads, one each
    assert all(start.calls[t] == 1 for t in queued[:2])
    assert _queued(store) == queued[2:] and _running(store) == 2


def test_two_concurrent_releases_of_one_task_free_one_slot(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    """A cancel racing the stop path's ReleaseSlot for the same task."""
    start, settings = Starter(state_machine_arn), _settings(cap=1)
    task_id = _submit(store, registry, settings, start).task_id
    queued = [_submit(store, registry, settings, start).task_id for _ in range(2)]
    racing = TaskStore(TABLE, client=_OneAtATime(store.client, 2))
    _concurrently([
        lambda: release_and_start_next(task_id, "acme", store=racing,
                                       start_execution=start, max_running=1)
    ] * 2)
    assert _queued(store) == [queued[1]] and _running(store) == 1
    assert start.executions()[-1] == queued[0] and queued[1] not in start.executions()


def test_concurrent_submits_never_pass_the_cap(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=2)
    # held before the first read: all six are queued (in order) before any claims
    racing = TaskStore(TABLE, client=_OneAtATime(store.client, 6, hold_after=False))
    tasks = _concurrently([lambda: _submit(racing, registry, settings, start)] * 6)
    # (a submit may start an older task than its own, so read the store, not the answers)
    in_line = sorted(tasks, key=lambda t: (t.created_at, t.task_id))
    started = [t.task_id for t in in_line if store.require_task(t.task_id).execution_arn]
    assert started == [t.task_id for t in in_line[:2]]  # all were queued: the two oldest
    assert sorted(start.executions()) == sorted(started)
    assert _queued(store) == [t.task_id for t in in_line[2:]] and _running(store) == 2


# --- cancel


def test_cancelling_a_queued_task_takes_it_out_of_the_queue(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=1)
    running = _submit(store, registry, settings, start)
    skipped, waiting = (_submit(store, registry, settings, start) for _ in range(2))
    stopped: list[str] = []
    cancelled = cancel_task(skipped, store=store, stop_execution=stopped.append,
                            start_execution=start, max_running=1)
    assert cancelled.status == TaskStatus.CANCELLED and stopped == []
    assert _queued(store) == [waiting.task_id] and _running(store) == 1
    assert _end(store, running.task_id, start, settings) == waiting.task_id
    assert skipped.task_id not in start.executions()


def test_cancelling_a_running_task_starts_the_next(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=1)
    running = _submit(store, registry, settings, start)
    waiting = [_submit(store, registry, settings, start) for _ in range(2)]
    stopped: list[str] = []
    cancel_task(running, store=store, stop_execution=stopped.append,
                start_execution=start, max_running=1)
    assert stopped == [running.execution_arn]
    assert store.require_task(waiting[0].task_id).execution_arn
    assert _queued(store) == [waiting[1].task_id] and _running(store) == 1
    # the stop path's ReleaseSlot of the cancelled task, if it still runs: no second release
    assert _end(store, running.task_id, start, settings, "stopped") is None
    assert _queued(store) == [waiting[1].task_id]


def test_the_tasks_route_cancels_a_queued_task(
    store: TaskStore, state_machine_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANT_LIMITS", '{"default": {"max_running": 1}}')

    first = call_handler("submit", keyed(submit_event(), None))[1]["task_id"]
    second = call_handler("submit", keyed(submit_event(), None))[1]["task_id"]
    assert store.require_task(second).execution_arn is None
    status, body = call_handler("tasks", task_event("tasks_cancel.json", first))
    assert (status, body["status"]) == (200, "CANCELLED")
    assert store.require_task(second).execution_arn  # the freed slot went to it
    assert _queued(store, "tenant-example") == []


# --- start failures


def test_a_start_failure_marks_that_task_failed_and_frees_the_slot(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    start, settings = Starter(state_machine_arn), _settings(cap=1)
    running = _submit(store, registry, settings, start)
    doomed, waiting = (_submit(store, registry, settings, start) for _ in range(2))
    start.failing.add(doomed.task_id)
    assert _end(store, running.task_id, start, settings) == waiting.task_id
    failed = store.require_task(doomed.task_id)
    assert failed.status == TaskStatus.FAILED
    assert failed.error == ("could not start the agent loop: RuntimeError: "
                            "StateMachineDoesNotExist: gone")
    assert _running(store) == 1 and _queued(store) == []


def test_a_submit_whose_own_start_fails_raises_and_holds_no_slot(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str
) -> None:
    settings = _settings(cap=1)
    broken = Starter(state_machine_arn, fail_all=True)
    with pytest.raises(RuntimeError, match="StateMachineDoesNotExist"):
        _submit(store, registry, settings, broken)
    [task] = store.list_tasks("acme")[0]
    assert task.status == TaskStatus.FAILED and "could not start" in (task.error or "")
    assert _running(store) == 0 and _queued(store) == []
    assert _submit(store, registry, settings, Starter(state_machine_arn)).execution_arn  # slot free


class LambdaDied(BaseException):
    """The function was stopped mid-invocation (a timeout): no handler code runs after."""


def test_a_submit_that_died_between_claim_and_start_is_started_by_the_next_submit(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(cap=1)

    def die(task_id: str) -> str:
        raise LambdaDied

    with pytest.raises(LambdaDied):
        _submit(store, registry, settings, die)  # type: ignore[arg-type]
    [orphan] = store.list_tasks("acme")[0]
    assert orphan.status == TaskStatus.QUEUED and orphan.execution_arn is None
    assert _running(store) == 1  # its slot is held by a task that does not run
    start = Starter(state_machine_arn)
    # Within the grace its claimer may still be starting it: left alone.
    later = _submit(store, registry, settings, start)
    assert start.calls[orphan.task_id] == 0 and later.status == TaskStatus.QUEUED
    monkeypatch.setattr("agentkit.admission.STALE_START_S", 0.0)
    _submit(store, registry, settings, start)  # the tenant's next submit recovers it
    assert store.require_task(orphan.task_id).execution_arn
    assert start.executions() == [orphan.task_id]
    assert _running(store) == 1 and len(_queued(store)) == 2  # order and cap kept
    # Started once: the marker is gone, the next fill does not start it again.
    _submit(store, registry, settings, start)
    assert start.calls[orphan.task_id] == 1


# --- the finalize handler and the configuration


def test_the_finalize_handler_starts_the_next_on_the_machine_it_is_told(
    store: TaskStore, registry: ToolRegistry, state_machine_arn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    monkeypatch.setenv("TENANT_LIMITS", '{"default": {"max_running": 1}}')
    start, settings = Starter(state_machine_arn), _settings(cap=1)
    running = _submit(store, registry, settings, start)
    waiting = _submit(store, registry, settings, start)
    finalize = load_handler("finalize")
    event = {"task_id": running.task_id, "outcome": "succeeded",
             "state_machine_arn": state_machine_arn}
    assert finalize.lambda_handler(event, FakeLambdaContext())["status"] == "SUCCEEDED"
    assert start.executions()[-1] == waiting.task_id
    stopped = {"task_id": running.task_id, "outcome": "stopped",
               "state_machine_arn": state_machine_arn}
    assert finalize.lambda_handler(stopped, FakeLambdaContext())["status"] == "SUCCEEDED"
    assert _running(store) == 1


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("not json", "not JSON"),
        ('{"default": {"max_running": 0}}', "default.max_running: Input should be greater"),
        ('{"tenants": {"acme": {"max_running": "many"}}}', "tenants.acme.max_running"),
        ('{"tenants": {"acme": {"max_runing": 5}}}', "tenants.acme.max_runing: Extra inputs"),
        ('{"defaults": {"max_running": 5}}', "defaults: Extra inputs"),
        ("[]", "(top level)"),
    ],
)
def test_bad_tenant_limits_stop_the_function_naming_the_field(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, value: str, names: str
) -> None:
    monkeypatch.setenv("TENANT_LIMITS", value)
    with pytest.raises(RuntimeError, match="TENANT_LIMITS is invalid") as error:
        Settings.from_env()
    assert names in str(error.value)


def test_tenant_limits_default_to_ten_and_a_tenant_entry_wins(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENANT_LIMITS", raising=False)
    assert Settings.from_env().max_running_for("anyone") == 10
    monkeypatch.setenv("TENANT_LIMITS",
                       '{"default": {"max_running": 3}, "tenants": {"acme": {"max_running": 50}}}')
    configured = Settings.from_env()
    assert configured.max_running_for("acme") == 50 and configured.max_running_for("x") == 3
