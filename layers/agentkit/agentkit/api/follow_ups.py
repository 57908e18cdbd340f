"""POST /tasks/{task_id}/messages: a follow-up message continues an ended task, with its
whole conversation, as a new run of the same task (agentkit.loop.runs).

Any ended task may be continued: SUCCEEDED (ask more), FAILED (e.g. after an outage: "try
again"), BUDGET_EXCEEDED (the new run has a budget of its own) and CANCELLED (redirect the
agent). While a run is active, or follow-ups wait already, `on_busy` decides: `reject`
(409, nothing stored) or `enqueue` (the message waits; each queued message starts its own
run, in order, when the one before ends). A cancel discards what was queued before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentkit.api.idempotency import IdempotentOperation
from agentkit.api.tasks import require_tenant_task
from agentkit.loop.runs import RunStarter, start_next_run
from agentkit.models.api import FollowUpAccepted, FollowUpRequest, TaskSummary
from agentkit.store import TaskStore


def post_follow_up(
    task_id: str,
    request: FollowUpRequest,
    *,
    store: TaskStore,
    tenant_id: str,
    start_run: RunStarter | None,
) -> FollowUpAccepted:
    """Store the follow-up, then start its run when the task has none active. Raises
    TaskNotFoundError (404, also for another tenant's task) and TaskBusyError (409, with
    on_busy `reject` while a run is active or follow-ups wait)."""
    require_tenant_task(task_id, store=store, tenant_id=tenant_id)
    _, record = store.add_follow_up(task_id, request.content,
                                    when_idle=request.on_busy == "reject")
    start_next_run(task_id, store=store, start_run=start_run)
    return accepted(task_id, record.follow_up, store=store)


def accepted(task_id: str, follow_up: int, *, store: TaskStore) -> FollowUpAccepted:
    """The follow-up as it stands now, with its task."""
    record = store.get_follow_up(task_id, follow_up)
    if record is None:  # written before this was called; never deleted
        raise LookupError(f"task '{task_id}' has no follow-up {follow_up}")
    return FollowUpAccepted(task_id=task_id, follow_up=follow_up, state=record.state,
                            run=record.run, task=TaskSummary.of(store.require_task(task_id)))


class IdempotentFollowUp:
    """A follow-up posted once per (tenant, task, Idempotency-Key) for 24 h: a retry with
    the same body answers the same message (not a second one, not a second run)."""

    def __init__(
        self,
        post: Callable[[str, FollowUpRequest, str], FollowUpAccepted],
        *,
        table_name: str,
        client: Any | None = None,
    ) -> None:
        def operation(record: dict[str, Any], request: FollowUpRequest) -> dict[str, Any]:
            answer: FollowUpAccepted = post(record["scope"], request, record["tenant_id"])
            return {"follow_up": answer.follow_up}

        self._operation = IdempotentOperation(
            operation, table_name=table_name, client=client, key_prefix="opspawn-follow-up",
        )

    def __call__(self, task_id: str, request: FollowUpRequest, *, tenant_id: str,
                 key: str, lambda_context: Any | None = None) -> int:
        """The number of the follow-up this (tenant, task, key) stored, storing it now if
        the key is new."""
        body = request.model_dump(mode="json")
        answer = self._operation(request, tenant_id=tenant_id, key=key, body=body,
                                 scope=task_id, lambda_context=lambda_context)
        return int(answer["follow_up"])
