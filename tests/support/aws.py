"""AWS-side helpers shared by the suites: the template's tables, handler loading, sample
events, a Lambda context, an atomic DynamoDB client, a recording Step Functions client."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


class _CfnLoader(yaml.SafeLoader):
    """CloudFormation YAML with intrinsic tags in CloudFormation's JSON form:
    {"Ref": ...}, {"Fn::GetAtt": [resource, attribute]}, {"Fn::Sub": ...}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    key = suffix if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            value = value.split(".", 1)
        return {key: value}
    if isinstance(node, yaml.SequenceNode):
        return {key: loader.construct_sequence(node, deep=True)}
    return {key: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)


def create_table_from_template(
    client: Any, table_name: str, *, resource: str = "TasksTable"
) -> None:
    """Create a DynamoDB table exactly as template.yaml declares it (keys and indexes)."""
    props = load_template()["Resources"][resource]["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [
            {k: v for k, v in index.items() if k in {"IndexName", "KeySchema", "Projection"}}
            for index in props["GlobalSecondaryIndexes"]
        ]
    client.create_table(**kwargs)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py fresh, under a unique module name."""
    path = ROOT / "functions" / function / "app.py"
    module_name = f"fn_{function}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/23/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class AtomicRequests:
    """A DynamoDB client that applies each request atomically, as DynamoDB applies a
    conditional write (moto evaluates a condition and writes without a lock, which real
    DynamoDB never does). Requests of different threads still interleave between two
    requests: a reader can be overtaken between its read and its write, the race under
    test. Subclasses hook `before` / `after` each request to steer the interleaving."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def before(self, name: str) -> None:
        """Called before the request `name` (outside the lock)."""

    def after(self, name: str) -> None:
        """Called after it (outside the lock): by default, let another thread in."""
        threading.Event().wait(0.001)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            self.before(name)
            with self._lock:
                result = method(*args, **kwargs)
            self.after(name)
            return result

        return call


class RecordingStepFunctions:
    """A Step Functions client that records the task-token answers it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task_success(self, **kwargs: Any) -> None:
        self.calls.append(("success", kwargs))

    def send_task_failure(self, **kwargs: Any) -> None:
        self.calls.append(("failure", kwargs))
