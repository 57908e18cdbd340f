"""Plan state: open the conversation for a task."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.config import load
from agentkit.config.tools import PlanSettings
from agentkit.event_parser import event_parser
from agentkit.loop.runs import plan_or_continue
from agentkit.memory.long_term import memory_provider
from agentkit.models.payloads import TaskRef
from agentkit.observability.tracing import traced
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
_config = load(PlanSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_registry = default_registry(
    _config.mcp_servers, policy=_config.security_policy, secret_sources=_config.secret_sources,
    memory=_config.memory_enabled,
)
_memory = memory_provider(_config, _config.table_name)


@traced
@logger.inject_lambda_context
@event_parser(model=TaskRef)
def lambda_handler(event: TaskRef, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(task_id=event.task_id)
    # A follow-up run continues the conversation; the first run plans (plan_task).
    return plan_or_continue(event, store=_store, registry=_registry, memory=_memory,
                            recall_min_score=_config.recall_min_score).model_dump()


startup.ready()
