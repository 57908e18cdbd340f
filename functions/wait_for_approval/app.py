"""WaitForApproval / ApprovalNotGranted states: a tool call that waits for a human."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from agentkit import aws
from agentkit.config import WaitForApprovalSettings, load
from agentkit.loop.wait_for_approval import request_approval, settle_unapproved
from agentkit.models.payloads import ApprovalSettle, ApprovalWait, WaitForApprovalEvent
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore

logger = Logger()
# A policy that does not parse fails the cold start: never a silently permissive default.
_config = load(WaitForApprovalSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_security = SecurityManager(_config.security_policy)
_sfn = aws.client("stepfunctions")
_event: TypeAdapter[ApprovalWait | ApprovalSettle] = TypeAdapter(WaitForApprovalEvent)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = _event.validate_python(event)
    logger.append_keys(task_id=request.task_id, turn=request.turn, call_id=request.call_id,
                       action=request.action)
    if isinstance(request, ApprovalSettle):
        result = settle_unapproved(request, store=_store, security=_security)
        logger.info("call not approved", extra={"error": request.error.error})
        return {"call_id": request.call_id, "recorded": result is not None}
    view = request_approval(request, store=_store, security=_security, sfn=_sfn)
    logger.info("approval requested", extra={"approval_id": view and view.approval_id})
    return {"approval_id": view.approval_id if view else None}


startup.ready()
