"""The agent loop end to end on the offline stack, always through the API Gateway URL.

POST /tasks → submit Lambda → DynamoDB + Step Functions → Plan → CallModel → RunTools
(Map → SQS sendMessage.waitForTaskToken → tool Lambda → SendTaskSuccess) → CallModel →
Finalize; then GET /tasks/{id}. The model is the scripted one; everything else is real.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit.models.api import TaskView
from agentkit.models.domain import TaskStatus
from opspawn.client import ApiError, OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import ended_execution

TIMEOUT_S = 120


def _run(api: OpspawnClient, turns: list[dict[str, Any]], **extra: Any) -> TaskView:
    task = api.submit({"goal": "What is 17 * 23 and what time is it in Tokyo?",
                       "model": "scripted", "scripted_turns": turns, **extra})
    # Accepted; how far it got before the answer was sent depends on the machine.
    assert task.status in {TaskStatus.QUEUED, TaskStatus.RUNNING}
    return api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)


def test_two_tool_calls_in_one_turn_then_an_answer(api: OpspawnClient,
                                                   offline_stack: StackOutputs) -> None:
    view = _run(api, [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}},
                        {"name": "current_time", "arguments": {"timezone": "Asia/Tokyo"}}],
         "usage": {"input_tokens": 120, "output_tokens": 30}},
        {"content": "17 * 23 = 391.", "usage": {"input_tokens": 200, "output_tokens": 12,
                                                "cached_tokens": 100}},
    ])
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert view.answer == "17 * 23 = 391."
    roles = [m.role for m in view.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant"]
    calc, clock = view.messages[3], view.messages[4]
    assert (calc.name, calc.content, calc.is_error) == ("calculator", "391", False)
    assert clock.name == "current_time" and not clock.is_error
    assert json.loads(clock.content or "{}")["timezone"] == "Asia/Tokyo"
    assert view.usage.input_tokens == 320 and view.usage.output_tokens == 42
    assert view.usage.cached_tokens == 100 and view.usage.model_calls == 2
    assert view.turn == 2
    # The execution is named after the task and ended well.
    execution = ended_execution(offline_stack, view.task_id)
    assert execution["status"] == "SUCCEEDED"


def test_a_tool_that_raises_reaches_the_model_as_an_error(api: OpspawnClient) -> None:
    view = _run(api, [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1 / 0"}},
                        {"name": "calculator", "arguments": {"expresion": "oops"}}]},
        {"content": "Division by zero is undefined."},
    ])
    assert view.status == TaskStatus.SUCCEEDED, view.error
    raised, invalid = view.messages[3], view.messages[4]
    assert raised.is_error and raised.content == "error: ZeroDivisionError: division by zero"
    assert invalid.is_error and "field 'expression': Field required" in (invalid.content or "")
    assert view.answer == "Division by zero is undefined."


def test_a_step_that_fails_for_good_marks_the_task_failed(api: OpspawnClient) -> None:
    view = _run(api, [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}]},
        {"error": {"kind": "fatal", "message": "the provider rejected the request"}},
    ])
    assert view.status == TaskStatus.FAILED
    assert view.error == "ModelRequestError: scripted error: the provider rejected the request"
    # Nothing already stored is lost: the first turn and its tool result are still there.
    assert [m.role for m in view.messages] == ["system", "user", "assistant", "tool"]
    assert view.messages[3].content == "4"
    assert view.usage.model_calls == 1


def test_max_turns_stops_a_runaway_task(api: OpspawnClient) -> None:
    again = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1 + 1"}}]}
    view = _run(api, [again] * 4, max_turns=2)
    assert view.status == TaskStatus.BUDGET_EXCEEDED
    assert view.error == "max_turns (2) reached before a final answer"
    assert view.turn == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model": "scripted"}, 400, "goal"),
        ({"goal": 17}, 400, "goal"),
        ({"goal": "x", "max_turns": "lots"}, 400, "max_turns"),
        ({"goal": "x", "tools": ["calculator", "rm"]}, 400, "tools"),
        ({"goal": "x" * 70_000}, 413, "body"),
        ("{not json", 400, "body"),
    ],
)
def test_bad_bodies_get_a_json_error_naming_the_field(
    api: OpspawnClient, body: Any, status: int, field: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = api.request("POST", "/tasks", content=content)
    assert response.status_code == status, response.text
    answer = response.json()
    assert field in {item["field"] for item in answer["fields"]}, answer


def test_unknown_task_is_a_json_404(api: OpspawnClient) -> None:
    with pytest.raises(ApiError) as caught:
        api.get("tsk_00000000000000000000000000")
    assert caught.value.status_code == 404
    assert caught.value.body == {"error": "not_found",
                                 "message": "task 'tsk_00000000000000000000000000' not found"}
