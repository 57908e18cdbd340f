"""Idempotency-Key for the API's POSTs (submit, follow-ups): the operation runs once per
(tenant, scope, key) for 24 h, through Powertools Idempotency on its own table.

The record holds what the first request answered and a hash of its body: the same key with
the same body answers that again (nothing done twice); with a different body, or while the
first request still runs, it is refused (IdempotencyConflictError, 409). Keys are per
tenant, so two tenants never see each other's keys or results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: How long a key is remembered (the records' TTL; Powertools also checks it on read).
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60


class IdempotencyConflictError(RuntimeError):
    """The key was used with a different body, or its first request is still running (409)."""


class IdempotentOperation:
    """`operation(record, request)` run once per (tenant, scope, key): `request` is the
    parsed request, `record` holds `tenant_id`,
    `scope` (e.g. the task a follow-up is for; "" when the operation has none), `key` and
    `body` (the parsed body, compared on a repeat); its answer (a JSON-able dict) is stored
    and answered to every repeat. `event_key`: the record's fields a key is made of."""

    def __init__(
        self,
        operation: Callable[[dict[str, Any], Any], dict[str, Any]],
        *,
        table_name: str,
        key_prefix: str,
        client: Any | None = None,
        ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
        event_key: str = "[tenant_id, scope, key]",
    ) -> None:
        self._operation = operation
        self._table_name = table_name
        self._key_prefix = key_prefix
        self._client = client
        self._ttl_seconds = ttl_seconds
        self._event_key = event_key
        self._config: Any = None
        self._run: Callable[..., dict[str, Any]] | None = None

    def _wrapped(self) -> Callable[..., dict[str, Any]]:
        """Powertools' idempotency wrapper, built on the first keyed request: its package
        (which imports boto3) is then no part of a cold start, and a request without a key
        never pays for it."""
        if self._run is not None:
            return self._run
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self._config = IdempotencyConfig(
            event_key_jmespath=self._event_key,
            payload_validation_jmespath="body",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self._ttl_seconds,
            hash_function="sha256",
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=self._table_name, boto3_client=self._client
        )
        operation = self._operation

        @idempotent_function(
            data_keyword_argument="record",
            persistence_store=persistence,
            config=self._config,
            key_prefix=self._key_prefix,
        )
        def _run(*, record: dict[str, Any], request: Any) -> dict[str, Any]:
            return operation(record, request)

        self._run = _run
        return _run

    def __call__(self, request: Any, *, tenant_id: str, key: str, body: dict[str, Any],
                 scope: str = "", lambda_context: Any | None = None) -> dict[str, Any]:
        """Run the operation once for this (tenant, scope, key). With the Lambda context, a
        record still in progress expires with this invocation's remaining time (a retry
        after a timeout is not refused for the whole TTL)."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        record = {"tenant_id": tenant_id, "scope": scope, "key": key, "body": body}
        run = self._wrapped()
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)
        try:
            return dict(run(record=record, request=request))
        except IdempotencyValidationError:
            raise IdempotencyConflictError(
                f"Idempotency-Key '{key}' was already used with a different request body"
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise IdempotencyConflictError(
                f"a request with Idempotency-Key '{key}' is still in progress; retry shortly"
            ) from None
