"""WaitForChildren / ChildrenNotFinished states: a turn's `delegate` calls become sub-tasks
(their own executions), and the task waits for them on a task token
(agentkit.loop.children)."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from agentkit import aws
from agentkit.admission import step_functions_starter
from agentkit.config import WaitForChildrenSettings, load
from agentkit.loop.children import (
    settle_children,
    sfn_releaser,
    sfn_resumer,
    sfn_stopper,
    start_children,
)
from agentkit.models.payloads import ChildrenSettle, ChildrenWait, WaitForChildrenEvent
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.tools.delegate import DelegationLimits

logger = Logger()
_config = load(WaitForChildrenSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_security = SecurityManager(_config.security_policy)
_limits = DelegationLimits(max_depth=_config.max_delegation_depth,
                           max_fanout=_config.max_delegation_fanout)
_sfn = aws.client("stepfunctions")
_event: TypeAdapter[ChildrenWait | ChildrenSettle] = TypeAdapter(WaitForChildrenEvent)


@traced
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = _event.validate_python(event)
    logger.append_keys(task_id=request.task_id, turn=request.turn, action=request.action)
    if isinstance(request, ChildrenSettle):
        record = settle_children(request, store=_store, stop_execution=sfn_stopper(_sfn),
                                 release_wait=sfn_releaser(_sfn))
        logger.info("sub-tasks settled", extra={"error": request.error.error})
        return {"children": list(record.children) if record else []}
    arn = request.state_machine_arn or _config.state_machine_arn
    record = start_children(
        request, store=_store, security=_security, resume=sfn_resumer(_sfn),
        start_execution=step_functions_starter(_sfn, arn) if arn else None, limits=_limits,
    )
    logger.info("sub-tasks started", extra={"children": list(record.children) if record else []})
    return {"children": list(record.children) if record else []}


startup.ready()
