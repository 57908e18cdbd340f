"""The timeline's waterfall fields: each event's `started_at` (stored or derived from `at`
and `duration_ms`, for events stored before it existed) and the admission event."""

from __future__ import annotations

from datetime import UTC, datetime

from agentkit.admission import admission_event
from agentkit.models.domain import Task, TaskEvent


def test_started_at_is_at_less_the_duration() -> None:
    event = TaskEvent(kind="tool_call", name="calculator", at="2026-11-24T00:00:02.000Z",
                      duration_ms=1500)
    assert event.started_at == "2026-11-24T00:00:00.500Z"


def test_an_event_stored_without_started_at_reads_with_it() -> None:
    stored = '{"kind": "model_call", "name": "scripted", "at": "2026-11-24T00:00:01.000Z", ' \
             '"duration_ms": 12}'
    assert TaskEvent.model_validate_json(stored).started_at == "2026-11-24T00:00:00.988Z"
    kept = TaskEvent(kind="wait", name="openai", at="2026-11-24T00:00:01.000Z",
                     started_at="2026-11-24T00:00:00.000Z")
    assert kept.started_at == "2026-11-24T00:00:00.000Z"  # a stored value is kept


def test_the_admission_event_spans_submission_to_start() -> None:
    task = Task(task_id="t-1", goal="g", model="scripted", max_turns=3,
                created_at="2026-11-24T00:00:00.000Z")
    event = admission_event(task, now=datetime(2026, 11, 24, 0, 0, 4, 250_000, tzinfo=UTC))
    assert (event.kind, event.name, event.duration_ms) == ("admission", "started", 4250)
    assert event.started_at == "2026-11-24T00:00:00.000Z"
