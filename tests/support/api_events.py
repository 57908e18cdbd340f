"""The API functions' sample events (events/), shaped as a test needs them, and a handler
called with one."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.store import TaskStore
from tests.support.aws import FakeLambdaContext, load_event, load_handler

#: the task the sample events name
EXAMPLE_ID = "tsk_01JEXAMPLE0000000000000000"
#: the tenant the API sample events' authorizer context names
EXAMPLE_TENANT = "tenant-example"


def call_handler(handler: str | ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and JSON body a handler answers (a function name: loaded fresh)."""
    module = load_handler(handler) if isinstance(handler, str) else handler
    response = module.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def submit_event(body: str | None = None, **headers: str) -> dict[str, Any]:
    event = load_event("submit_post_tasks.json")
    if body is not None:
        event["body"] = body
    event["headers"].update(headers)
    return event


def as_tenant(event: dict[str, Any], tenant_id: str | None) -> dict[str, Any]:
    """The event as the API's authorizer would pass it for `tenant_id` (None: no authorizer)."""
    if tenant_id is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = {
            "principalId": f"key_{tenant_id}",
            "integrationLatency": 3,
            "tenant_id": tenant_id,
            "key_id": f"key_{tenant_id}",
        }
    return event


def keyed(event: dict[str, Any], key: str | None) -> dict[str, Any]:
    """The submit event with this Idempotency-Key (None: without one)."""
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Idempotency-Key", None)
        if key is not None:
            headers["Idempotency-Key"] = key if headers is event["headers"] else [key]
    return event


def task_event(name: str, task_id: str, tenant: str = EXAMPLE_TENANT) -> dict[str, Any]:
    """The sample event `name` (a /tasks/{task_id}... route) for another task and tenant."""
    event = as_tenant(load_event(name), tenant)
    event["path"] = event["path"].replace(EXAMPLE_ID, task_id)
    event["pathParameters"] = {"task_id": task_id}
    return event


def seed_example_task(store: TaskStore) -> None:
    """The task the Step Functions sample events refer to, from the submit sample's body."""
    body = SubmitTaskRequest.model_validate_json(load_event("submit_post_tasks.json")["body"])
    store.create_task(
        Task(
            task_id=EXAMPLE_ID,
            tenant_id=EXAMPLE_TENANT,
            goal=body.goal,
            model="scripted",
            tools=["calculator", "current_time"],
            max_turns=5,
        ),
        script=body.scripted_turns,
    )
