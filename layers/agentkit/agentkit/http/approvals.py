"""The approvals function's route: POST /tasks/{task_id}/approvals/{approval_id}
(logic: agentkit.api.approvals)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from agentkit.api.approvals import decide_approval
from agentkit.http.errors import (
    AUTH_REFUSALS,
    BAD_REQUEST,
    TASK_NOT_FOUND,
    error_doc,
    error_response,
)
from agentkit.http.params import ApprovalId, TaskId
from agentkit.http.resolver import current_tenant
from agentkit.models.api import ApprovalDecisionRequest
from agentkit.models.domain import ApprovalView
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalNotFoundError

logger = Logger(child=True)


@dataclass(frozen=True)
class ApprovalRoutes:
    """What the route needs from its function (`sfn`: the Step Functions client whose
    task token answers resume the waiting execution)."""

    store: TaskStore
    sfn: Any


def router(deps: ApprovalRoutes) -> Router:
    routes = Router()

    @routes.exception_handler(ApprovalNotFoundError)
    def _approval_not_found(error: ApprovalNotFoundError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", str(error))

    @routes.exception_handler(ApprovalConflictError)
    def _already_decided(error: ApprovalConflictError) -> Response[dict[str, Any]]:
        return error_response(HTTPStatus.CONFLICT, "conflict", str(error))

    @routes.post(
        "/tasks/<task_id>/approvals/<approval_id>",
        operation_id="decideApproval",
        summary="Approve or deny a tool call that waits for a human",
        tags=["approvals"],
        responses={
            200: {"description": "The decided approval."},
            **BAD_REQUEST,
            **TASK_NOT_FOUND,
            **AUTH_REFUSALS,
            409: error_doc("Already decided, or the arguments' hash does not match."),
        },
    )
    def post_approval(
        task_id: TaskId,
        approval_id: ApprovalId,
        request: ApprovalDecisionRequest,
    ) -> ApprovalView:
        # Scoped by tenant: another tenant's task is not found, like an unknown id.
        view = decide_approval(task_id, approval_id, request, store=deps.store, sfn=deps.sfn,
                               tenant_id=current_tenant(routes))
        logger.info("approval decided", extra={"task_id": task_id, "approval_id": approval_id,
                                               "status": view.status.value})
        return view

    return routes
