"""Reaching an offline stack: boto3 clients for an endpoint, and what a deploy produced.

Depends only on `paths`, so the server, the deployer and the stack facade can all use it
(none of them imports another to get a client).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config
from pydantic import BaseModel, Field

from opspawn.offline.paths import REGION, Layout, endpoint_url

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
        return client_at(service, self.endpoint_url)

    def physical_id(self, logical_id: str) -> str:
        return self.resources[logical_id]


class LocalStackSession(BaseModel):
    """A running offline LocalStack, as handed to tests."""

    endpoint_url: str
    port: int
    started_here: bool = False

    def client(self, service: str) -> Any:
        return client_at(service, endpoint_url(self.port))


def client_at(service: str, url: str, *, read_timeout: float = 70.0) -> Any:
    """A boto3 client for the offline stack at `url`."""
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
