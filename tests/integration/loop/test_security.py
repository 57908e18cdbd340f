"""The security gate on moto: denied calls recorded and never executed, approvals bound to
the exact arguments, the approval store's conditional transitions, the two handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit import aws
from agentkit.api.approvals import decide_approval
from agentkit.api.tasks import get_task_view
from agentkit.config import SecuritySettings
from agentkit.loop.gate_tools import GatedTurn, gate_tools
from agentkit.loop.run_tools import handle_run_tools, run_tool_call
from agentkit.loop.wait_for_approval import request_approval, settle_unapproved
from agentkit.models.api import ApprovalDecisionRequest
from agentkit.models.domain import ApprovalStatus, Message, Task, TaskStatus, ToolCall
from agentkit.models.payloads import (
    ApprovalSettle,
    ApprovalWait,
    RunToolsMessage,
    StepError,
    ToolCallRef,
)
from agentkit.security import SecurityConfig, SecurityManager
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalNotFoundError, ApprovalStore
from agentkit.tools import Tool, ToolRegistry
from tests.support.api_events import EXAMPLE_ID
from tests.support.aws import (
    FakeLambdaContext,
    RecordingStepFunctions,
    load_event,
    load_handler,
)


class ProbeArgs(BaseModel):
    target: str


class Probe:
    """A tool that records every execution: a denied call must never reach it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, args: ProbeArgs) -> str:
        self.calls.append(args.target)
        return f"probed {args.target}"


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def tools(probe: Probe) -> ToolRegistry:
    return ToolRegistry([
        Tool(name="probe", description="records calls", args_model=ProbeArgs, func=probe),
        Tool(name="guarded", description="needs approval", args_model=ProbeArgs, func=probe),
    ])


POLICY = {
    "allowed_tools": ["probe", "guarded"],
    "approval_required": ["guarded"],
    "constraints": {"probe": {"url_hosts": ["ok.example.com"], "url_fields": ["target"]}},
}


@pytest.fixture
def security() -> SecurityManager:
    return SecurityManager(SecurityConfig.parse(json.dumps(POLICY)))


def _task_with_calls(store: TaskStore, calls: list[tuple[str, dict[str, Any]]], *, turn: int = 1,
                     task_id: str = EXAMPLE_ID, tools: tuple[str, ...] = ("probe", "guarded"),
                     create: bool = True, tenant: str = "default") -> list[ToolCallRef]:
    """A RUNNING task whose turn `turn` asked for these calls (as CallModel stores them)."""
    if create:
        store.create_task(Task(task_id=task_id, tenant_id=tenant, goal="g", model="scripted",
                               tools=list(tools), max_turns=5, status=TaskStatus.RUNNING,
                               turn=turn))
    else:
        store.update_task(task_id, changes={"turn": turn})
    message = Message(role="assistant", tool_calls=[
        ToolCall(id=f"call_{turn}_{i}", name=name, arguments=args)
        for i, (name, args) in enumerate(calls)
    ])
    assert store.put_message(task_id, turn, 0, message)
    return [ToolCallRef(task_id=task_id, turn=turn, call_id=f"call_{turn}_{i}", index=i)
            for i in range(len(calls))]


def _gate(store: TaskStore, security: SecurityManager, refs: list[ToolCallRef],
          answered: frozenset[str] = frozenset()) -> GatedTurn:
    """The gate at the end of CallModel, over the turn the refs belong to."""
    ref = refs[0]
    task = store.require_task(ref.task_id)
    assistant = store.get_message(ref.task_id, ref.turn, 0)
    assert assistant is not None
    return gate_tools(task, ref.turn, assistant.tool_calls, store=store, security=security,
                      approvals=ApprovalStore(store), answered=answered)


# --- denial ------------------------------------------------------------------------


def test_a_denied_call_is_recorded_and_never_executed(
    store: TaskStore, tools: ToolRegistry, security: SecurityManager, probe: Probe
) -> None:
    bad, good = _task_with_calls(store, [("probe", {"target": "https://evil.example.org/x"}),
                                         ("probe", {"target": "https://ok.example.com/y"})])
    result = run_tool_call(bad, store=store, registry=tools, security=security)
    assert result.is_error
    assert result.content == ("error: tool call denied: argument 'target': host "
                              "'evil.example.org' is not allowed (allowed: ok.example.com)")
    assert probe.calls == []
    stored = store.get_message(EXAMPLE_ID, 1, 1)
    assert stored is not None and stored.is_error and stored.content == result.content
    [event] = store.list_events(EXAMPLE_ID)
    assert event.kind == "tool_call" and event.error == result.content
    assert event.detail == {"executed": False}
    # The allowed call of the same turn runs.
    assert run_tool_call(good, store=store, registry=tools, security=security).content == (
        "probed https://ok.example.com/y")
    assert probe.calls == ["https://ok.example.com/y"]


def test_the_gate_denies_before_queueing_and_records_the_result_once(
    store: TaskStore, security: SecurityManager
) -> None:
    bad, good, guarded = _task_with_calls(store, [
        ("probe", {"target": "ftp://ok.example.com/"}),
        ("probe", {"target": "https://ok.example.com/"}),
        ("guarded", {"target": "t"}),
    ])
    gated = _gate(store, security, [bad, good, guarded])
    assert gated.denied == 1
    assert "scheme 'ftp' is not allowed" in (store.get_message(EXAMPLE_ID, 1, 1).content or "")
    # The allowed call and the one that needs approval run in RunTools; the latter waits first.
    assert gated.tool_calls == [good, guarded] and gated.approvals == [guarded]
    assert gated.route == "await_approvals"
    # A retried gate (its result already stored) leaves the denied call alone.
    again = _gate(store, security, [bad], answered=frozenset({bad.call_id}))
    assert again.denied == 0 and bad not in again.tool_calls
    assert len(store.list_events(EXAMPLE_ID)) == 1
    # Without approvals a turn goes to RunTools; with nothing left to run, back to CallModel.
    [only_good] = _task_with_calls(store, [("probe", {"target": "https://ok.example.com/"})],
                                   turn=2, create=False)
    assert _gate(store, security, [only_good]).route == "run_tools"
    [only_bad] = _task_with_calls(store, [("probe", {"target": "ftp://x/"})], turn=3,
                                  create=False)
    assert _gate(store, security, [only_bad]).route == "call_model"


def test_a_disallowed_tool_is_refused_at_submit(store: TaskStore, tools: ToolRegistry) -> None:
    from agentkit.api.submit import submit_task
    from agentkit.config import Settings
    from agentkit.errors import InputError
    from agentkit.models.api import SubmitTaskRequest

    security = SecurityManager(SecurityConfig.parse('{"allowed_tools": ["probe"]}'))
    settings = Settings(table_name="t")
    with pytest.raises(InputError) as caught:
        submit_task(SubmitTaskRequest(goal="g", tools=["probe", "guarded"]), store=store,
                    registry=tools, settings=settings, start_execution=lambda _: "arn",
                    security=security)
    assert caught.value.field == "tools"
    assert caught.value.problem == ("not allowed by the security policy: 'guarded' is not "
                                    "allowed by the security policy")
    # Without a tool list, the task gets what the policy allows.
    task = submit_task(SubmitTaskRequest(goal="g"), store=store, registry=tools,
                       settings=settings, start_execution=lambda _: "arn", security=security)
    assert task.tools == ["probe"]


# --- RunTools: a turn's calls in one message ----------------------------------------


def test_run_tools_runs_a_turn_once_and_answers_its_token(
    store: TaskStore, tools: ToolRegistry, security: SecurityManager, probe: Probe
) -> None:
    refs = _task_with_calls(store, [("probe", {"target": "https://ok.example.com/a"}),
                                    ("probe", {"target": "https://ok.example.com/b"}),
                                    ("guarded", {"target": "unapproved"})])
    message = RunToolsMessage(task_id=EXAMPLE_ID, turn=1, tool_calls=refs, task_token="tok")
    sfn = RecordingStepFunctions()
    results = handle_run_tools(message, receive_count=1, max_receives=3, store=store,
                               registry=tools, security=security, sfn=sfn)
    # The gate is asked again: the call that needs approval has none, so it never runs.
    assert [(r.call_id, r.is_error) for r in results] == [
        ("call_1_0", False), ("call_1_1", False), ("call_1_2", True)]
    assert "needs an approval for these exact arguments" in results[2].content
    assert sorted(probe.calls) == ["https://ok.example.com/a", "https://ok.example.com/b"]
    [(kind, answer)] = sfn.calls
    assert kind == "success" and answer["taskToken"] == "tok"
    assert [r["call_id"] for r in json.loads(answer["output"])["results"]] == [
        "call_1_0", "call_1_1", "call_1_2"]
    # A redelivered message runs nothing twice and answers the same.
    again = handle_run_tools(message, receive_count=2, max_receives=3, store=store,
                             registry=tools, security=security, sfn=sfn)
    assert [r.content for r in again] == [r.content for r in results]
    assert len(probe.calls) == 2 and [kind for kind, _ in sfn.calls] == ["success", "success"]


def test_run_tools_keeps_the_results_it_got_and_fails_the_wait_on_the_last_delivery(
    store: TaskStore, tools: ToolRegistry, security: SecurityManager, probe: Probe
) -> None:
    [good] = _task_with_calls(store, [("probe", {"target": "https://ok.example.com/a"})])
    broken = good.model_copy(update={"call_id": "call_elsewhere", "index": 1})
    message = RunToolsMessage(task_id=EXAMPLE_ID, turn=1, tool_calls=[good, broken],
                              task_token="tok")
    sfn = RecordingStepFunctions()
    for delivery in (1, 2):
        with pytest.raises(LookupError, match="no tool call #1"):
            handle_run_tools(message, receive_count=delivery, max_receives=3, store=store,
                             registry=tools, security=security, sfn=sfn)
        assert sfn.calls == []  # SQS delivers it again
    with pytest.raises(LookupError):
        handle_run_tools(message, receive_count=3, max_receives=3, store=store,
                         registry=tools, security=security, sfn=sfn)
    [(kind, answer)] = sfn.calls
    assert kind == "failure" and answer["error"] == "ToolCallFailed"
    assert "no tool call #1" in answer["cause"]
    # The call that could run ran once, and its result is kept for the model.
    assert probe.calls == ["https://ok.example.com/a"]
    stored = store.get_message(EXAMPLE_ID, 1, 1)
    assert stored is not None and stored.content == "probed https://ok.example.com/a"


# --- approvals -----------------------------------------------------------------------


def test_approval_round_trip_approve(
    store: TaskStore, tools: ToolRegistry, security: SecurityManager, probe: Probe
) -> None:
    [ref] = _task_with_calls(store, [("guarded", {"target": "prod-db"})])
    sfn = RecordingStepFunctions()
    # Without an approval the call is refused even if it reached the tool function.
    early = run_tool_call(ref, store=store, registry=tools, security=security)
    assert early.is_error and "needs an approval for these exact arguments" in early.content
    assert probe.calls == []
    store.client.delete_item(TableName=store.table_name,
                             Key={"pk": {"S": f"TASK#{EXAMPLE_ID}"}, "sk": {"S": "MSG#0001#001"}})

    assert _gate(store, security, [ref]).approvals == [ref]
    call = store.get_message(EXAMPLE_ID, 1, 0).tool_calls[0]
    approval_id = security.check(store.require_task(EXAMPLE_ID), call, turn=1).approval_id
    assert approval_id
    view = request_approval(ApprovalWait(action="wait", task_token="token-1", **ref.model_dump()),
                            store=store, security=security, sfn=sfn)
    assert view is not None and view.approval_id == approval_id
    task_view = get_task_view(EXAMPLE_ID, store=store, tenant_id="default")
    assert task_view.status == TaskStatus.WAITING_APPROVAL
    [pending] = task_view.approvals
    assert pending.status == ApprovalStatus.PENDING and pending.arguments == {"target": "prod-db"}
    assert pending.tool == "guarded" and pending.call_id == ref.call_id
    dumped = task_view.model_dump_json()  # the task token never leaves the store
    assert "token-1" not in dumped and "task_token" not in dumped

    decided = decide_approval(EXAMPLE_ID, approval_id, ApprovalDecisionRequest(
        decision="approve", reason="ok"), store=store, sfn=sfn)
    assert decided.status == ApprovalStatus.APPROVED and decided.decided_at
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.RUNNING
    [(kind, answer)] = sfn.calls
    assert kind == "success" and answer["taskToken"] == "token-1"
    # A second decision, either way, is a conflict.
    with pytest.raises(ApprovalConflictError, match="already APPROVED"):
        decide_approval(EXAMPLE_ID, approval_id, ApprovalDecisionRequest(decision="deny"),
                        store=store, sfn=sfn)
    result = run_tool_call(ref, store=store, registry=tools, security=security)
    assert not result.is_error and probe.calls == ["prod-db"]
    kinds = [(e.kind, e.detail.get("status")) for e in store.list_events(EXAMPLE_ID)]
    assert ("approval", "PENDING") in kinds and ("approval", "APPROVED") in kinds


def test_approval_round_trip_deny(
    store: TaskStore, tools: ToolRegistry, security: SecurityManager, probe: Probe
) -> None:
    [ref] = _task_with_calls(store, [("guarded", {"target": "prod-db"})])
    sfn = RecordingStepFunctions()
    view = request_approval(ApprovalWait(action="wait", task_token="token-1", **ref.model_dump()),
                            store=store, security=security, sfn=sfn)
    assert view is not None
    decide_approval(EXAMPLE_ID, view.approval_id, ApprovalDecisionRequest(
        decision="deny", reason="not on prod"), store=store, sfn=sfn)
    [(kind, answer)] = sfn.calls
    assert kind == "failure" and answer["error"] == "ApprovalDenied"
    # The state machine's Catch: ApprovalNotGranted records the denial as the call's result.
    result = settle_unapproved(ApprovalSettle(action="settle", error=StepError(
        Error="ApprovalDenied", Cause="not on prod"), **ref.model_dump()),
        store=store, security=security)
    assert result is not None and result.content == (
        f"error: tool call denied: approval {view.approval_id} was denied: not on prod")
    assert probe.calls == []
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.RUNNING
    # Even a replayed SQS message cannot run it now.
    assert run_tool_call(ref, store=store, registry=tools, security=security).is_error
    assert probe.calls == []


def test_changed_arguments_need_a_new_approval(
    store: TaskStore, tools: ToolRegistry, security: SecurityManager, probe: Probe
) -> None:
    [first] = _task_with_calls(store, [("guarded", {"target": "a"})])
    sfn = RecordingStepFunctions()
    one = request_approval(ApprovalWait(action="wait", task_token="t1", **first.model_dump()),
                           store=store, security=security, sfn=sfn)
    assert one is not None
    decide_approval(EXAMPLE_ID, one.approval_id, ApprovalDecisionRequest(decision="approve"),
                    store=store, sfn=sfn)
    run_tool_call(first, store=store, registry=tools, security=security)
    # The next turn asks for the same tool with other arguments: another approval id, and
    # the first approval does not authorize it.
    [second] = _task_with_calls(store, [("guarded", {"target": "b"})], turn=2, create=False)
    assert _gate(store, security, [second]).approvals == [second]
    refused = run_tool_call(second, store=store, registry=tools, security=security)
    assert refused.is_error and "approval" in refused.content and probe.calls == ["a"]
    with pytest.raises(ApprovalConflictError):
        decide_approval(EXAMPLE_ID, one.approval_id, ApprovalDecisionRequest(decision="approve"),
                        store=store, sfn=sfn)
    # An approver who names the hash they saw cannot approve another call by mistake.
    two = request_approval(ApprovalWait(action="wait", task_token="t2", **second.model_dump()),
                           store=store, security=security, sfn=sfn)
    assert two is not None and two.args_hash != one.args_hash
    with pytest.raises(ApprovalConflictError, match="hash"):
        decide_approval(EXAMPLE_ID, two.approval_id, ApprovalDecisionRequest(
            decision="approve", args_hash=one.args_hash), store=store, sfn=sfn)
    assert ApprovalStore(store).get(EXAMPLE_ID, two.approval_id).status == "PENDING"


def test_the_task_waits_while_any_approval_is_pending(
    store: TaskStore, security: SecurityManager
) -> None:
    a, b = _task_with_calls(store, [("guarded", {"target": "a"}), ("guarded", {"target": "b"})])
    sfn = RecordingStepFunctions()
    views = [request_approval(ApprovalWait(action="wait", task_token=f"t{r.index}",
                                           **r.model_dump()), store=store, security=security,
                              sfn=sfn) for r in (a, b)]
    # A retried wait step finds the same approval and stores its new token.
    again = request_approval(ApprovalWait(action="wait", task_token="t0-retry", **a.model_dump()),
                             store=store, security=security, sfn=sfn)
    assert again == views[0]
    approvals = ApprovalStore(store)
    assert approvals.get(EXAMPLE_ID, views[0].approval_id).task_token == "t0-retry"
    decide_approval(EXAMPLE_ID, views[0].approval_id, ApprovalDecisionRequest(decision="approve"),
                    store=store, sfn=sfn)
    assert sfn.calls[0][1]["taskToken"] == "t0-retry"
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.WAITING_APPROVAL  # b still waits
    decide_approval(EXAMPLE_ID, views[1].approval_id, ApprovalDecisionRequest(decision="deny"),
                    store=store, sfn=sfn)
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.RUNNING


def test_store_transitions_are_conditional(store: TaskStore, security: SecurityManager) -> None:
    [ref] = _task_with_calls(store, [("guarded", {"target": "a"})])
    approvals = ApprovalStore(store)
    sfn = RecordingStepFunctions()
    with pytest.raises(ApprovalNotFoundError):
        decide_approval(EXAMPLE_ID, "apv_nope", ApprovalDecisionRequest(decision="approve"),
                        store=store, sfn=sfn)
    with pytest.raises(ApprovalNotFoundError):
        approvals.decide(EXAMPLE_ID, "apv_nope", ApprovalStatus.APPROVED)
    view = request_approval(ApprovalWait(action="wait", task_token="t", **ref.model_dump()),
                            store=store, security=security, sfn=sfn)
    assert view is not None
    # A task that ended has nothing left to approve: 409, and it stays cancelled.
    assert store.finish_task(EXAMPLE_ID, TaskStatus.CANCELLED, error="cancelled")
    with pytest.raises(ApprovalConflictError, match="already ended as CANCELLED"):
        decide_approval(EXAMPLE_ID, view.approval_id,
                        ApprovalDecisionRequest(decision="approve"), store=store, sfn=sfn)
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.CANCELLED
    approvals.decide(EXAMPLE_ID, view.approval_id, ApprovalStatus.APPROVED)
    assert approvals.resume_task(EXAMPLE_ID) is False
    # Racing deciders: the conditional write lets exactly one win.
    with pytest.raises(ApprovalConflictError, match="already APPROVED"):
        approvals.decide(EXAMPLE_ID, view.approval_id, ApprovalStatus.DENIED)
    # No new approval is requested for a task that is no longer active.
    from agentkit.store import ConflictError

    [other] = _task_with_calls(store, [("guarded", {"target": "z"})], turn=2, create=False)
    with pytest.raises(ConflictError):
        request_approval(ApprovalWait(action="wait", task_token="t", **other.model_dump()),
                         store=store, security=security, sfn=sfn)


def test_an_unanswered_approval_expires(store: TaskStore, security: SecurityManager) -> None:
    [ref] = _task_with_calls(store, [("guarded", {"target": "a"})])
    sfn = RecordingStepFunctions()
    view = request_approval(ApprovalWait(action="wait", task_token="t", **ref.model_dump()),
                            store=store, security=security, sfn=sfn)
    assert view is not None
    result = settle_unapproved(ApprovalSettle(action="settle", error=StepError(
        Error="States.Timeout"), **ref.model_dump()), store=store, security=security)
    assert result is not None and result.content == (
        f"error: tool call denied: approval {view.approval_id} expired: no decision within the "
        "approval timeout")
    assert ApprovalStore(store).get(EXAMPLE_ID, view.approval_id).status == "EXPIRED"
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.RUNNING
    with pytest.raises(ApprovalConflictError, match="already EXPIRED"):
        decide_approval(EXAMPLE_ID, view.approval_id, ApprovalDecisionRequest(decision="approve"),
                        store=store, sfn=sfn)


# --- the handlers, fed their sample events ---------------------------------------------


def test_wait_for_approval_and_approvals_handlers(
    store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITY_POLICY", json.dumps({"approval_required": ["calculator"]}))
    [ref] = _task_with_calls(store, [("calculator", {"expression": "17 * 23"})],
                             tools=("calculator", "current_time"), tenant="tenant-example")
    context = FakeLambdaContext()
    security = SecurityManager(SecuritySettings.from_env().security_policy)
    assert _gate(store, security, [ref]).approvals == [ref]
    wait = load_handler("wait_for_approval")
    wait._sfn = sfn = RecordingStepFunctions()
    waited = wait.lambda_handler(load_event("wait_for_approval.json"), context)
    approval_id = waited["approval_id"]
    call = store.get_message(EXAMPLE_ID, 1, 0).tool_calls[0]
    assert approval_id == security.check(store.require_task(EXAMPLE_ID), call,
                                         turn=1).approval_id
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.WAITING_APPROVAL

    # The approvals function answers the waits through its Step Functions client.
    real_client = aws.client
    monkeypatch.setattr(aws, "client", lambda service: (
        sfn if service == "stepfunctions" else real_client(service)))
    approvals = load_handler("approvals")
    event = load_event("approvals_post.json")
    response = approvals.lambda_handler(event, context)  # the sample's id is not this one
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"] == "not_found"
    event["pathParameters"]["approval_id"] = approval_id
    event["path"] = f"/tasks/{EXAMPLE_ID}/approvals/{approval_id}"
    response = approvals.lambda_handler(event, context)
    assert response["statusCode"] == 200, response["body"]
    body = json.loads(response["body"])
    assert body["status"] == "APPROVED" and body["reason"] == "checked the URL"
    assert "task_token" not in body
    assert [kind for kind, _ in sfn.calls] == ["success"]
    again = approvals.lambda_handler(event, context)
    assert again["statusCode"] == 409 and json.loads(again["body"])["error"] == "conflict"
    # Another tenant cannot even see that the task exists.
    event["requestContext"]["authorizer"]["tenant_id"] = "tenant-other"
    other = approvals.lambda_handler(event, context)
    assert other["statusCode"] == 404
    assert json.loads(other["body"])["message"] == f"task '{EXAMPLE_ID}' not found"
    event["requestContext"]["authorizer"]["tenant_id"] = "tenant-example"
    event["body"] = '{"decision": "maybe"}'
    bad = approvals.lambda_handler(event, context)
    assert bad["statusCode"] == 400 and json.loads(bad["body"])["fields"][0]["field"] == "decision"
    settle = wait.lambda_handler(load_event("approval_not_granted.json"), context)
    assert settle["recorded"] is True  # the approved call's wait "failed": recorded, not run


def test_cancel_closes_pending_approvals_and_answers_their_waits(
    store: TaskStore, security: SecurityManager
) -> None:
    from agentkit.api.tasks import cancel_task

    [ref] = _task_with_calls(store, [("guarded", {"target": "a"})])
    sfn = RecordingStepFunctions()
    view = request_approval(ApprovalWait(action="wait", task_token="wait-token",
                                         **ref.model_dump()), store=store, security=security,
                            sfn=sfn)
    assert view is not None
    released: list[str] = []
    stopped: list[str] = []
    task = store.require_task(EXAMPLE_ID).model_copy(update={"execution_arn": "arn:exec"})
    cancelled = cancel_task(task, store=store, stop_execution=stopped.append,
                            release_wait=released.append)
    assert cancelled.status == TaskStatus.CANCELLED
    assert stopped == ["arn:exec"] and released == ["wait-token"]
    record = ApprovalStore(store).get(EXAMPLE_ID, view.approval_id)
    assert record is not None and record.status == ApprovalStatus.DENIED
    with pytest.raises(ApprovalConflictError):
        decide_approval(EXAMPLE_ID, view.approval_id, ApprovalDecisionRequest(decision="approve"),
                        store=store, sfn=sfn)
