"""Python API of the offline stack, used by tests and the demo.

from opspawn.offline import stack
stack.ensure_installed()
stack.start()
outputs = stack.deploy("template.yaml", {"ScriptedModelEnabled": "true"})
stack.boto3_client("dynamodb").list_tables()
stack.stop()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opspawn.offline.clients import LocalStackSession, StackOutputs, client_at, load_outputs
from opspawn.offline.deploy import deploy as _deploy
from opspawn.offline.install import ensure_installed
from opspawn.offline.paths import endpoint_url
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

def boto3_client(
    service: str,
    *,
    port: int | None = None,
    endpoint: str | None = None,
    read_timeout: float = 70.0,
) -> Any:
    """A boto3 client for the offline stack (our running LocalStack's port by default)."""
    return client_at(service, endpoint or endpoint_url(port or running_port()),
                     read_timeout=read_timeout)


def deploy(
    template_path: str | Path | None = None,
    parameters: dict[str, str] | None = None,
    stack_name: str | None = None,
) -> StackOutputs:
    """Deploy a SAM template onto the running offline stack (see ``deploy.deploy``)."""
    return _deploy(template_path, parameters, stack_name)
