"""POST /tasks: validate against the deployment, store the task, start its execution — or
queue it when its tenant already runs its cap of tasks (agentkit.admission)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentkit.admission import ExecutionStarter, admit, step_functions_starter
from agentkit.api.task_request import check_request
from agentkit.config import Settings
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

__all__ = [
    "ExecutionStarter",
    "IdempotencyConflictError",
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

#: How long a key is remembered (the records' TTL; Powertools also checks it on read).
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60


class IdempotencyConflictError(RuntimeError):
    """The key was used with a different body, or its first request is still running (409)."""


class IdempotentSubmitter:
    """Powertools Idempotency around a submit, keyed on (tenant, Idempotency-Key).

    The record (in the idempotency table, expiring after 24 h) holds the task id the first
    request made and a hash of its body: the same key with the same body answers that task
    again (no second task, no second execution); with a different body it is refused.
    Keys are per tenant, so two tenants never see each other's keys or tasks.
    """

    def __init__(
        self,
        submit: Callable[[SubmitTaskRequest, str], Task],
        *,
        table_name: str,
        client: Any | None = None,
        ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    ) -> None:
        # Imported here, not with the module: the scheduled-task function submits through
        # this module too and never needs Powertools' idempotency package.
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self.config = IdempotencyConfig(
            event_key_jmespath="[tenant_id, key]",
            payload_validation_jmespath="body",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=ttl_seconds,
            hash_function="sha256",
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)

        @idempotent_function(
            data_keyword_argument="record",
            persistence_store=persistence,
            config=self.config,
            key_prefix="opspawn-submit",
        )
        def _submit(*, record: dict[str, Any], request: SubmitTaskRequest) -> dict[str, Any]:
            return {"task_id": submit(request, record["tenant_id"]).task_id}

        self._submit = _submit

    def __call__(self, request: SubmitTaskRequest, *, tenant_id: str, key: str) -> str:
        """The id of the task this (tenant, key) made, making it now if it is new."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        record = {
            "tenant_id": tenant_id,
            "key": key,
            # The parsed body: formatting or key order do not make a request different.
            "body": request.model_dump(mode="json", exclude_none=True),
        }
        try:
            return str(self._submit(record=record, request=request)["task_id"])
        except IdempotencyValidationError:
            raise IdempotencyConflictError(
                f"Idempotency-Key '{key}' was already used with a different request body"
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise IdempotencyConflictError(
                f"a request with Idempotency-Key '{key}' is still in progress; retry shortly"
            ) from None
