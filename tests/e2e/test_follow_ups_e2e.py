"""Follow-ups end to end on the offline stack: POST /tasks/{id}/messages continues an ended
task as a new run (its own execution), the model seeing the whole conversation; while a run
is active a follow-up is refused (409) or queued, and a queued one runs when the active run
ends."""

from __future__ import annotations

from typing import Any

from agentkit.models.domain import TaskStatus
from opspawn.client import ApiError, OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import TIMEOUT_S, until
from tests.support.fake_providers import FakeProviders, Reply


def _execution(offline_stack: StackOutputs, execution_arn: str) -> dict[str, Any]:
    sfn = offline_stack.client("stepfunctions")
    return dict(sfn.describe_execution(executionArn=execution_arn))


def test_a_follow_up_continues_the_conversation_in_a_run_of_its_own(
    api: OpspawnClient, fake_providers: FakeProviders, offline_stack: StackOutputs
) -> None:
    before = len(fake_providers.requests_for("openai"))
    fake_providers.script(
        "openai",
        Reply(text="17 * 23 = 391.", input_tokens=300, output_tokens=10),
        Reply(text="391 * 2 = 782.", input_tokens=500, output_tokens=12),
    )
    task = api.submit({"goal": "What is 17 * 23?", "model": "openai:gpt-4o-mini",
                       "max_turns": 1})
    first = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert first.status == TaskStatus.SUCCEEDED, first.error

    accepted = api.reply(task.task_id, "And twice that?")
    assert (accepted.follow_up, accepted.state, accepted.run) == (1, "started", 2)
    view = api.wait_follow_up(task.task_id, 1, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "391 * 2 = 782."

    # The model got the whole conversation: the earlier answer, then the follow-up.
    second_request = fake_providers.requests_for("openai")[before:][1].body
    said = [(m["role"], m.get("content")) for m in second_request["messages"]]
    assert said[1:] == [("user", "What is 17 * 23?"), ("assistant", "17 * 23 = 391."),
                        ("user", "And twice that?")]
    # Nothing earlier was rewritten: the stored conversation only grew.
    assert [m.role for m in view.messages] == ["system", "user", "assistant", "user",
                                               "assistant"]
    assert view.messages[:3] == first.messages

    # Two runs, each with its own execution and usage; the task's usage adds them up.
    # max_turns 1 applies per run: the second run had a turn of its own.
    assert [(r.run, r.follow_up, r.status) for r in view.runs] == [
        (1, None, TaskStatus.SUCCEEDED), (2, 1, TaskStatus.SUCCEEDED)]
    one, two = view.runs
    assert (one.first_turn, one.last_turn, two.first_turn, two.last_turn) == (0, 1, 1, 2)
    assert one.answer == "17 * 23 = 391." and two.answer == "391 * 2 = 782."
    assert (one.usage.input_tokens, two.usage.input_tokens) == (300, 500)
    assert view.usage.input_tokens == 800 and view.usage.model_calls == 2
    assert one.execution_arn and two.execution_arn and one.execution_arn != two.execution_arn
    assert two.execution_arn.endswith(f":{task.task_id}-run-2")
    for run in view.runs:
        assert run.started_at and run.ended_at
        assert _execution(offline_stack, run.execution_arn or "")["status"] == "SUCCEEDED"


def _waiting_for_approval(api: OpspawnClient, turns: list[dict[str, Any]]) -> str:
    """A task whose run is held active: its first call (http_fetch) waits for a human."""
    task = api.submit({
        "goal": "Fetch the page, then answer.", "model": "scripted",
        "tools": ["http_fetch"], "scripted_turns": turns,
    })
    until(api, task.task_id, lambda v: v.status == TaskStatus.WAITING_APPROVAL
          and any(a.status == "PENDING" for a in v.approvals))
    return task.task_id


FETCH = {"tool_calls": [{"name": "http_fetch",
                         "arguments": {"url": "http://127.0.0.1:9/page"}}]}


def _deny_pending(api: OpspawnClient, task_id: str) -> None:
    pending = [a for a in api.get(task_id).approvals if a.status == "PENDING"]
    assert len(pending) == 1
    api.approve(task_id, pending[0].approval_id, approve=False, reason="not now")


def test_a_follow_up_is_refused_while_a_run_is_active(api: OpspawnClient) -> None:
    task_id = _waiting_for_approval(api, [FETCH, {"content": "Could not fetch it."},
                                          {"content": "Here is the rest."}])
    try:
        api.reply(task_id, "Anything else?")
    except ApiError as error:
        assert error.status_code == 409
        assert error.body["error"] == "task_busy"
        assert "WAITING_APPROVAL" in error.body["message"]
    else:
        raise AssertionError("a follow-up was accepted while the run was active")
    view = api.get(task_id)
    assert view.queued_follow_ups == 0 and len(view.runs) == 1  # nothing was stored

    _deny_pending(api, task_id)
    ended = api.wait(task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert ended.status == TaskStatus.SUCCEEDED and ended.run == 1
    assert ended.answer == "Could not fetch it."


def test_a_queued_follow_up_runs_when_the_active_run_ends(api: OpspawnClient) -> None:
    task_id = _waiting_for_approval(api, [FETCH, {"content": "Could not fetch it."},
                                          {"content": "Queued answer."}])
    accepted = api.reply(task_id, "Then summarise what happened.", on_busy="enqueue",
                         idempotency_key=f"{task_id}-queued")
    assert (accepted.state, accepted.run) == ("queued", None)
    assert accepted.task.status == TaskStatus.WAITING_APPROVAL
    # A retry with the same Idempotency-Key answers the same message: not a second one.
    again = api.reply(task_id, "Then summarise what happened.", on_busy="enqueue",
                      idempotency_key=f"{task_id}-queued")
    assert again.follow_up == accepted.follow_up
    assert api.get(task_id).queued_follow_ups == 1

    _deny_pending(api, task_id)
    view = api.wait_follow_up(task_id, accepted.follow_up, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "Queued answer."
    assert [(r.run, r.follow_up, r.status, r.answer) for r in view.runs] == [
        (1, None, TaskStatus.SUCCEEDED, "Could not fetch it."),
        (2, 1, TaskStatus.SUCCEEDED, "Queued answer.")]
    assert view.queued_follow_ups == 0
    assert [m.role for m in view.messages][-3:] == ["assistant", "user", "assistant"]
    assert view.messages[-2].content == "Then summarise what happened."
