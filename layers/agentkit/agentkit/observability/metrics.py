"""CloudWatch metrics in embedded metric format (Powertools): one JSON log line per model
call, per finished task, per breaker opening, per provider wait; CloudWatch Logs turns them
into metrics of the namespace POWERTOOLS_METRICS_NAMESPACE (the template's `Opspawn`).

Dimensions are few and bounded (provider, model, outcome; every metric also without them,
for totals and alarms); the tenant and task are properties of the line (searchable in Logs
Insights), never dimensions: a dimension per tenant would be a metric per tenant, billed.

A metric that cannot be written (no namespace configured, say) is logged and dropped:
observing never fails the work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from agentkit.models.domain import Task

logger = logging.getLogger(__name__)

# Metric names (the dashboard and alarms in template.yaml use these).
MODEL_CALLS = "ModelCalls"
MODEL_ERRORS = "ModelErrors"
MODEL_LATENCY = "ModelLatency"
INPUT_TOKENS = "InputTokens"
OUTPUT_TOKENS = "OutputTokens"
MODEL_COST = "ModelCostUSD"
TASKS_ENDED = "TasksEnded"
TASK_DURATION = "TaskDuration"
TASK_TURNS = "TaskTurns"
TASK_COST = "TaskCostUSD"
BREAKER_OPEN = "ProviderBreakerOpen"
PROVIDER_WAIT = "ProviderWaitSeconds"
TASK_WAITED = "TaskWaitedSeconds"


def model_call(
    *,
    provider: str,
    model: str,
    tenant_id: str,
    latency_ms: float,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float = 0.0,
    finish_reason: str | None = None,
    error_type: str | None = None,
    task_id: str | None = None,
) -> None:
    """One model call: counted, timed, its tokens and cost, or its error."""
    values: dict[str, tuple[MetricUnit, float]] = {
        MODEL_CALLS: (MetricUnit.Count, 1),
        MODEL_LATENCY: (MetricUnit.Milliseconds, round(latency_ms, 1)),
    }
    if error_type is None:
        values[INPUT_TOKENS] = (MetricUnit.Count, input_tokens)
        values[OUTPUT_TOKENS] = (MetricUnit.Count, output_tokens)
        values[MODEL_COST] = (MetricUnit.NoUnit, cost_usd)
    else:
        values[MODEL_ERRORS] = (MetricUnit.Count, 1)
    emit(
        values,
        dimensions={"provider": provider, "model": model},
        rollups=({"provider": provider}, {}),
        properties={"tenant_id": tenant_id, "task_id": task_id,
                    "finish_reason": finish_reason, "error_type": error_type},
    )


def task_ended(
    *,
    outcome: str,
    tenant_id: str,
    task_id: str,
    duration_s: float,
    turns: int,
    cost_usd: float,
) -> None:
    """A task at its end (succeeded, failed, stopped): how long it took, its turns, its cost."""
    emit(
        {
            TASKS_ENDED: (MetricUnit.Count, 1),
            TASK_DURATION: (MetricUnit.Seconds, round(max(duration_s, 0.0), 3)),
            TASK_TURNS: (MetricUnit.Count, turns),
            TASK_COST: (MetricUnit.NoUnit, cost_usd),
        },
        dimensions={"outcome": outcome},
        rollups=({},),
        properties={"tenant_id": tenant_id, "task_id": task_id},
    )


def task_end(task: Task, outcome: str, *, now: datetime | None = None) -> None:
    """`task_ended` for a task record: its duration from submission to now."""
    now = now or datetime.now(UTC)
    try:
        created = datetime.fromisoformat(task.created_at)
    except ValueError:
        created = now
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    task_ended(outcome=outcome, tenant_id=task.tenant_id, task_id=task.task_id,
               duration_s=(now - created).total_seconds(), turns=task.turn,
               cost_usd=task.usage.cost_usd)


def breaker_open(*, provider: str, tenant_id: str, why: str) -> None:
    """A provider's circuit opened, or refused a call while open (the alarm's signal)."""
    emit(
        {BREAKER_OPEN: (MetricUnit.Count, 1)},
        dimensions={"provider": provider},
        rollups=({},),
        properties={"tenant_id": tenant_id, "why": why},
    )


def provider_wait(
    *,
    provider: str,
    reason: str,
    seconds: float,
    waited_seconds: float,
    tenant_id: str,
    task_id: str,
) -> None:
    """A task sent to wait for its providers (rate limit, open breaker, overload): this
    wait, and how long the task has waited in all (the "waiting for long" alarm's signal)."""
    emit(
        {
            PROVIDER_WAIT: (MetricUnit.Seconds, round(seconds, 1)),
            TASK_WAITED: (MetricUnit.Seconds, round(waited_seconds, 1)),
        },
        dimensions={"provider": provider},
        rollups=({},),
        properties={"tenant_id": tenant_id, "task_id": task_id, "reason": reason},
    )


def emit(
    values: Mapping[str, tuple[MetricUnit, float]],
    *,
    dimensions: Mapping[str, str],
    rollups: tuple[Mapping[str, str], ...] = (),
    properties: Mapping[str, Any] | None = None,
) -> None:
    """One EMF line: `values` under `dimensions` (+ the service), and again under each
    rollup (+ the service); `properties` beside them, not dimensions."""
    try:
        metrics = EphemeralMetrics()
        for key, label in dimensions.items():
            metrics.add_dimension(name=key, value=label)
        service = metrics.service or "service_undefined"
        for rollup in rollups:
            metrics.add_dimensions(service=service, **rollup)
        for name, (unit, number) in values.items():
            metrics.add_metric(name=name, unit=unit, value=number)
        for key, value in (properties or {}).items():
            if value is not None:
                metrics.add_metadata(key=key, value=value)
        metrics.flush_metrics(raise_on_empty_metrics=True)
    except Exception:  # observing never fails the work
        logger.warning("metrics %s not written", sorted(values), exc_info=True)
