"""The opspawn-subprocess Lambda executor on a real LocalStack (no template needed)."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opspawn.offline.deploy import layer_zip
from opspawn.offline.paths import REPO_ROOT, Layout
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
    return {"unknown": action}
"""


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture(scope="module")
def function(localstack: LocalStackSession) -> Iterator[str]:
    lam: Any = localstack.client("lambda")
    suffix = uuid.uuid4().hex[:8]
    layer = lam.publish_layer_version(
        LayerName=f"agentkit-test-{suffix}",
        Content={"ZipFile": layer_zip(REPO_ROOT / "layers" / "agentkit")},
        CompatibleRuntimes=["python3.11"],
    )
    name = f"executor-test-{suffix}"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip({"app.py": HANDLER_SOURCE})},
        Timeout=TIMEOUT_S,
        MemorySize=256,
        Layers=[layer["LayerVersionArn"]],
        Environment={"Variables": {"GREETING": "hello"}},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    yield name
    lam.delete_function(FunctionName=name)
    lam.delete_layer_version(LayerName=f"agentkit-test-{suffix}", VersionNumber=layer["Version"])


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
    assert str(Layout.current().root) in str(agentkit_file)


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
        Runtime="python3.11",
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
            assert result["payload"]["errorType"].startswith("Runtime.ImportModuleError")
            assert "no_such_module_here" in result["payload"]["errorMessage"]
    finally:
        lam.delete_function(FunctionName=name)
