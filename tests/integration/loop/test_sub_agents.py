"""Sub-agents on moto, state by state as the state machine would drive them: a parent's
`delegate` call becomes sub-tasks (WaitForChildren), the parent parks on its token, each
sub-task's end reports to it, the last one writes the call's result and resumes it."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.api.submit import submit_task
from agentkit.api.tasks import cancel_task, get_task_view, list_task_page
from agentkit.config import Settings
from agentkit.llm import get_client
from agentkit.loop.call_model import call_model
from agentkit.loop.children import report_to_parent, settle_children, start_children
from agentkit.loop.finalize import end_task
from agentkit.loop.plan import plan_task
from agentkit.loop.run_tools import run_tools
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task, TaskStatus, Usage
from agentkit.models.payloads import ChildrenSettle, ChildrenWait, ModelStepOutput, TaskRef, TurnRef
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.store.children import ChildrenStore
from agentkit.tools import ToolRegistry
from agentkit.tools.delegate import DelegationLimits

SETTINGS = Settings(table_name="t", scripted_model_enabled=True, default_max_turns=6)
TOKEN = "parent-token"


def _answer(text: str, tokens: int = 10) -> dict[str, Any]:
    return {"content": text, "usage": {"input_tokens": tokens, "output_tokens": tokens}}


def _delegate(goals: list[str], scripts: list[list[dict[str, Any]]] | None = None,
              **extra: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"name": "delegate",
                            "arguments": {"tasks": [{"goal": g, **extra} for g in goals]}}
    if scripts is not None:
        call["child_scripts"] = scripts
    return {"tool_calls": [call], "usage": {"input_tokens": 100, "output_tokens": 20}}


class Loop:
    """The state machine's part, in-process: starts recorded, tokens answered recorded."""

    def __init__(self, store: TaskStore, registry: ToolRegistry,
                 limits: DelegationLimits | None = None) -> None:
        self.store, self.registry = store, registry
        self.limits = limits or DelegationLimits()
        self.started: list[str] = []
        self.resumed: list[str] = []
        self.stopped: list[str] = []

    def submit(self, turns: list[dict[str, Any]], **extra: Any) -> str:
        request = SubmitTaskRequest.model_validate(
            {"goal": "Research three things.", "model": "scripted", "scripted_turns": turns,
             "tools": ["delegate", "calculator"], **extra})
        task = submit_task(request, store=self.store, registry=self.registry,
                           settings=SETTINGS, start_execution=self.start)
        return task.task_id

    def start(self, task_id: str) -> str:
        self.started.append(task_id)
        return f"arn:aws:states:us-east-1:123456789012:execution:agent:{task_id}"

    def call_model(self, task_id: str, turn: int) -> ModelStepOutput:
        return call_model(
            TurnRef(task_id=task_id, turn=turn), store=self.store,
            client_for=lambda task, model: get_client(
                model, scripted_turns=self.store.get_script(task.task_id), scripted_enabled=True))

    def until_delegation(self, task_id: str) -> ModelStepOutput:
        """Plan, then CallModel until the turn routes to WaitForChildren."""
        plan_task(TaskRef(task_id=task_id), store=self.store, registry=self.registry)
        output = self.call_model(task_id, 0)
        assert output.route == "delegate", output
        return output

    def wait_for_children(self, output: ModelStepOutput) -> Any:
        return start_children(
            ChildrenWait(action="start", task_id=output.task_id, turn=output.turn,
                         delegations=output.delegations, task_token=TOKEN),
            store=self.store, security=SecurityManager(), resume=self.resumed.append,
            start_execution=self.start, limits=self.limits)

    def run_child(self, task_id: str) -> Task:
        """A sub-task's whole execution: Plan, model turns (tools run), the end."""
        plan_task(TaskRef(task_id=task_id), store=self.store, registry=self.registry)
        turn = 0
        while True:
            try:
                output = self.call_model(task_id, turn)
            except Exception as error:  # MarkFailed
                from agentkit.models.payloads import StepError

                return self.end(task_id, "failed", StepError(Error=type(error).__name__,
                                                             Cause=str(error)))
            if output.action != "tool_calls":
                break
            run_tools(output.tool_calls, store=self.store, registry=self.registry,
                      security=SecurityManager())
            turn = output.turn
        return self.end(task_id, "succeeded" if output.action == "final" else "stopped")

    def end(self, task_id: str, outcome: Any, error: Any = None) -> Task:
        task, _ = end_task(task_id, outcome, store=self.store, error=error,
                           start_execution=None, max_running_for=lambda _: 10,
                           report_to_parent=lambda t: report_to_parent(
                               t, store=self.store, resume=self.resumed.append))
        return task

    def finish_parent(self, output: ModelStepOutput) -> ModelStepOutput:
        """RunTools (the delegate result is stored already), then the next model turn."""
        run_tools(output.tool_calls, store=self.store, registry=self.registry,
                  security=SecurityManager())
        return self.call_model(output.task_id, output.turn)


@pytest.fixture
def loop(store: TaskStore, registry: ToolRegistry) -> Loop:
    return Loop(store, registry)


THREE = ["the capital of France", "the capital of Peru", "the capital of Japan"]
ANSWERS = [[_answer("Paris")], [_answer("Lima")], [_answer("Tokyo")]]


def test_three_sub_goals_answer_the_delegate_call(loop: Loop, store: TaskStore) -> None:
    parent_id = loop.submit([_delegate(THREE, ANSWERS), _answer("Paris, Lima, Tokyo.")],
                            max_tokens=9000)
    output = loop.until_delegation(parent_id)
    record = loop.wait_for_children(output)
    children = record.of_call(output.delegations[0].call_id)
    assert len(children) == 3 and loop.started[1:] == children  # all started, in order
    assert record.task_token == TOKEN and not loop.resumed  # parked
    for child_id in children:
        child = store.require_task(child_id)
        assert child.parent_id == parent_id and child.depth == 1
        assert child.tools == ["delegate", "calculator"]  # the parent's, by default
        # 1/3 of what the parent had left (9000 - its first call's 120 tokens)
        assert child.max_tokens == (9000 - 120) // 3 and child.tenant_id == "default"
        assert child.execution_arn and child.execution_arn.endswith(child_id)

    for child_id in children[:2]:
        loop.run_child(child_id)
    assert not loop.resumed  # one still running
    loop.run_child(children[2])
    assert loop.resumed == [TOKEN]  # the last one resumed the parent

    final = loop.finish_parent(output)
    assert final.action == "final"
    view = get_task_view(parent_id, store=store, tenant_id="default")
    [result] = [m for m in view.messages if m.role == "tool"]
    assert not result.is_error and result.name == "delegate"
    assert [r["answer"] for r in __import__("json").loads(result.content or "")["results"]] == [
        "Paris", "Lima", "Tokyo"]
    # The parent's usage includes its sub-tasks' (3 x 20 tokens, 3 model calls).
    assert view.usage.total_tokens == 120 + 3 * 20 + view.messages[-1].usage.total_tokens
    assert view.usage.model_calls == 2 + 3
    assert [c.task_id for c in view.children] == children
    assert all(c.parent_id == parent_id and c.status == TaskStatus.SUCCEEDED
               for c in view.children)
    page = list_task_page(store=store, tenant_id="default", parent_id=parent_id)
    assert [item.task_id for item in page.items] == children[::-1]  # newest first
    assert list_task_page(store=store, tenant_id="other", parent_id=parent_id).items == []
    kinds = [e.name for e in store.list_events(parent_id) if e.kind == "delegation"]
    assert kinds.count("SUCCEEDED") == 3 and "started" in kinds


def test_a_failed_sub_task_is_an_error_result_not_the_parents_failure(
    loop: Loop, store: TaskStore
) -> None:
    failing = [{"error": {"kind": "fatal", "message": "no such capital"}}]
    parent_id = loop.submit([_delegate(THREE[:2], [[_answer("Paris")], failing]),
                             _answer("One of them failed.")])
    output = loop.until_delegation(parent_id)
    record = loop.wait_for_children(output)
    ok, bad = record.of_call(output.delegations[0].call_id)
    assert loop.run_child(bad).status == TaskStatus.FAILED
    loop.run_child(ok)
    assert loop.resumed == [TOKEN]
    assert loop.finish_parent(output).action == "final"
    [result] = [m for m in store.list_messages(parent_id) if m.role == "tool"]
    assert result.is_error and "1 of 2 sub-task(s) did not succeed" in (result.content or "")
    assert "no such capital" in (result.content or "") and "Paris" in (result.content or "")
    loop.end(parent_id, "succeeded")
    assert store.require_task(parent_id).status == TaskStatus.SUCCEEDED


def test_sub_tasks_that_end_before_the_token_is_stored_resume_at_once(
    loop: Loop, store: TaskStore
) -> None:
    parent_id = loop.submit([_delegate(THREE[:1], ANSWERS[:1]), _answer("Paris.")])
    output = loop.until_delegation(parent_id)
    first = loop.wait_for_children(output)
    [child_id] = list(first.children)
    # As if the child ran before the wait parked: its report finds no token to answer...
    store.update_task(child_id, changes={"status": "SUCCEEDED", "answer": "Paris",
                                         "usage": Usage(input_tokens=5).model_dump()})
    ChildrenStore(store).client.update_item(  # the token not stored yet
        TableName=store.table_name, Key={"pk": {"S": f"TASK#{parent_id}"},
                                         "sk": {"S": "CHILDREN#0001"}},
        UpdateExpression="REMOVE task_token")
    assert report_to_parent(store.require_task(child_id), store=store,
                            resume=loop.resumed.append)
    assert loop.resumed == []
    # ...and a retried wait (same children, not made twice) finds them done: resumes itself.
    again = loop.wait_for_children(output)
    assert list(again.children) == [child_id] and again.done
    assert loop.resumed == [TOKEN] and loop.started.count(child_id) == 1
    # A retried Finalize of the child counts nothing twice.
    assert not report_to_parent(store.require_task(child_id), store=store,
                                resume=loop.resumed.append)
    assert store.require_task(parent_id).usage.input_tokens == 100 + 5


@pytest.mark.parametrize(
    ("limits", "arguments", "expected"),
    [
        (DelegationLimits(max_fanout=2), {"tasks": [{"goal": g} for g in THREE]},
         "fan-out limit: this turn asks for 3 sub-tasks, the deployment allows 2"),
        (DelegationLimits(max_depth=0), {"tasks": [{"goal": "x"}]},
         "delegation depth limit reached"),
        (DelegationLimits(), {"tasks": [{"goal": "x", "tools": ["http_fetch"]}]},
         "tasks[0].tools: http_fetch not among this task's tools"),
        (DelegationLimits(), {"tasks": []}, "field 'tasks'"),
    ],
)
def test_refused_delegations_are_error_results(
    store: TaskStore, registry: ToolRegistry, limits: DelegationLimits,
    arguments: dict[str, Any], expected: str,
) -> None:
    loop = Loop(store, registry, limits)
    parent_id = loop.submit([{"tool_calls": [{"name": "delegate", "arguments": arguments}]},
                             _answer("I will do it myself.")])
    output = loop.until_delegation(parent_id)
    assert loop.wait_for_children(output) is None
    assert loop.resumed == [TOKEN] and loop.started == [parent_id]  # no sub-task
    [result] = [m for m in store.list_messages(parent_id) if m.role == "tool"]
    assert result.is_error and expected in (result.content or ""), result.content
    assert loop.finish_parent(output).action == "final"


def test_the_deepest_sub_tasks_do_not_get_delegate(store: TaskStore,
                                                   registry: ToolRegistry) -> None:
    loop = Loop(store, registry, DelegationLimits(max_depth=1))
    parent_id = loop.submit([_delegate(["x"]), _answer("ok")])
    record = loop.wait_for_children(loop.until_delegation(parent_id))
    [child_id] = list(record.children)
    assert store.require_task(child_id).tools == ["calculator"]


def test_no_budget_left_refuses_the_delegation(loop: Loop, store: TaskStore) -> None:
    parent_id = loop.submit([_delegate(THREE), _answer("ok")], max_tokens=121)
    loop.wait_for_children(loop.until_delegation(parent_id))  # 120 spent: 1 left for 3
    [result] = [m for m in store.list_messages(parent_id) if m.role == "tool"]
    assert "no token budget left to delegate: 1 of max_tokens 121" in (result.content or "")


def test_cancelling_the_parent_cancels_its_sub_tasks(loop: Loop, store: TaskStore) -> None:
    nested = [_delegate(["deeper"], [[_answer("deep")]])]
    parent_id = loop.submit([_delegate(THREE[:2], [nested, ANSWERS[1]]), _answer("x")])
    record = loop.wait_for_children(loop.until_delegation(parent_id))
    first, second = record.of_call(next(iter(record.children.values())).call_id)
    # The first sub-task delegates in turn (depth 2) and waits.
    child_output = loop.until_delegation(first)
    grand = start_children(
        ChildrenWait(action="start", task_id=first, turn=child_output.turn,
                     delegations=child_output.delegations, task_token="child-token"),
        store=store, security=SecurityManager(), resume=loop.resumed.append,
        start_execution=loop.start, limits=loop.limits)
    [grandchild] = list(grand.children)
    assert store.require_task(grandchild).depth == 2

    cancelled = cancel_task(store.require_task(parent_id), store=store,
                            stop_execution=loop.stopped.append)
    assert cancelled.status == TaskStatus.CANCELLED
    for task_id in (first, second, grandchild):
        task = store.require_task(task_id)
        assert task.status == TaskStatus.CANCELLED, task_id
        assert "parent was cancelled" in (task.error or "")
    # Every execution was stopped: the parent's, then its sub-tasks', all the way down.
    assert {arn.rsplit(":", 1)[1] for arn in loop.stopped} == {parent_id, first, second,
                                                                grandchild}
    assert ChildrenStore(store).get(parent_id, 1).done


def test_a_sub_task_cancelled_alone_resumes_its_parent(loop: Loop, store: TaskStore) -> None:
    parent_id = loop.submit([_delegate(THREE[:2], ANSWERS[:2]), _answer("ok")])
    output = loop.until_delegation(parent_id)
    record = loop.wait_for_children(output)
    first, second = record.of_call(output.delegations[0].call_id)
    loop.run_child(first)
    cancel_task(store.require_task(second), store=store, stop_execution=loop.stopped.append,
                resume_wait=loop.resumed.append)
    assert loop.resumed == [TOKEN]
    [result] = [m for m in store.list_messages(parent_id) if m.role == "tool"]
    assert result.is_error and "CANCELLED" in (result.content or "")
    assert store.require_task(parent_id).status == TaskStatus.RUNNING


def test_a_wait_that_times_out_cancels_the_stragglers(loop: Loop, store: TaskStore) -> None:
    parent_id = loop.submit([_delegate(THREE[:2], ANSWERS[:2]), _answer("ok")])
    output = loop.until_delegation(parent_id)
    record = loop.wait_for_children(output)
    first, second = record.of_call(output.delegations[0].call_id)
    loop.run_child(first)
    settled = settle_children(
        ChildrenSettle(action="settle", task_id=parent_id, turn=output.turn,
                       error={"Error": "States.Timeout"}),
        store=store, stop_execution=loop.stopped.append)
    assert settled is not None and settled.done
    straggler = store.require_task(second)
    assert straggler.status == TaskStatus.CANCELLED
    assert "ChildTaskTimeoutSeconds" in (straggler.error or "")
    [result] = [m for m in store.list_messages(parent_id) if m.role == "tool"]
    assert result.is_error and "Paris" in (result.content or "")
    assert loop.finish_parent(output).action == "final"


def test_delegate_is_opt_in(store: TaskStore, registry: ToolRegistry) -> None:
    request = SubmitTaskRequest.model_validate({"goal": "x", "model": "scripted",
                                                "scripted_turns": [_answer("y")]})
    task = submit_task(request, store=store, registry=registry, settings=SETTINGS,
                       start_execution=lambda task_id: "arn")
    assert "delegate" not in task.tools and "calculator" in task.tools


def test_a_delegate_call_that_needs_approval_starts_its_sub_tasks_once_approved(
    loop: Loop, store: TaskStore
) -> None:
    from agentkit.loop.gate_tools import gate_tools
    from agentkit.models.domain import ApprovalStatus
    from agentkit.security.policy import SecurityConfig
    from agentkit.store.approvals import ApprovalStore

    security = SecurityManager(SecurityConfig.parse('{"approval_required": ["delegate"]}'))
    parent_id = loop.submit([_delegate(THREE[:1], ANSWERS[:1]), _answer("ok")])
    output = loop.until_delegation(parent_id)  # (the empty policy: route delegate)
    parent = store.require_task(parent_id)
    calls = store.get_message(parent_id, output.turn, 0).tool_calls
    approvals = ApprovalStore(store)
    gated = gate_tools(parent, output.turn, calls, store=store, security=security,
                       approvals=approvals)
    assert gated.route == "await_approvals_then_delegate"
    assert gated.approvals == gated.delegations == output.delegations
    ModelStepOutput(task_id=parent_id, turn=output.turn, action="tool_calls",
                    route=gated.route)  # a route the state machine knows

    def wait() -> Any:
        return start_children(
            ChildrenWait(action="start", task_id=parent_id, turn=output.turn,
                         delegations=gated.delegations, task_token=TOKEN),
            store=store, security=security, resume=loop.resumed.append,
            start_execution=loop.start, limits=loop.limits)

    # Not approved: nothing starts (RunTools refuses the call then, and stores that).
    decision = security.check(parent, calls[0], turn=output.turn)
    from agentkit.store.approvals import ApprovalRecord

    approvals.request(ApprovalRecord(
        task_id=parent_id, approval_id=decision.approval_id or "", turn=output.turn,
        call_id=calls[0].id, tool="delegate", arguments=calls[0].arguments,
        args_hash=decision.args_hash or "", status=ApprovalStatus.PENDING,
        created_at="2026-01-01T00:00:00.000Z", task_token="approval-token"))
    assert wait() is None and loop.started == [parent_id]
    approvals.decide(parent_id, decision.approval_id or "", ApprovalStatus.APPROVED)
    record = wait()
    assert record is not None and len(record.children) == 1
    assert loop.started[1:] == list(record.children)


def test_a_parent_cancelled_while_its_sub_tasks_are_made_starts_none(
    loop: Loop, store: TaskStore
) -> None:
    parent_id = loop.submit([_delegate(THREE[:2], ANSWERS[:2]), _answer("ok")])
    output = loop.until_delegation(parent_id)
    store.finish_task(parent_id, TaskStatus.CANCELLED, error="cancelled by the caller")
    record = loop.wait_for_children(output)  # a retried wait, after the cancel
    assert record is None and loop.started == [parent_id]
    assert loop.resumed == [TOKEN]  # answered at once: the loop stops at CallModel


def test_sub_tasks_made_after_their_parent_was_cancelled_never_start(
    loop: Loop, store: TaskStore
) -> None:
    parent_id = loop.submit([_delegate(THREE[:2], ANSWERS[:2]), _answer("ok")])
    output = loop.until_delegation(parent_id)
    start = loop.start

    def cancel_then_start(task_id: str) -> str:  # the cancel lands after the first start
        store.finish_task(parent_id, TaskStatus.CANCELLED, error="cancelled by the caller")
        return start(task_id)

    loop.start = cancel_then_start  # type: ignore[method-assign]
    record = loop.wait_for_children(output)
    first, second = record.of_call(output.delegations[0].call_id)
    assert loop.started == [parent_id, first]
    late = store.require_task(second)
    assert late.status == TaskStatus.CANCELLED and "before it started" in (late.error or "")
    assert ChildrenStore(store).get(parent_id, output.turn).outcomes.keys() == {second}
