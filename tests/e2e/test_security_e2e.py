"""The security manager end to end on the offline stack, through the API Gateway URL.

The stack runs with E2E_SECURITY_POLICY (tests/support/e2e.py): read_file refused (no
path_prefixes), http_fetch only to 127.0.0.1 and only after approval. The scripted model
drives the calls; http_fetch reaches a loopback server in this process, which records every
request it gets, so "nothing was executed" is checked where it matters: no connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.models.api import TaskView
from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from tests.support.e2e import until
from tests.support.loopback import LoopbackServer, Reply

TIMEOUT_S = 120


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    """The page server http_fetch reaches: it records every request it gets."""
    with LoopbackServer(lambda request: Reply(body=f"content of {request.path}")) as server:
        yield server


def _submit(api: OpspawnClient, turns: list[dict[str, Any]]) -> str:
    return api.submit({"goal": "Fetch the page.", "model": "scripted",
                       "scripted_turns": turns}).task_id


def _fetch(url: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "http_fetch", "arguments": {"url": url}}]}


def _pending(view: TaskView) -> list[Any]:
    return [a for a in view.approvals if a.status == "PENDING"]


def _waiting(view: TaskView) -> bool:
    return view.status == TaskStatus.WAITING_APPROVAL and bool(_pending(view))


def _decide(api: OpspawnClient, task_id: str, approval_id: str, decision: str,
            reason: str | None = None) -> tuple[int, dict[str, Any]]:
    body = {"decision": decision, **({"reason": reason} if reason else {})}
    response = api.request("POST", f"/tasks/{task_id}/approvals/{approval_id}",
                           content=json.dumps(body))
    return response.status_code, response.json()


def test_a_tool_outside_the_policy_is_refused_at_submit(api: OpspawnClient) -> None:
    body = {"goal": "x", "tools": ["calculator", "read_file"]}
    response = api.request("POST", "/tasks", content=json.dumps(body))
    assert response.status_code == 400, response.text
    [field] = response.json()["fields"]
    assert field["field"] == "tools"
    assert field["problem"] == ("not allowed by the security policy: 'read_file' needs a "
                                "path_prefixes allow-list in the security policy")


def test_a_call_the_policy_denies_is_never_executed(
    api: OpspawnClient, site: LoopbackServer
) -> None:
    port = site.port
    # `localhost` is the very same server under a name the policy does not allow.
    task_id = _submit(api, [
        {"tool_calls": [
            {"name": "http_fetch", "arguments": {"url": f"http://localhost:{port}/secret"}},
            {"name": "read_file", "arguments": {"path": "/etc/passwd"}},
            {"name": "calculator", "arguments": {"expression": "2 + 2"}},
        ]},
        {"content": "Could not fetch it."},
    ])
    view = api.wait(task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    fetch, read, calc = view.messages[3:6]
    assert fetch.is_error and fetch.content == (
        "error: tool call denied: argument 'url': host 'localhost' is not allowed "
        "(allowed: 127.0.0.1)")
    assert read.is_error and read.content == (
        "error: tool call denied: tool 'read_file' is not allowed for this task")
    assert (calc.content, calc.is_error) == ("4", False)
    assert view.answer == "Could not fetch it." and view.approvals == []
    assert site.paths == []


def test_approve_runs_the_call(
    api: OpspawnClient, site: LoopbackServer
) -> None:
    url = f"http://127.0.0.1:{site.port}/approved-page"
    task_id = _submit(api, [_fetch(url), {"content": "Fetched."}])
    view = until(api, task_id, _waiting)
    [approval] = _pending(view)
    assert approval.tool == "http_fetch" and approval.arguments == {"url": url}
    assert "task_token" not in api.request("GET", f"/tasks/{task_id}").text
    assert site.paths == []  # nothing runs before the decision

    status, body = _decide(api, task_id, approval.approval_id, "approve", "looks fine")
    assert status == 200, body
    assert body["status"] == "APPROVED" and body["args_hash"] == approval.model_dump()["args_hash"]
    view = api.wait(task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    result = view.messages[3]
    assert not result.is_error, result.content
    assert json.loads(result.content or "{}")["text"] == "content of /approved-page"
    assert site.paths == ["/approved-page"]
    assert [a.status for a in view.approvals] == ["APPROVED"]
    # Deciding again is a conflict, whatever the decision.
    status, body = _decide(api, task_id, approval.approval_id, "deny")
    assert status == 409 and body["error"] == "conflict"


def test_deny_skips_the_call_and_the_model_gets_an_error(
    api: OpspawnClient, site: LoopbackServer
) -> None:
    task_id = _submit(api, [_fetch(f"http://127.0.0.1:{site.port}/denied-page"),
                            {"content": "Not allowed, fine."}])
    [approval] = _pending(until(api, task_id, _waiting))
    status, body = _decide(api, task_id, approval.approval_id, "deny", "not that page")
    assert status == 200 and body["status"] == "DENIED"
    view = api.wait(task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    result = view.messages[3]
    assert result.is_error and result.content == (
        f"error: tool call denied: approval {approval.approval_id} was denied: not that page")
    assert view.answer == "Not allowed, fine."
    assert site.paths == []


def test_changed_arguments_need_a_new_approval(
    api: OpspawnClient, site: LoopbackServer
) -> None:
    base = f"http://127.0.0.1:{site.port}"
    task_id = _submit(api, [_fetch(f"{base}/a"), _fetch(f"{base}/b"), {"content": "Both."}])
    [first] = _pending(until(api, task_id, _waiting))
    assert _decide(api, task_id, first.approval_id, "approve")[0] == 200
    # The next turn calls the same tool with another URL: a new approval, and the first
    # approval's id cannot authorize it.
    view = until(api, task_id, lambda v: _waiting(v) and len(v.approvals) == 2)
    [second] = _pending(view)
    assert second.approval_id != first.approval_id
    assert second.arguments == {"url": f"{base}/b"}
    status, body = _decide(api, task_id, first.approval_id, "approve")
    assert status == 409, body
    # A refused decision is refused before anything is written or any task token answered
    # (agentkit/api/approvals.py): the 409 is the signal, nothing of it is still under way.
    # The end of the test shows what ran in total: each page once, after its approval.
    view = api.get(task_id)
    assert view.status == TaskStatus.WAITING_APPROVAL and site.paths == ["/a"]
    assert [a.approval_id for a in _pending(view)] == [second.approval_id]
    unknown = _decide(api, task_id, "apv_" + "0" * 32, "approve")
    assert unknown[0] == 404 and unknown[1]["error"] == "not_found"

    assert _decide(api, task_id, second.approval_id, "approve")[0] == 200
    view = api.wait(task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    assert site.paths == ["/a", "/b"]
    assert [m.is_error for m in view.messages if m.role == "tool"] == [False, False]
