"""API keys and tenants end to end: through the API Gateway URL, the REQUEST authorizer
(run by the project's LocalStack hook), the authorizer function and DynamoDB.

The stack is deployed with AuthorizerCacheTtlSeconds=0 (tests/e2e/conftest.py), so a revoked
key is refused on the next request; with the default 60 s it would be refused within 60 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agentkit.http.errors import GATEWAY_ERROR_CODES, ErrorBody
from opspawn.client import ApiError, OpspawnClient
from opspawn.offline.paths import REPO_ROOT
from opspawn.offline.stack import StackOutputs

SCRIPTED = {"model": "scripted", "scripted_turns": [{"content": "done"}]}


@pytest.fixture(scope="module")
def raw(offline_stack: StackOutputs) -> Iterator[httpx.Client]:
    """Plain HTTP with no key at all (OpspawnClient would send $OPSPAWN_API_KEY)."""
    assert offline_stack.api_url
    with httpx.Client(base_url=offline_stack.api_url, timeout=30) as client:
        yield client


def _json(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()


def _gateway_error(response: httpx.Response, status: int, code: str) -> str:
    """API Gateway's own refusal; returns its message.

    The body is the template's UNAUTHORIZED / ACCESS_DENIED gateway response, the API's error
    shape (``{"error": "unauthorized"|"forbidden", "message"}``), as on AWS: offline the
    plugin imports the gateway responses from the OpenAPI body and renders them
    (localstack-plugin/opspawn_localstack/gateway_responses.py). API Gateway's
    ``x-amzn-ErrorType`` header names the refusal as well.
    """
    assert response.status_code == status, response.text
    body = _json(response)
    ErrorBody.model_validate(body)
    assert set(body) == {"error", "message"}, body
    assert body["error"] == GATEWAY_ERROR_CODES[code], body
    exception = {"UNAUTHORIZED": "UnauthorizedException", "ACCESS_DENIED": "AccessDeniedException"}
    assert response.headers["x-amzn-errortype"] == exception[code]
    return str(body["message"])


def test_no_key_is_a_json_401(raw: httpx.Client) -> None:
    message = _gateway_error(
        raw.get("/tasks/tsk_01JNOKEY00000000000000000000"), 401, "UNAUTHORIZED"
    )
    assert message == "Unauthorized"
    _gateway_error(raw.post("/tasks", json={"goal": "x", **SCRIPTED}), 401, "UNAUTHORIZED")
    # not a Bearer credential: the authorizer refuses it as no key (its "Unauthorized" → 401)
    basic = raw.get("/tasks/tsk_01J", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    _gateway_error(basic, 401, "UNAUTHORIZED")


def test_an_unknown_route_is_the_default_4xx_in_the_error_shape(raw: httpx.Client) -> None:
    # API Gateway's MISSING_AUTHENTICATION_TOKEN, rendered by the template's DEFAULT_4XX
    response = raw.get("/no-such-route")
    assert response.status_code == 403, response.text
    assert _json(response) == {
        "error": "MISSING_AUTHENTICATION_TOKEN",
        "message": "Missing Authentication Token",
    }
    assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"


def test_x_api_key_alone_is_401_because_authorization_is_the_cache_key(
    raw: httpx.Client, new_api_key: Callable[[str], str]
) -> None:
    # The authorizer function reads x-api-key too, but the template's identity source (the
    # authorizer cache key) is the Authorization header, so API Gateway answers 401 first.
    key = new_api_key("e2e-xapikey")
    _gateway_error(raw.get("/tasks/tsk_01J", headers={"x-api-key": key}), 401, "UNAUTHORIZED")


def test_an_unknown_key_is_403(raw: httpx.Client) -> None:
    for key in ("ops_" + "x" * 43, "not-a-key-at-all"):
        response = raw.get("/tasks/tsk_01J", headers={"Authorization": f"Bearer {key}"})
        assert "not authorized" in _gateway_error(response, 403, "ACCESS_DENIED")


def test_a_revoked_key_is_403(offline_stack: StackOutputs) -> None:
    from opspawn.admin import key_store

    store = key_store(endpoint=offline_stack.endpoint_url, table=offline_stack.outputs["TableName"])
    created = store.create("e2e-revoked")
    assert offline_stack.api_url
    with OpspawnClient(offline_stack.api_url, api_key=created.key) as client:
        with pytest.raises(ApiError) as unknown:
            client.get("tsk_01JREVOKED0000000000000000")
        assert unknown.value.status_code == 404  # authorized: the handler answered
        store.revoke(created.record.key_id)
        with pytest.raises(ApiError) as refused:
            client.get("tsk_01JREVOKED0000000000000000")
    assert refused.value.status_code == 403
    assert refused.value.body["error"] == "forbidden"
    assert "not authorized" in str(refused.value)


def test_two_tenants_are_isolated_on_get(
    offline_stack: StackOutputs, new_api_key: Callable[[str], str]
) -> None:
    assert offline_stack.api_url
    url = offline_stack.api_url
    alice_key, bob_key = new_api_key("e2e-alice"), new_api_key("e2e-bob")
    with OpspawnClient(url, api_key=alice_key) as alice, OpspawnClient(url, api_key=bob_key) as bob:
        task = alice.submit({"goal": "Alice's secret goal", **SCRIPTED})
        assert alice.get(task.task_id).goal == "Alice's secret goal"
        # the task is stored under the key's tenant
        table = offline_stack.client("dynamodb")
        item = table.get_item(
            TableName=offline_stack.outputs["TableName"],
            Key={"pk": {"S": f"TASK#{task.task_id}"}, "sk": {"S": "META"}},
        )["Item"]
        assert item["tenant_id"]["S"] == "e2e-alice"

        theirs = bob.request("GET", f"/tasks/{task.task_id}")
        unknown_id = "tsk_01JNOSUCHTASK000000000000000"
        unknown = bob.request("GET", f"/tasks/{unknown_id}")
    assert theirs.status_code == unknown.status_code == 404
    # byte for byte the same answer as an unknown id (only the id in the message differs)
    assert theirs.json() == {"error": "not_found", "message": f"task '{task.task_id}' not found"}
    assert unknown.json() == {"error": "not_found", "message": f"task '{unknown_id}' not found"}
    assert theirs.headers["content-type"] == unknown.headers["content-type"]
    assert "Alice" not in theirs.text


def _admin(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPSPAWN_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "opspawn.admin", "keys", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_admin_command_against_the_offline_stack(
    raw: httpx.Client, offline_stack: StackOutputs
) -> None:
    """The real command, with no flags: table and endpoint from the offline deploy."""
    created = _admin("create", "--tenant", "e2e-cli", "--description", "from the CLI")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ops_") and "shown once" in created.stderr
    authorized = {"Authorization": f"Bearer {key}"}
    assert raw.get("/tasks/tsk_01JCLI", headers=authorized).status_code == 404  # let through

    listing = _admin("list", "--tenant", "e2e-cli", "--json")
    assert listing.returncode == 0, listing.stderr
    [record] = [r for r in json.loads(listing.stdout) if r["prefix"] == key[:10]]
    assert record["description"] == "from the CLI" and not record["revoked"]
    assert key not in listing.stdout

    revoked = _admin("revoke", record["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    _gateway_error(raw.get("/tasks/tsk_01JCLI", headers=authorized), 403, "ACCESS_DENIED")


def test_a_tenant_with_many_queued_tasks_never_delays_another_tenants_task(
    offline_stack: StackOutputs, new_api_key: Callable[[str], str]
) -> None:
    """Each tenant has its own running slots (TenantLimits; 10 by default): a burst of one
    tenant queues behind its own slots only (the submit order within a tenant is tested on
    moto, tests/integration/test_tenant_slots.py)."""
    assert offline_stack.api_url
    # Each burst task calls http_fetch, which the e2e policy lets run only after a human's
    # approval: the ten that get slots hold them (waiting for approval) until cancelled, so
    # fifteen stay queued however fast the machine runs the loop.
    held = {"model": "scripted", "tools": ["http_fetch"], "scripted_turns": [
        {"tool_calls": [{"name": "http_fetch", "arguments": {"url": "http://127.0.0.1:9/"}}]},
        {"content": "done"}]}
    sfn: Any = offline_stack.client("stepfunctions")
    executions = offline_stack.outputs["StateMachineArn"].replace(":stateMachine:", ":execution:")

    def started(task_id: str) -> bool:
        """Its execution exists (a task waiting for a slot has none)."""
        try:
            sfn.describe_execution(executionArn=f"{executions}:{task_id}")
        except sfn.exceptions.ExecutionDoesNotExist:
            return False
        return True

    with OpspawnClient(offline_stack.api_url, api_key=new_api_key("burst-tenant")) as burst, \
            OpspawnClient(offline_stack.api_url, api_key=new_api_key("calm-tenant")) as calm:
        burst_tasks = [burst.submit({"goal": f"burst {n}", **held}) for n in range(25)]
        try:
            waiting = [t.task_id for t in burst_tasks if not started(t.task_id)]
            # Past its cap of 10: the rest wait, in submit order.
            assert waiting == [t.task_id for t in burst_tasks[10:]]
            single = calm.submit({"goal": "just one", **SCRIPTED})
            # Started by its own submit: no slot of the other tenant was waited for.
            assert started(single.task_id)
            done = calm.wait(single.task_id, timeout_s=300, poll_s=0.3)
            assert done.status.value == "SUCCEEDED"
            assert not any(started(task_id) for task_id in waiting)  # still queued
        finally:
            for task in reversed(burst_tasks):  # the queued ones first: no slot hand-over
                with contextlib.suppress(ApiError):  # ended already (approval timed out)
                    burst.cancel(task.task_id)
        ended = [burst.wait(t.task_id, timeout_s=120, poll_s=0.5) for t in burst_tasks]
    assert all(v.status.is_terminal for v in ended)
