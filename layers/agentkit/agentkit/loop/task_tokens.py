"""Answering a Step Functions callback wait (`.waitForTaskToken`) by its task token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import ClientError

# The wait already ended (timeout, stop, cancel): answering it again cannot help.
GONE_ERRORS = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


class StepFunctionsCallbacks(Protocol):
    """What answering needs of a Step Functions client (boto3's, or a test's recorder)."""

    @property
    def send_task_success(self) -> Callable[..., Any]: ...

    @property
    def send_task_failure(self) -> Callable[..., Any]: ...


def answer(call: Any, **kwargs: Any) -> bool:
    """Answer a task token; False when the wait is already over."""
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in GONE_ERRORS:
            raise
        return False
    return True
