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
        self._inner = submit
        self._table_name = table_name
        self._client = client
        self._ttl_seconds = ttl_seconds
        self._submit: Callable[..., dict[str, Any]] | None = None
        self._config: Any = None  # Powertools' IdempotencyConfig, with the wrapper

    def _idempotent_submit(self) -> Callable[..., dict[str, Any]]:
        """Powertools' idempotency wrapper, built on the first keyed request: its package
        (and boto3, which it imports) is then no part of the function's cold start, and a
        request without a key never pays for it."""
        if self._submit is not None:
            return self._submit
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self._config = config = IdempotencyConfig(
            event_key_jmespath="[tenant_id, key]",
            payload_validation_jmespath="body",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self._ttl_seconds,
            hash_function="sha256",
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=self._table_name, boto3_client=self._client
        )
        submit = self._inner

        @idempotent_function(
            data_keyword_argument="record",
            persistence_store=persistence,
            config=config,
            key_prefix="opspawn-submit",
        )
        def _submit(*, record: dict[str, Any], request: SubmitTaskRequest) -> dict[str, Any]:
            return {"task_id": submit(request, record["tenant_id"]).task_id}

        self._submit = _submit
        return _submit

    def __call__(
        self,
        request: SubmitTaskRequest,
        *,
        tenant_id: str,
        key: str,
        lambda_context: Any | None = None,
    ) -> str:
        """The id of the task this (tenant, key) made, making it now if it is new. With the
        Lambda context, an in-progress record expires with this invocation's remaining time
        (a retry after a timeout is not refused for the whole TTL)."""
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
        submit = self._idempotent_submit()
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)
        try:
            return str(submit(record=record, request=request)["task_id"])
        except IdempotencyValidationError:
            raise IdempotencyConflictError(
                f"Idempotency-Key '{key}' was already used with a different request body"
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise IdempotencyConflictError(
                f"a request with Idempotency-Key '{key}' is still in progress; retry shortly"
            ) from None
