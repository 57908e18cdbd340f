"""RunTool workers: consume tool calls from SQS, run them, answer the waiting state machine."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import Field

from agentkit.config import settings
from agentkit.models import ToolCallRef
from agentkit.security import SecurityManager
from agentkit.steps.run_tool import run_tool_call
from agentkit.store import TaskStore
from agentkit.tools import default_registry

logger = Logger()
# Report every failed record (even a whole failed batch) as an item failure: SQS redrives
# them one by one to the DLQ instead of the invocation erroring as a whole.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_store = TaskStore(settings().table_name)
_registry = default_registry()
_security = SecurityManager.from_env()  # a bad policy fails the cold start
_sfn = boto3.client("stepfunctions")
# Matches the queue's redrive maxReceiveCount: on the last delivery we tell the state machine.
_MAX_RECEIVES = int(os.environ.get("TOOL_MAX_RECEIVES", "3"))
# The wait already ended (timeout, cancel): answering it again cannot help.
_GONE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


class ToolMessage(ToolCallRef):
    task_token: str = Field(min_length=1)


def _answer(call: Any, **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in _GONE:
            raise
        logger.warning("state machine no longer waits for this call", extra={"error": str(error)})


def handle_record(record: SQSRecord) -> None:
    message = ToolMessage.model_validate_json(record.body)
    logger.append_keys(task_id=message.task_id, turn=message.turn, call_id=message.call_id)
    try:
        result = run_tool_call(message, store=_store, registry=_registry, security=_security)
    except Exception as error:
        if int(record.attributes.approximate_receive_count) >= _MAX_RECEIVES:
            _answer(
                _sfn.send_task_failure,
                taskToken=message.task_token,
                error="ToolCallFailed",
                cause=f"{type(error).__name__}: {error}"[:1000],
            )
        raise
    logger.info(
        "tool call done",
        extra={"tool": result.name, "is_error": result.is_error, "duration_ms": result.duration_ms},
    )
    output = {
        "call_id": result.call_id,
        "is_error": result.is_error,
        "duration_ms": result.duration_ms,
    }
    _answer(_sfn.send_task_success, taskToken=message.task_token, output=json.dumps(output))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
