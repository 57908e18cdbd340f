"""A task's life around the loop, end to end through the API Gateway URL: list (newest
first, cursor, status filter), the events timeline, cancel (mid-run and after the end),
idempotent submit, tenant isolation, and the public OpenAPI document.

A task that should stay running calls http_fetch: the e2e security policy
(E2E_SECURITY_POLICY in tests/support/e2e.py) makes every such call wait for approval, so the
task sits in WAITING_APPROVAL until it is decided or cancelled.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agentkit.models.api import TaskView
from agentkit.models.domain import TaskStatus
from opspawn.client import ApiError, OpspawnClient
from opspawn.offline.paths import REPO_ROOT
from opspawn.offline.stack import StackOutputs
from tests.support.e2e import ended_execution, until

TIMEOUT_S = 120
#: Never fetched: the call waits for an approval that comes only after the cancel.
WAITING_URL = "http://127.0.0.1:9/never-fetched"


@pytest.fixture(scope="module")
def client_for(
    offline_stack: StackOutputs, new_api_key: Callable[[str], str]
) -> Iterator[Callable[[str], OpspawnClient]]:
    """`client_for(tenant)`: a client with a fresh key for that tenant (a tenant of its own
    per test keeps the lists exact whatever else runs on the stack)."""
    assert offline_stack.api_url
    clients: list[OpspawnClient] = []

    def make(tenant: str) -> OpspawnClient:
        client = OpspawnClient(str(offline_stack.api_url), api_key=new_api_key(tenant))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _tenant(name: str) -> str:
    return f"e2e-{name}-{uuid.uuid4().hex[:8]}"


def _answer(goal: str) -> dict[str, Any]:
    return {"goal": goal, "model": "scripted", "scripted_turns": [{"content": f"done: {goal}"}]}


def _waiting(goal: str = "Fetch the page, then answer.") -> dict[str, Any]:
    return {
        "goal": goal,
        "model": "scripted",
        "scripted_turns": [
            {"tool_calls": [{"name": "http_fetch", "arguments": {"url": WAITING_URL}}],
             "usage": {"input_tokens": 90, "output_tokens": 9}},
            {"content": "Fetched."},
        ],
    }


def _is_waiting(view: TaskView) -> bool:
    return view.status == TaskStatus.WAITING_APPROVAL and bool(view.approvals)


def _execution(offline_stack: StackOutputs, task_id: str) -> dict[str, Any]:
    arn = offline_stack.outputs["StateMachineArn"].replace(":stateMachine:", ":execution:")
    sfn = offline_stack.client("stepfunctions")
    return dict(sfn.describe_execution(executionArn=f"{arn}:{task_id}"))


def _assert_stopped(offline_stack: StackOutputs, task_id: str) -> None:
    """The execution ended by the cancel's StopExecution, nothing after the wait ran.

    On AWS StopExecution ends it at once: ABORTED. LocalStack 4.8.1 applies a stop only once
    a pending callback wait (here the approval's task token, which the cancel answers with
    SendTaskFailure) returns: it then ends the Map iteration and the execution FAILED
    (States.Runtime or the wait's TaskCancelled) instead of ABORTED. Either way no state
    after the wait was entered.
    """
    execution = ended_execution(offline_stack, task_id)
    sfn = offline_stack.client("stepfunctions")
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    types = [event["type"] for event in history]
    if execution["status"] != "ABORTED":  # LocalStack's variant, see above
        assert execution["status"] == "FAILED", execution
        assert execution.get("error") in {"States.Runtime", "TaskCancelled"}, execution
        assert "MapIterationAborted" in types or "MapIterationFailed" in types, types[-6:]
    waited = max(i for i, event in enumerate(history)
                 if event.get("stateEnteredEventDetails", {}).get("name") == "WaitForApproval")
    assert not [e for e in history[waited + 1:] if e["type"].endswith("StateEntered")]


def _error(call: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_list_is_newest_first_with_cursor_and_status_filter(
    client_for: Callable[[str], OpspawnClient],
) -> None:
    api = client_for(_tenant("list"))
    done = []
    for i in range(3):
        task = api.submit(_answer(f"task {i}"))
        done.append(task.task_id)
        api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    waiting = api.submit(_waiting()).task_id
    until(api, waiting, _is_waiting)

    pages = []
    cursor: str | None = None
    while True:
        page = api.list_tasks(limit=2, cursor=cursor)
        pages.append([item.task_id for item in page.items])
        cursor = page.next_cursor
        if not cursor:
            break
    listed = [task_id for page in pages for task_id in page]
    assert listed == [waiting, *reversed(done)]
    assert len(pages) >= 2 and all(len(page) <= 2 for page in pages)
    assert [t.task_id for t in api.iter_tasks(limit=3)] == listed

    running = api.list_tasks(status=TaskStatus.WAITING_APPROVAL)
    assert [item.task_id for item in running.items] == [waiting]
    assert running.items[0].status == TaskStatus.WAITING_APPROVAL
    succeeded = [t.task_id for t in api.iter_tasks(status=TaskStatus.SUCCEEDED)]
    assert succeeded == list(reversed(done))

    for params, field in (({"status": "SLEEPING"}, "status"), ({"limit": 0}, "limit"),
                          ({"limit": 101}, "limit"), ({"cursor": "bm9wZQ=="}, "cursor")):
        response = api.request("GET", "/tasks", params=params)
        assert response.status_code == 400, (params, response.text)
        assert [f["field"] for f in response.json()["fields"]] == [field]
    api.cancel(waiting)


def test_events_timeline_of_a_finished_task(client_for: Callable[[str], OpspawnClient]) -> None:
    api = client_for(_tenant("events"))
    task = api.submit({
        "goal": "What is 6 * 7?", "model": "scripted",
        "scripted_turns": [
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}],
             "usage": {"input_tokens": 100, "output_tokens": 20}},
            {"content": "42", "usage": {"input_tokens": 150, "output_tokens": 5}},
        ],
    })
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error

    # Admitted (its execution started: the waterfall's first bar, since submission), then
    # the e2e stack has long-term memory: Plan recalled (nothing, for a new tenant).
    admitted, recalled, *events = api.events(task.task_id)
    assert (admitted.kind, admitted.name) == ("admission", "started")
    assert admitted.started_at is not None and admitted.started_at <= admitted.at
    assert (recalled.kind, recalled.turn, recalled.error) == ("memory_recalled", 0, None)
    assert recalled.detail["memories"] == []
    assert [(e.kind, e.turn, e.name) for e in events] == [
        ("model_call", 1, "scripted"),
        ("tool_call", 1, "calculator"),
        ("model_call", 2, "scripted"),
        ("status", 0, "SUCCEEDED"),
    ]
    first, tool, second, _ = events
    assert first.usage and (first.usage.input_tokens, first.usage.output_tokens) == (100, 20)
    assert second.usage and (second.usage.input_tokens, second.usage.output_tokens) == (150, 5)
    assert first.detail["tool_calls"] == 1 and second.detail["finish_reason"] == "stop"
    assert tool.call_id and tool.error is None
    assert all(e.duration_ms >= 0 for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_cancel_mid_run_keeps_the_work_and_an_approval_cannot_resurrect_it(
    client_for: Callable[[str], OpspawnClient], offline_stack: StackOutputs
) -> None:
    api = client_for(_tenant("cancel"))
    task_id = api.submit(_waiting()).task_id
    waiting = until(api, task_id, _is_waiting)
    [approval] = waiting.approvals
    assert _execution(offline_stack, task_id)["status"] == "RUNNING"

    cancelled = api.cancel(task_id)
    assert cancelled.status == TaskStatus.CANCELLED
    assert cancelled.usage.input_tokens == 90 and cancelled.usage.model_calls == 1

    view = api.get(task_id)
    assert view.status == TaskStatus.CANCELLED and view.error == "cancelled by the caller"
    assert [m.role for m in view.messages] == ["system", "user", "assistant"]
    assert view.messages[2].tool_calls[0].name == "http_fetch"
    assert view.usage == cancelled.usage

    # The cancel closed the waiting call: a late approval is refused, nothing runs.
    late = api.request("POST", f"/tasks/{task_id}/approvals/{approval.approval_id}",
                       content=json.dumps({"decision": "approve"}))
    assert late.status_code == 409, late.text
    # The execution has ended and entered no state after the wait: nothing more can run,
    # so what is read now is final.
    _assert_stopped(offline_stack, task_id)
    after = api.get(task_id)
    assert after.status == TaskStatus.CANCELLED
    assert [m.role for m in after.messages] == ["system", "user", "assistant"]
    assert after.usage == cancelled.usage
    kinds = [(e.kind, e.name) for e in api.events(task_id)]
    assert ("status", "CANCELLED") in kinds and ("tool_call", "http_fetch") not in kinds
    assert [k for k in kinds if k[0] == "model_call"] == [("model_call", "scripted")]

    again = _error(lambda: api.cancel(task_id))
    assert again.status_code == 409 and again.body["error"] == "conflict"


def test_cancel_after_the_end_is_409(client_for: Callable[[str], OpspawnClient]) -> None:
    api = client_for(_tenant("ended"))
    task_id = api.submit(_answer("quick")).task_id
    assert api.wait(task_id, timeout_s=TIMEOUT_S, poll_s=0.3).status == TaskStatus.SUCCEEDED
    error = _error(lambda: api.cancel(task_id))
    assert error.status_code == 409
    assert error.body == {"error": "conflict",
                          "message": f"task '{task_id}' already ended as SUCCEEDED"}
    assert api.get(task_id).status == TaskStatus.SUCCEEDED
    assert _error(lambda: api.cancel("tsk_01JNOSUCHTASK000000000000000")).status_code == 404


def test_idempotent_submit(client_for: Callable[[str], OpspawnClient]) -> None:
    api = client_for(_tenant("idem"))
    key = f"retry-{uuid.uuid4()}"
    first = api.submit(_answer("only once"), idempotency_key=key)
    again = api.submit(_answer("only once"), idempotency_key=key)
    assert again.task_id == first.task_id
    conflict = _error(lambda: api.submit(_answer("something else"), idempotency_key=key))
    assert conflict.status_code == 409 and conflict.body["error"] == "conflict"
    assert key in conflict.body["message"]
    api.wait(first.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    # the retry after the end answers the same task as it is now
    assert api.submit(_answer("only once"), idempotency_key=key).status == TaskStatus.SUCCEEDED
    assert [t.task_id for t in api.iter_tasks()] == [first.task_id]  # one task, one execution
    # another tenant's same key is its own
    other = client_for(_tenant("idem-other"))
    assert other.submit(_answer("only once"), idempotency_key=key).task_id != first.task_id


def test_two_tenants_are_isolated_on_list_events_and_cancel(
    client_for: Callable[[str], OpspawnClient],
) -> None:
    alice, bob = client_for(_tenant("alice")), client_for(_tenant("bob"))
    task_id = alice.submit(_waiting("Alice's private goal")).task_id
    until(alice, task_id, _is_waiting)
    bobs = bob.submit(_answer("Bob's goal")).task_id

    assert [t.task_id for t in bob.iter_tasks()] == [bobs]
    assert [t.task_id for t in alice.iter_tasks()] == [task_id]
    unknown_id = "tsk_01JNOSUCHTASK000000000000000"
    for path in (f"/tasks/{task_id}/cancel", f"/tasks/{task_id}/events"):
        method = "POST" if path.endswith("cancel") else "GET"
        theirs = bob.request(method, path)
        unknown = bob.request(method, path.replace(task_id, unknown_id))
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json() == {"error": "not_found", "message": f"task '{task_id}' not found"}
        assert "Alice" not in theirs.text
    assert alice.get(task_id).status == TaskStatus.WAITING_APPROVAL  # Bob changed nothing
    assert alice.cancel(task_id).status == TaskStatus.CANCELLED


def test_the_openapi_document_is_public(offline_stack: StackOutputs) -> None:
    assert offline_stack.api_url
    with httpx.Client(base_url=offline_stack.api_url, timeout=30) as raw:
        response = raw.get("/openapi.json")  # no key at all
        assert raw.get("/tasks").status_code == 401  # while the rest needs one
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
