"""The opspawn-subprocess Lambda executor on a real LocalStack (no template needed).

Functions run as AWS runs them: Python 3.12, only the runtime's boto3, their own code and
their own layers (the agentkit and MCP layers below are built by their Makefiles, as for
`sam build`), so a package a function does not ship fails to import here as on AWS."""

from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opspawn.offline.layers import build_layer
from opspawn.offline.paths import (
    DEFAULT_PORT,
    LAMBDA_RUNTIME_REQUIREMENTS,
    REPO_ROOT,
    Layout,
    state_dir,
)
from opspawn.offline.server import running_port
from opspawn.offline.stack import LocalStackSession

pytestmark = pytest.mark.e2e

TIMEOUT_S = 3

HANDLER_SOURCE = """
import json, os, sys, time

import boto3


def lambda_handler(event, context):
    action = event.get("action")
    if action == "echo":
        return {"echo": event.get("value"), "n": 42}
    if action == "raise":
        raise ValueError("bad value: " + str(event.get("value")))
    if action == "sleep":
        print("going to sleep", flush=True)
        time.sleep(event.get("seconds", 30))
        return "woke up"
    if action == "print":
        print("stdout line", event["token"])
        print("stderr line", event["token"], file=sys.stderr)
        return "printed"
    if action == "layer":
        import agentkit
        return {"agentkit_file": agentkit.__file__, "sys_path": sys.path[:6]}
    if action == "context":
        return {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "log_group_name": context.log_group_name,
            "env": {k: os.environ.get(k) for k in (
                "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "GREETING",
                "AWS_ACCESS_KEY_ID")},
            "cwd": os.getcwd(),
        }
    if action == "aws":
        queue = boto3.client("sqs").create_queue(QueueName=event["queue"])["QueueUrl"]
        return {"queue_url": queue}
    if action == "pid":
        return os.getpid()
    if action == "runtime":
        import importlib

        import botocore
        found = {}
        for module in event["modules"]:
            try:
                found[module] = importlib.import_module(module).__file__ or "namespace"
            except ImportError as error:
                found[module] = f"{type(error).__name__}: {error}"
        return {
            "version": list(sys.version_info[:2]),
            "boto3": boto3.__version__,
            "botocore": botocore.__version__,
            "boto3_file": boto3.__file__,
            "sys_path": sys.path,
            "flags": {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site},
            "env": sorted(os.environ),
            "modules": found,
        }
    return {"unknown": action}
"""


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _publish_built_layer(lam: Any, logical_id: str, directory: str, suffix: str) -> str:
    """The layer as `sam build` makes it (its Makefile, requirements vendored)."""
    zip_path = build_layer(logical_id, REPO_ROOT / "layers" / directory)
    layer = lam.publish_layer_version(
        LayerName=f"{directory}-test-{suffix}",
        Content={"ZipFile": zip_path.read_bytes()},
        CompatibleRuntimes=["python3.12"],
    )
    return str(layer["LayerVersionArn"])


def _create_function(lam: Any, name: str, layers: list[str]) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip({"app.py": HANDLER_SOURCE})},
        Timeout=TIMEOUT_S,
        MemorySize=256,
        Layers=layers,
        Environment={"Variables": {"GREETING": "hello"}},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


@pytest.fixture(scope="module")
def layers(localstack: LocalStackSession) -> Iterator[dict[str, str]]:
    lam: Any = localstack.client("lambda")
    suffix = uuid.uuid4().hex[:8]
    arns = {
        "agentkit": _publish_built_layer(lam, "AgentKitLayer", "agentkit", suffix),
        "mcp": _publish_built_layer(lam, "McpLayer", "mcp", suffix),
    }
    yield arns
    for arn in arns.values():
        name, version = arn.rsplit(":", 2)[-2:]
        lam.delete_layer_version(LayerName=name, VersionNumber=int(version))


@pytest.fixture(scope="module")
def function(localstack: LocalStackSession, layers: dict[str, str]) -> Iterator[str]:
    lam: Any = localstack.client("lambda")
    name = f"executor-test-{uuid.uuid4().hex[:8]}"
    _create_function(lam, name, [layers["agentkit"]])
    yield name
    lam.delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def function_with_mcp(localstack: LocalStackSession, layers: dict[str, str]) -> Iterator[str]:
    lam: Any = localstack.client("lambda")
    name = f"executor-mcp-{uuid.uuid4().hex[:8]}"
    _create_function(lam, name, [layers["agentkit"], layers["mcp"]])
    yield name
    lam.delete_function(FunctionName=name)


#: in the project venv, so a leak of it into a function would make them importable
DEV_ONLY_MODULES = ["pytest", "moto", "openai", "localstack", "yaml"]


def test_runs_on_the_lambda_runtime_only(localstack: LocalStackSession, function: str) -> None:
    result = invoke(localstack, function, {"action": "runtime", "modules": DEV_ONLY_MODULES})
    assert result["error"] is None, result
    runtime = result["payload"]
    assert runtime["version"] == [3, 12]
    assert runtime["flags"] == {"isolated": 1, "no_site": 1}
    # the runtime's boto3 (pinned runtime-like version), not the project's
    pins = dict(req.split("==") for req in LAMBDA_RUNTIME_REQUIREMENTS)
    assert (runtime["boto3"], runtime["botocore"]) == (pins["boto3"], pins["botocore"])
    assert str(Layout.current().lambda_runtime) in runtime["boto3_file"]
    # code, layers, the standard library, the runtime's packages: no site-packages, no venv
    assert not any(".venv" in entry or Path(entry).name == "site-packages"
                   for entry in runtime["sys_path"] if "/python/" not in entry)
    for module, where in runtime["modules"].items():
        assert where.startswith("ModuleNotFoundError"), f"{module} leaked in from {where}"
    leaked = [k for k in runtime["env"] if k.startswith(("OPSPAWN_", "VIRTUAL_ENV", "PYTHON"))]
    assert leaked == []


def test_a_layer_module_is_importable_only_with_its_layer(
    localstack: LocalStackSession, function: str, function_with_mcp: str
) -> None:
    modules = ["mcp", "pydantic", "aws_lambda_powertools", "agentkit.tools.mcp"]
    without = invoke(localstack, function, {"action": "runtime", "modules": modules})
    with_mcp = invoke(localstack, function_with_mcp, {"action": "runtime", "modules": modules})
    assert without["error"] is None and with_mcp["error"] is None, (without, with_mcp)
    assert without["payload"]["modules"]["mcp"] == "ModuleNotFoundError: No module named 'mcp'"
    assert "/python/mcp/" in with_mcp["payload"]["modules"]["mcp"]
    for payload in (without["payload"], with_mcp["payload"]):
        # the agentkit layer ships its requirements, vendored for python3.12
        assert "/python/pydantic/" in payload["modules"]["pydantic"]
        assert "/python/aws_lambda_powertools/" in payload["modules"]["aws_lambda_powertools"]
        # agentkit's MCP module imports the SDK lazily: importable either way
        assert "/python/agentkit/tools/mcp.py" in payload["modules"]["agentkit.tools.mcp"]


def invoke(localstack: LocalStackSession, name: str, event: dict[str, Any]) -> dict[str, Any]:
    lam: Any = localstack.client("lambda")
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    return {
        "payload": json.loads(response["Payload"].read() or b"null"),
        "error": response.get("FunctionError"),
        "log": base64.b64decode(response.get("LogResult") or b"").decode(errors="replace"),
        "request_id": response["ResponseMetadata"]["RequestId"],
    }


def test_returns_value(localstack: LocalStackSession, function: str) -> None:
    result = invoke(localstack, function, {"action": "echo", "value": [1, "two"]})
    assert result["error"] is None
    assert result["payload"] == {"echo": [1, "two"], "n": 42}


def test_handler_exception_has_lambda_error_shape(
    localstack: LocalStackSession, function: str
) -> None:
    result = invoke(localstack, function, {"action": "raise", "value": 7})
    assert result["error"] == "Unhandled"
    payload = result["payload"]
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad value: 7"
    assert isinstance(payload["stackTrace"], list) and payload["stackTrace"]
    assert any("app.py" in frame for frame in payload["stackTrace"])
    # the worker survives a handler exception
    assert invoke(localstack, function, {"action": "echo", "value": 1})["error"] is None


def test_context_and_environment(localstack: LocalStackSession, function: str) -> None:
    result = invoke(localstack, function, {"action": "context"})
    assert result["error"] is None
    ctx = result["payload"]
    assert ctx["function_name"] == function
    assert ctx["invoked_function_arn"].endswith(f":function:{function}")
    assert ctx["memory_limit_in_mb"] == 256
    assert 0 < ctx["remaining_ms"] <= TIMEOUT_S * 1000
    assert ctx["log_group_name"] == f"/aws/lambda/{function}"
    assert ctx["aws_request_id"]
    env = ctx["env"]
    assert env["AWS_ENDPOINT_URL"] == localstack.endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == function
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["GREETING"] == "hello"
    assert env["AWS_ACCESS_KEY_ID"]


def test_boto3_inside_function_reaches_localstack(
    localstack: LocalStackSession, function: str
) -> None:
    queue = f"from-lambda-{uuid.uuid4().hex[:6]}"
    result = invoke(localstack, function, {"action": "aws", "queue": queue})
    assert result["error"] is None, result
    sqs: Any = localstack.client("sqs")
    assert sqs.get_queue_url(QueueName=queue)["QueueUrl"].endswith(queue)
    sqs.delete_queue(QueueUrl=result["payload"]["queue_url"])


def test_layer_module_resolves_from_the_layer(localstack: LocalStackSession, function: str) -> None:
    result = invoke(localstack, function, {"action": "layer"})
    assert result["error"] is None, result
    agentkit_file = Path(result["payload"]["agentkit_file"])
    # the project venv has an editable agentkit too: the layer's copy must win
    source_tree = REPO_ROOT / "layers" / "agentkit"
    assert source_tree not in agentkit_file.parents
    assert agentkit_file.parts[-3:] == ("python", "agentkit", "__init__.py")
    assert str(Layout.current().home) in str(agentkit_file)


def test_prints_are_kept_as_logs(localstack: LocalStackSession, function: str) -> None:
    token = uuid.uuid4().hex
    result = invoke(localstack, function, {"action": "print", "token": token})
    assert result["payload"] == "printed"
    assert f"stdout line {token}" in result["log"]
    assert f"stderr line {token}" in result["log"]
    log_file = Layout.current().lambda_logs / f"{function}.log"
    kept = log_file.read_text()
    assert f"stdout line {token}" in kept
    assert f"stderr line {token}" in kept
    # only this invocation's output, not the earlier ones
    assert "going to sleep" not in result["log"]


def test_timeout_kills_worker_and_next_invoke_works(
    localstack: LocalStackSession, function: str
) -> None:
    pid_before = invoke(localstack, function, {"action": "pid"})["payload"]
    started = time.monotonic()
    result = invoke(localstack, function, {"action": "sleep", "seconds": 30})
    elapsed = time.monotonic() - started
    assert result["error"] == "Unhandled"
    assert result["payload"]["errorType"] == "Sandbox.Timedout"
    assert f"Task timed out after {TIMEOUT_S:.2f} seconds" in result["payload"]["errorMessage"]
    assert TIMEOUT_S - 0.5 <= elapsed < TIMEOUT_S + 5
    assert "going to sleep" in result["log"]
    after = invoke(localstack, function, {"action": "echo", "value": "again"})
    assert after["error"] is None
    assert after["payload"]["echo"] == "again"
    pid_after = invoke(localstack, function, {"action": "pid"})["payload"]
    assert pid_after != pid_before  # a fresh worker


def test_import_error_is_reported_and_retried(localstack: LocalStackSession) -> None:
    lam: Any = localstack.client("lambda")
    name = f"executor-broken-{uuid.uuid4().hex[:8]}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip({"app.py": "import no_such_module_here\n"})},
        Timeout=TIMEOUT_S,
    )
    try:
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        for _ in range(2):  # the broken worker is replaced, and fails the same way again
            result = invoke(localstack, name, {})
            assert result["error"] == "Unhandled"
            assert result["payload"]["errorType"] == "Runtime.ImportModuleError"
            assert result["payload"]["errorMessage"] == (
                "Unable to import module 'app': No module named 'no_such_module_here'"
            )
    finally:
        lam.delete_function(FunctionName=name)


def test_a_new_function_is_initialized_before_its_first_invocation(
    localstack: LocalStackSession, tmp_path: Path
) -> None:
    """Proactive init (as AWS may do for on-demand functions): once the function is Active,
    an execution environment imports the handler without any request, and the first
    invocation runs in that same environment (same process, init not repeated)."""
    lam: Any = localstack.client("lambda")
    name = f"executor-proactive-{uuid.uuid4().hex[:8]}"
    marker_dir = tmp_path / "inits"
    marker_dir.mkdir()
    source = (
        "import os\n"
        f"open(os.path.join({str(marker_dir)!r}, str(os.getpid())), 'w').close()\n"
        "def lambda_handler(event, context):\n"
        "    return {'pid': os.getpid(), 'inits': sorted(os.listdir("
        f"{str(marker_dir)!r}))}}\n"
    )
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip({"app.py": source})},
        Timeout=TIMEOUT_S,
    )
    try:
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        deadline = time.monotonic() + 30
        while not any(marker_dir.iterdir()):
            assert time.monotonic() < deadline, "no environment initialized the handler"
            time.sleep(0.05)
        (init_pid,) = [entry.name for entry in marker_dir.iterdir()]
        result = invoke(localstack, name, {})
        assert result["error"] is None
        assert result["payload"] == {"pid": int(init_pid), "inits": [init_pid]}
    finally:
        lam.delete_function(FunctionName=name)


def test_the_suite_runs_its_own_stack_beside_the_users(localstack: LocalStackSession) -> None:
    """`make test` must leave a stack the user keeps up (`make up`, `demo --keep`: the
    default instance on port 4566) alone: the suite's LocalStack is another instance, with
    its own port, pid, data, outputs and logs."""
    users = Layout(state_dir())
    ours = Layout.current()
    suite_instance = os.environ.get("OPSPAWN_TEST_OFFLINE_INSTANCE") or "test"
    assert ours.instance == suite_instance and ours.home != users.home
    assert localstack.port != DEFAULT_PORT
    assert running_port(ours) == localstack.port
    assert running_port(users) != localstack.port  # whether or not the user's stack is up
    for path in (ours.pid_file, ours.outputs_file, ours.lambda_logs, ours.filesystem_root):
        assert ours.home in path.parents
