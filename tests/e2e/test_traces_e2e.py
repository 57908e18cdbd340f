"""One trace per task, offline: what the functions' X-Ray SDK emits, caught on loopback.

LocalStack community has no X-Ray. The executor points each function's
AWS_XRAY_DAEMON_ADDRESS at UDP 127.0.0.1:<LocalStack port> (localstack-plugin executor.py)
and the plugin propagates the trace header as AWS does (tracing.py): API Gateway → the
submit function → StartExecution → each state's Lambda. This test is the daemon: it listens
there, runs a task with one tool turn, and checks that the task's steps share one trace id
and carry the task id, the tenant and, on the model call, the OpenTelemetry GenAI
attributes. The trace is written to .test-output/traces/ and printed as a tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs
from opspawn.offline.traces import XRayDaemon, flat, handlers_of, task_trace
from tests.support.browser import OUTPUT_ROOT
from tests.support.e2e import E2E_TENANT

TIMEOUT_S = 120
TURNS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
    {"content": "6 * 7 = 42."},
]
#: The functions a task's own trace runs through (RunTools is polled from SQS: its trace
#: is its own, linked to the task's by the message's AWSTraceHeader).
TRACE_FUNCTIONS = ("SubmitFunction", "PlanFunction", "CallModelFunction", "FinalizeFunction")


@pytest.fixture()
def daemon(offline_stack: StackOutputs) -> Iterator[XRayDaemon]:
    port = int(offline_stack.endpoint_url.rsplit(":", 1)[1].rstrip("/"))
    with XRayDaemon(port) as listening:
        yield listening


def _function(node: dict[str, Any]) -> str:
    name = str(node.get("annotations", {}).get("function", ""))
    return next((f for f in (*TRACE_FUNCTIONS, "RunToolsFunction") if f in name), name)


def test_a_task_is_one_trace_with_genai_attributes(
    api: OpspawnClient, offline_stack: StackOutputs, daemon: XRayDaemon
) -> None:
    task = api.submit({"goal": "What is 6 * 7?", "model": "scripted", "tools": ["calculator"],
                       "scripted_turns": TURNS})
    view = api.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error

    def complete(documents: list[dict[str, Any]]) -> bool:
        seen = {_function(n) for n in handlers_of(flat(documents), task.task_id)}
        return {*TRACE_FUNCTIONS, "RunToolsFunction"} <= seen

    nodes = flat(daemon.wait_for(complete, timeout_s=20))
    assert not daemon.rejected
    handlers = handlers_of(nodes, task.task_id)
    by_function: dict[str, list[dict[str, Any]]] = {}
    for node in handlers:
        by_function.setdefault(_function(node), []).append(node)
    assert set(TRACE_FUNCTIONS) <= set(by_function), sorted(by_function)

    # One trace: submit's (begun by API Gateway), continued by every state's Lambda.
    trace_ids = {n["trace_id"] for f in TRACE_FUNCTIONS for n in by_function[f]}
    assert len(trace_ids) == 1, trace_ids
    (trace_id,) = trace_ids
    # The tool turn ran from SQS in a trace of its own, linked to the task's.
    for node in by_function["RunToolsFunction"]:
        assert node["annotations"]["sender_trace_id"] == trace_id
    # The submit function knows the tenant (from the authorizer).
    assert by_function["SubmitFunction"][0]["annotations"]["tenant_id"] == E2E_TENANT
    # StartExecution is a call inside submit's trace (botocore patched).
    aws_calls = {str(n.get("name")).lower() for n in nodes if n["trace_id"] == trace_id
                 and n.get("namespace") == "aws"}
    assert {"states", "dynamodb"} <= aws_calls, sorted(aws_calls)

    # Each model call is a span with the OpenTelemetry GenAI attributes.
    model_calls = [n for n in nodes if n["trace_id"] == trace_id
                   and n.get("name") == "chat scripted"]
    assert len(model_calls) == 2
    for span, finish in zip(sorted(model_calls, key=lambda n: float(n["start_time"])),
                            ("tool_calls", "stop"), strict=True):
        notes = span["annotations"]
        assert notes["gen_ai_system"] == "scripted"
        assert notes["gen_ai_request_model"] == "scripted"
        assert notes["gen_ai_response_finish_reasons"] == finish
        assert notes["task_id"] == task.task_id and notes["tenant_id"] == E2E_TENANT
        attributes = span["metadata"]["gen_ai"]["attributes"]
        assert attributes["gen_ai.system"] == "scripted"
        assert attributes["gen_ai.request.model"] == "scripted"
        assert attributes["gen_ai.response.finish_reasons"] == [finish]
        assert isinstance(attributes["gen_ai.usage.input_tokens"], int)
        assert isinstance(attributes["gen_ai.usage.output_tokens"], int)
        assert notes["gen_ai_usage_input_tokens"] == attributes["gen_ai.usage.input_tokens"]

    tree = task_trace(nodes, task.task_id)
    linked = {n["trace_id"] for n in by_function["RunToolsFunction"]}
    out = OUTPUT_ROOT / "traces"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{task.task_id}.json").write_text(json.dumps(
        [n for n in daemon.received() if n.get("trace_id") in {trace_id, *linked}], indent=1))
    (out / f"{task.task_id}.txt").write_text("\n".join(tree) + "\n")
    print(f"\ntrace {trace_id} of task {task.task_id} ({out / task.task_id}.json):")
    print("\n".join(tree))
