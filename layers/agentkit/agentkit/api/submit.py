"""POST /tasks: validate against the deployment, store the task, start its execution — or
queue it when its tenant already runs its cap of tasks (agentkit.admission)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentkit.admission import ExecutionStarter, admit, step_functions_starter
from agentkit.api.idempotency import IDEMPOTENCY_TTL_SECONDS, IdempotentOperation
from agentkit.api.task_request import check_request
from agentkit.config import Settings
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

__all__ = [
    "ExecutionStarter",
    "IdempotentSubmitter",
    "step_functions_starter",
    "submit_task",
]


def submit_task(
    request: SubmitTaskRequest,
    *,
    store: TaskStore,
    registry: ToolRegistry,
    settings: Settings,
    start_execution: ExecutionStarter,
    tenant_id: str = "default",
    security: SecurityManager | None = None,
) -> Task:
    task = check_request(
        request, registry=registry, settings=settings, tenant_id=tenant_id, security=security
    )
    store.create_task(task, script=request.scripted_turns)
    # Started now if its tenant has a free slot (and no older task waits), else it waits
    # QUEUED with no execution. A start that fails leaves the task FAILED with the reason
    # (the caller can see what happened) and raises.
    admit(task, store=store, max_running=settings.max_running_for(tenant_id),
          start_execution=start_execution)
    return store.require_task(task.task_id)


# --- Idempotency-Key: a retried POST /tasks makes one task, never two.


class IdempotentSubmitter:
    """A submit run once per (tenant, Idempotency-Key) (agentkit.api.idempotency): the
    record holds the id of the task the first request made; the same key with the same body
    answers that task again (no second task, no second execution), with a different body it
    is refused."""

    def __init__(
        self,
        submit: Callable[[SubmitTaskRequest, str], Task],
        *,
        table_name: str,
        client: Any | None = None,
        ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    ) -> None:
        def operation(record: dict[str, Any], request: SubmitTaskRequest) -> dict[str, Any]:
            return {"task_id": submit(request, record["tenant_id"]).task_id}

        # The key is (tenant, key), as before follow-ups shared this code: a key in use
        # across an upgrade keeps answering its task.
        self._operation = IdempotentOperation(
            operation, table_name=table_name, client=client, ttl_seconds=ttl_seconds,
            key_prefix="opspawn-submit", event_key="[tenant_id, key]",
        )

    def __call__(self, request: SubmitTaskRequest, *, tenant_id: str, key: str,
                 lambda_context: Any | None = None) -> str:
        """The id of the task this (tenant, key) made, making it now if it is new."""
        # The parsed body: formatting or key order do not make a request different.
        body = request.model_dump(mode="json", exclude_none=True)
        answer = self._operation(request, tenant_id=tenant_id, key=key, body=body,
                                 lambda_context=lambda_context)
        return str(answer["task_id"])
