"""The path, query and header parameters of the API's routes, with their OpenAPI text."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from agentkit.models.domain import TaskStatus

#: What an Idempotency-Key may be (a UUID, an order id, ...); anything else is a 400.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:@=+/-]{1,255}$"

TaskId = Annotated[str, Path(min_length=1, max_length=64, description="The task's id.")]
ApprovalId = Annotated[str, Path(min_length=1, max_length=64)]
ScheduleId = Annotated[str, Path(description="The schedule's id.")]
StatusFilter = Annotated[
    TaskStatus | None,
    Query(
        description=(
            "Only tasks with this status. The filter applies after a page is read, so a "
            "filtered page may hold fewer than `limit` tasks, or none, while `next_cursor` "
            "is set: follow `next_cursor` until it is null."
        )
    ),
]
ParentIdFilter = Annotated[
    str | None,
    Query(
        min_length=1, max_length=64,
        description=(
            "Only the sub-tasks of this task (those its `delegate` calls started), newest "
            "first, all on one page; none when it is not one of yours."
        ),
    ),
]
Limit = Annotated[
    int, Query(ge=1, le=100, description="Tasks read per page (1-100): at most this many.")
]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page."),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "Optional. The same key with the same body within 24 h answers the task the "
            "first request made (no second task); with a different body: 409."
        ),
    ),
]
FollowUpIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "Optional. The same key with the same body within 24 h, for the same task, "
            "answers the message the first request stored (no second message, no second "
            "run); with a different body: 409."
        ),
    ),
]
