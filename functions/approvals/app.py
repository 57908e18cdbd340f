"""POST /tasks/{task_id}/approvals/{approval_id}: approve or deny a call that waits."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.api import create_resolver, current_tenant, error_response, resolve
from agentkit.config import settings
from agentkit.models import ApprovalDecisionRequest, ApprovalView
from agentkit.openapi import ApprovalId, TaskId, route_doc
from agentkit.steps.approve import decide_approval
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalConflictError, ApprovalNotFoundError

logger = Logger()
app = create_resolver()
_store = TaskStore(settings().table_name)
_sfn = boto3.client("stepfunctions")


@app.exception_handler(ApprovalNotFoundError)
def _approval_not_found(error: ApprovalNotFoundError) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.NOT_FOUND, "not_found", str(error))


@app.exception_handler(ApprovalConflictError)
def _already_decided(error: ApprovalConflictError) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.CONFLICT, "conflict", str(error))


@app.post(
    "/tasks/<task_id>/approvals/<approval_id>",
    **route_doc("POST", "/tasks/<task_id>/approvals/<approval_id>"),
)
def post_approval(
    task_id: TaskId,
    approval_id: ApprovalId,
    request: ApprovalDecisionRequest,
) -> ApprovalView:
    # Scoped by tenant: another tenant's task is not found, like an unknown id.
    view = decide_approval(task_id, approval_id, request, store=_store, sfn=_sfn,
                           tenant_id=current_tenant(app))
    logger.info("approval decided", extra={"task_id": task_id, "approval_id": approval_id,
                                           "status": view.status.value})
    return view


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
