"""RunTools state's worker: one SQS message per turn (its calls and the wait's task token);
runs the calls and answers the waiting state machine (agentkit.loop.run_tools).

A record that fails is reported as a batch item failure (the event source mapping has
ReportBatchItemFailures): SQS redelivers that turn alone and, after maxReceiveCount, moves
it to the DLQ; the other turns of the batch, whose tools already ran, are not run again.
Written out here rather than with Powertools' batch utility: that package imports asyncio
and every stream event class, about 110 ms of CPU on each cold start of this function
(measured, bench/cold_start.py), a quarter of its budget, for a ten-line loop.
"""

from __future__ import annotations

from agentkit import startup

startup.begin()  # no garbage collection while the modules below load (agentkit.startup)

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentkit import aws
from agentkit.config import load
from agentkit.config.tools import RunToolsSettings
from agentkit.loop.run_tools import handle_run_tools
from agentkit.memory.long_term import memory_provider
from agentkit.models.payloads import RunToolsMessage
from agentkit.observability.tracing import traced
from agentkit.security import SecurityManager
from agentkit.store import TaskStore
from agentkit.store.approvals import ApprovalStore
from agentkit.tools import default_registry

logger = Logger()
_config = load(RunToolsSettings)  # a bad policy or server list fails the cold start
_store = TaskStore(_config.table_name, artifacts_bucket=_config.artifacts_bucket)
_approvals = ApprovalStore(_store)
_registry = default_registry(
    _config.mcp_servers, policy=_config.security_policy, secret_sources=_config.secret_sources,
    memory=_config.memory_enabled,
)
_memory = memory_provider(_config, _config.table_name)
_security = SecurityManager(_config.security_policy)
_sfn = aws.client("stepfunctions")
# Matches the queue's redrive maxReceiveCount: on the last delivery we tell the state machine.
_MAX_RECEIVES = _config.tool_max_receives


def handle_record(record: SQSRecord) -> None:
    message = RunToolsMessage.model_validate_json(record.body)
    logger.append_keys(task_id=message.task_id, turn=message.turn)
    results = handle_run_tools(
        message,
        receive_count=int(record.attributes.approximate_receive_count),
        max_receives=_MAX_RECEIVES,
        store=_store,
        registry=_registry,
        security=_security,
        sfn=_sfn,
        approvals=_approvals,
        memory=_memory,
    )
    for result in results:
        logger.info(
            "tool call done",
            extra={"tool": result.name, "call_id": result.call_id, "is_error": result.is_error,
                   "duration_ms": result.duration_ms},
        )


@traced
@logger.inject_lambda_context
@event_source(data_class=SQSEvent)
def lambda_handler(event: SQSEvent, context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    # Every failed record is an item failure, even when the whole batch fails: SQS redrives
    # them one by one to the DLQ instead of the invocation erroring as a whole.
    failures = []
    for record in event.records:
        try:
            handle_record(record)
        except Exception:
            logger.exception("turn failed; SQS delivers it again", extra={
                "message_id": record.message_id,
                "receive_count": record.attributes.approximate_receive_count,
            })
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


startup.ready()
