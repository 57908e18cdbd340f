"""Python API of the offline stack, used by tests and the demo.

from opspawn.offline import stack
stack.ensure_installed()
stack.start()
outputs = stack.deploy("template.yaml", {"ScriptedModelEnabled": "true"})
stack.boto3_client("dynamodb").list_tables()
stack.stop()
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from pydantic import BaseModel, Field

from opspawn.offline.install import ensure_installed
from opspawn.offline.paths import REGION, Layout, endpoint_url
from opspawn.offline.server import is_running, running_port, start, status, stop

__all__ = [
    "LocalStackSession",
    "StackOutputs",
    "boto3_client",
    "deploy",
    "ensure_installed",
    "is_running",
    "load_outputs",
    "start",
    "status",
    "stop",
]

#: LocalStack accepts any credentials; these select its default account 000000000000.
DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class StackOutputs(BaseModel):
    """What a deploy produced: where to reach the stack and its CloudFormation outputs."""

    stack_name: str
    endpoint_url: str
    region: str = REGION
    api_id: str | None = None
    api_stage: str | None = None
    api_url: str | None = Field(
        default=None, description="http://127.0.0.1:PORT/_aws/execute-api/{apiId}/{stage}"
    )
    outputs: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, str] = Field(default_factory=dict, description="logical id -> physical id")
    deploy_seconds: float | None = None

    def client(self, service: str) -> Any:
        return boto3_client(service, endpoint=self.endpoint_url)

    def physical_id(self, logical_id: str) -> str:
        return self.resources[logical_id]


class LocalStackSession(BaseModel):
    """A running offline LocalStack, as handed to tests."""

    endpoint_url: str
    port: int
    started_here: bool = False

    def client(self, service: str) -> Any:
        return boto3_client(service, port=self.port)


def boto3_client(
    service: str,
    *,
    port: int | None = None,
    endpoint: str | None = None,
    read_timeout: float = 70.0,
) -> Any:
    """A boto3 client for the offline stack (our running LocalStack's port by default)."""
    url = endpoint or endpoint_url(port or running_port())
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=url,
        region_name=REGION,
        config=Config(
            read_timeout=read_timeout,
            connect_timeout=5,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
        **DUMMY_CREDENTIALS,
    )


def load_outputs(layout: Layout | None = None) -> StackOutputs | None:
    """The outputs the last deploy saved to ``.offline/outputs.json`` (None if none)."""
    layout = layout or Layout.current()
    try:
        return StackOutputs.model_validate(json.loads(layout.outputs_file.read_text()))
    except (OSError, ValueError):
        return None


def deploy(
    template_path: str | Path | None = None,
    parameters: dict[str, str] | None = None,
    stack_name: str | None = None,
) -> StackOutputs:
    """Deploy a SAM template onto the running offline stack (see ``deploy.deploy``)."""
    from opspawn.offline import deploy as _deploy

    return _deploy.deploy(template_path, parameters, stack_name)
