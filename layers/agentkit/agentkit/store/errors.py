"""Errors every repository of the store may raise."""

from __future__ import annotations


class TaskNotFoundError(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task '{task_id}' not found")
        self.task_id = task_id


class ConflictError(RuntimeError):
    """A conditional write lost: the task moved on (finished, cancelled, another turn)."""


class InvalidCursorError(ValueError):
    """A list cursor that this API did not hand out (or another tenant's)."""


class TaskBusyError(ConflictError):
    """A follow-up was refused: the task has a run active or follow-ups already queued."""
