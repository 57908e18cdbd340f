"""What the e2e tests share: the settings the offline stack is deployed with, and a
poller that waits for a task to reach a state."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from agentkit.models.api import TaskView
from opspawn.client import OpspawnClient
from opspawn.offline.paths import REPO_ROOT
from opspawn.offline.stack import StackOutputs

TIMEOUT_S = 120

#: The security policy of the e2e stack (tests/e2e/test_security_e2e.py): every registered
#: tool (read_file stays refused: it has no path_prefixes), http_fetch only to 127.0.0.1 and
#: each of its calls only after a human's approval.
E2E_SECURITY_POLICY = {
    "approval_required": ["http_fetch"],
    "constraints": {"http_fetch": {"url_hosts": ["127.0.0.1"]}},
}
#: Real MCP servers over stdio (run by the tool Lambda's worker on this machine): the
#: PyPI time server, and a test server whose tools hang past its 3 s timeout or answer
#: with a large output.
E2E_MCP_SERVERS = [
    {"name": "time", "transport": "stdio", "command": sys.executable,
     "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"], "timeout_s": 20},
    {"name": "slow", "transport": "stdio", "command": sys.executable,
     "args": [str(REPO_ROOT / "tests" / "mcp" / "slow_server.py")], "timeout_s": 3},
]
#: AuthorizerCacheTtlSeconds=0: a revoked key is refused at once (tests revoke keys).
SCRIPTED_PARAMETERS = {
    "ScriptedModelEnabled": "true",
    "ToolCallTimeoutSeconds": "60",
    "AuthorizerCacheTtlSeconds": "0",
    "SecurityPolicy": json.dumps(E2E_SECURITY_POLICY),
    "ApprovalTimeoutSeconds": "60",
    "McpServers": json.dumps(E2E_MCP_SERVERS),
    # A poison tool message is redelivered after 5 s and dead-lettered on the 3rd failure.
    "ToolQueueVisibilityTimeoutSeconds": "5",
}
#: The tenant of the key every e2e client sends by default ($OPSPAWN_API_KEY, set below).
E2E_TENANT = "e2e-default"
#: Fake provider keys, stored in LocalStack's Secrets Manager as in AWS; tests scan the
#: Lambda logs for them.
FAKE_KEYS = {
    "OPENAI_API_KEY": "sk-proj-e2eFAKEopenai0000000000000000000000000001",
    "ANTHROPIC_API_KEY": "sk-ant-api03-e2eFAKEanthropic000000000000000000002",
    "GOOGLE_API_KEY": "AIzaE2EfakeGoogleKey000000000000000003",
    "OPENROUTER_API_KEY": "sk-or-v1-e2eFAKEopenrouter0000000000000000000004",
}


def until(api: OpspawnClient, task_id: str, condition: Callable[[TaskView], bool],
          timeout_s: float = TIMEOUT_S) -> TaskView:
    """The task's view once `condition` holds; fails if the task ends first or the time
    runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = api.get(task_id)
        if condition(view):
            return view
        assert not view.status.is_terminal, (view.status, view.error)
        assert time.monotonic() < deadline, f"timed out; last status {view.status}"
        time.sleep(0.3)


def ended_execution(offline_stack: StackOutputs, task_id: str,
                    timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The task's execution (DescribeExecution) once it is no longer RUNNING: Finalize writes
    the task's status a moment before the execution itself ends."""
    sfn = offline_stack.client("stepfunctions")
    machine = offline_stack.outputs["StateMachineArn"]
    arn = machine.replace(":stateMachine:", ":execution:") + f":{task_id}"
    deadline = time.monotonic() + timeout_s
    while (execution := dict(sfn.describe_execution(executionArn=arn)))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"the execution of {task_id} did not end"
        time.sleep(0.1)
    return execution
