"""Errors the logic raises for callers to shape (HTTP, Step Functions)."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, naming the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
