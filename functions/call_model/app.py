"""CallModel state: one model turn of a task, its tool calls decided (gate_tools)."""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit.config import load
from agentkit.config.model_calls import CallModelSettings
from agentkit.event_parser import event_parser
from agentkit.llm import BaseLLMClient, ModelError, get_client, parse_model
from agentkit.llm.router import ModelRouter
from agentkit.loop.call_model import call_model
from agentkit.memory.context import DEFAULT_REPLY_RESERVE
from agentkit.models.domain import Task
from agentkit.models.payloads import TurnRef
from agentkit.models.scripted import ScriptedTurn
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalStore
from agentkit.store.provider_state import ProviderStateStore

logger = Logger()
metrics = Metrics()
# Read and validated once: a bad value (a policy that does not parse, a broken limit, a
# provider timeout that is not a number) fails the cold start, naming the variable.
_config = load(CallModelSettings)
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_approvals = ApprovalStore(_store)
# The turn's tool calls are decided here (gate_tools).
_security = SecurityManager(_config.security_policy)


# Holds, pacers, rate windows and breakers shared by every instance (same table); limits
# from PROVIDER_LIMITS, tenants' shares of a paced provider from TENANT_LIMITS.
_router = ModelRouter(
    state=ProviderStateStore(_store.client, _config.table_name),
    limits=_config.provider_limits,
    tenant_weight=_config.weight_for,
)
# The reply's room in the context window: Anthropic's client asks for up to
# ANTHROPIC_MAX_TOKENS when a request sets no max_tokens, and its API counts that room.
_reply_reserve = max(DEFAULT_REPLY_RESERVE, _config.providers.anthropic.max_tokens)
# Seconds kept back from the Lambda timeout for storing the reply after retries.
_MARGIN_S = 10.0


# The scripted model's replies are stored beside the task and never change once written:
# read once per task by a warm Lambda, so a scripted turn costs the reads a real one does.
@functools.lru_cache(maxsize=32)
def _script(task_id: str) -> list[ScriptedTurn]:
    return _store.get_script(task_id)


def _client_for(task: Task, model: str) -> BaseLLMClient:
    scripted = parse_model(model)[0] == "scripted" and _config.scripted_model_enabled
    return get_client(
        model,
        providers=_config.providers,
        scripted_turns=_script(task.task_id) if scripted else None,
        scripted_enabled=_config.scripted_model_enabled,
    )


@traced
@logger.inject_lambda_context
@metrics.log_metrics
@event_parser(model=TurnRef)
def lambda_handler(event: TurnRef, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(task_id=event.task_id, turn=event.turn + 1)
    try:
        output = call_model(
            event,
            store=_store,
            client_for=_client_for,
            router=_router,
            security=_security,
            approvals=_approvals,
            context_windows=_config.context_windows,
            reply_reserve=_reply_reserve,
            time_budget_s=max(context.get_remaining_time_in_millis() / 1000 - _MARGIN_S, 1.0),
        )
    except ModelError as error:
        # Messages are scrubbed of keys by the clients; the state machine decides what next.
        logger.warning("model call failed", extra={"error_type": type(error).__name__,
                                                   "error": str(error)})
        raise
    logger.info(
        "model turn done",
        extra={"action": output.action, "tool_calls": len(output.tool_calls),
               "approvals": len(output.approvals), "route": output.route},
    )
    metrics.add_metric(name="ModelTurns", unit=MetricUnit.Count, value=1)
    return output.model_dump()


startup.ready()
