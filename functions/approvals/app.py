"""POST /tasks/{task_id}/approvals/{approval_id} (agentkit.http.approvals): approve or deny
a call that waits."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.config import ApprovalsSettings, load
from agentkit.http import approvals
from agentkit.http.resolver import create_resolver, resolve
from agentkit.models.api import ApprovalDecisionRequest
from agentkit.observability.tracing import traced
from agentkit.store import TaskStore

logger = Logger()
_config = load(ApprovalsSettings)
app = create_resolver(
    approvals.router(
        approvals.ApprovalRoutes(
            store=TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket),
            sfn=aws.client("stepfunctions"),
        )
    )
)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)


startup.ready(ApprovalDecisionRequest)
