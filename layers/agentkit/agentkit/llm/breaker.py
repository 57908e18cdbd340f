"""A circuit breaker per provider whose state lives in DynamoDB, shared by every Lambda.

Item `BREAKER#<provider>` / `STATE`:
  state         closed | open | half_open
  failures      retryable failures counted in the current window
  window_start  epoch seconds the window began
  open_until    epoch seconds an open breaker stays open
  probe_at      epoch seconds the half-open probe was claimed

closed → (threshold failures within the window) → open → (cool-down passed; exactly one
caller wins a conditional write and probes) → half_open → success: closed / failure: open.
Every transition is a conditional write, so concurrent instances agree on one outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from agentkit.store.dynamo import from_item, to_attr, to_item


class BreakerPolicy(BaseModel):
    failure_threshold: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


class CircuitBreaker(Protocol):
    def allow(self, provider: str) -> bool: ...

    def record_success(self, provider: str) -> None: ...

    def record_failure(self, provider: str) -> None: ...


class NoBreaker:
    """Always closed (tests, or a deployment that opts out)."""

    def allow(self, provider: str) -> bool:
        return True

    def record_success(self, provider: str) -> None:
        return None

    def record_failure(self, provider: str) -> None:
        return None


def _conditional(call: Callable[..., Any], **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


class DynamoCircuitBreaker:
    def __init__(
        self,
        client: Any,
        table_name: str,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self.policy = policy or BreakerPolicy()
        self._clock = clock

    def state(self, provider: str) -> dict[str, Any]:
        response = self._client.get_item(
            TableName=self._table, Key=self._key(provider), ConsistentRead=True
        )
        return from_item(response.get("Item", {}))

    def allow(self, provider: str) -> bool:
        item = self.state(provider)
        now = self._clock()
        state = item.get("state", "closed")
        if state == "closed":
            return True
        if state == "open" and now < float(item.get("open_until", 0)):
            return False
        if state == "half_open" and now < float(item.get("probe_at", 0)) + self.policy.cooldown_s:
            return False  # another caller is probing
        # Cool-down over (or a probe that never reported back): one caller wins the probe.
        return self._update(
            provider,
            "SET #state = :half, probe_at = :now",
            "#state = :seen AND (attribute_not_exists(probe_at) OR probe_at = :seen_probe)",
            {
                ":half": "half_open",
                ":now": now,
                ":seen": state,
                ":seen_probe": item.get("probe_at", 0),
            },
        )

    def record_success(self, provider: str) -> None:
        self._update(
            provider,
            "SET #state = :closed, failures = :zero, window_start = :now",
            "attribute_exists(#state) AND #state <> :closed",
            {":closed": "closed", ":zero": 0, ":now": self._clock()},
        )

    def record_failure(self, provider: str) -> None:
        now = self._clock()
        policy = self.policy
        if self._update(
            provider,
            "SET #state = :open, open_until = :until, failures = :zero",
            "#state = :half",
            {":open": "open", ":until": now + policy.cooldown_s, ":zero": 0, ":half": "half_open"},
        ):
            return  # the probe failed: open again
        # A new window when there is none or it is stale; else count within it.
        if not self._update(
            provider,
            "SET failures = :one, window_start = :now, #state = if_not_exists(#state, :closed)",
            "attribute_not_exists(window_start) OR window_start < :stale",
            {":one": 1, ":now": now, ":stale": now - policy.window_s, ":closed": "closed"},
        ):
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(provider),
                UpdateExpression="ADD failures :one",
                ExpressionAttributeValues={":one": to_attr(1)},
                ReturnValues="UPDATED_NEW",
            )
            if int(response["Attributes"]["failures"]["N"]) < policy.failure_threshold:
                return
        elif policy.failure_threshold > 1:
            return
        self._update(
            provider,
            "SET #state = :open, open_until = :until",
            "#state = :closed",
            {":open": "open", ":until": now + policy.cooldown_s, ":closed": "closed"},
        )

    def _key(self, provider: str) -> dict[str, Any]:
        return to_item({"pk": f"BREAKER#{provider}", "sk": "STATE"})

    def _update(
        self, provider: str, expression: str, condition: str, values: dict[str, Any]
    ) -> bool:
        return _conditional(
            self._client.update_item,
            TableName=self._table,
            Key=self._key(provider),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={k: to_attr(v) for k, v in values.items()},
        )
