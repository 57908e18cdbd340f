"""Tracing: off, a handler is itself and the X-Ray SDK is never imported; on (a Lambda
environment with a sampled trace header), the real SDK sends the handler's subsegment with
the task's annotations and a model call's span with the OpenTelemetry GenAI attributes, in
the invocation's trace, to the daemon address (a loopback listener here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

from agentkit.observability.tracing import (
    invocation_annotations,
    trace_root,
    traced,
    tracing_enabled,
)
from opspawn.offline.traces import XRayDaemon, flat
from tests.support.aws import ROOT

LAYER = str(ROOT / "layers" / "agentkit")
ROOT_ID = "1-67891233-abcdef012345678912345678"


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env={**base, **env, "PYTHONPATH": LAYER},
        capture_output=True, text=True, timeout=60, check=False)


def test_tracing_is_on_only_in_lambda_and_when_not_disabled() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert not tracing_enabled({"AWS_LAMBDA_FUNCTION_NAME": "f",
                                "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not tracing_enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_SAM_LOCAL": "true"})


def test_off_the_handler_is_itself_and_no_xray_sdk_is_imported() -> None:
    def handler(event: Any, context: Any) -> Any:
        return event

    assert traced(handler) is handler  # the tests run outside Lambda
    probe = _run("""
        import sys
        from agentkit.observability.tracing import traced, span
        from agentkit.observability.model_calls import observe_model_call
        handler = lambda event, context: event
        assert traced(handler) is handler
        with span("x") as nothing:
            assert nothing is None
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(("aws_xray_sdk", "wrapt")))))
    """.replace("import sys", "import json, sys"), {
        "AWS_LAMBDA_FUNCTION_NAME": "opspawn-plan", "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "T"})
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout.splitlines()[-1]) == []


def test_on_the_sdk_sends_the_handlers_and_the_model_calls_subsegments() -> None:
    with XRayDaemon() as daemon:
        probe = _run("""
            from agentkit.observability.model_calls import observe_model_call
            from agentkit.observability.tracing import traced

            @traced
            def lambda_handler(event, context):
                with observe_model_call("openai", "gpt-4o-mini", tenant_id="acme") as call:
                    call.reply(input_tokens=12, output_tokens=3, cost_usd=0.001,
                               finish_reason="tool_calls")
                return {"task_id": event["task_id"]}

            class Context:
                function_name = "opspawn-CallModelFunction"
                function_version = "$LATEST"
                invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:f"
                aws_request_id = "r-1"
                memory_limit_in_mb = 512
            print(lambda_handler({"task_id": "t-9"}, Context()))
        """, {
            "AWS_LAMBDA_FUNCTION_NAME": "opspawn-CallModelFunction",
            "LAMBDA_TASK_ROOT": LAYER,
            "_X_AMZN_TRACE_ID": f"Root={ROOT_ID};Parent=1234567890abcdef;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "opspawn",
            "POWERTOOLS_METRICS_NAMESPACE": "Opspawn",
        })
        assert probe.returncode == 0, probe.stderr
        nodes = flat(daemon.wait_for(lambda docs: len(flat(docs)) >= 2))
    assert not daemon.rejected
    by_name = {n["name"]: n for n in nodes}
    handler, model = by_name["## lambda_handler"], by_name["chat gpt-4o-mini"]
    assert {handler["trace_id"], model["trace_id"]} == {ROOT_ID}
    assert handler["parent_id"] == "1234567890abcdef"  # Lambda's own segment
    assert handler["annotations"]["task_id"] == "t-9"
    assert handler["annotations"]["function"] == "opspawn-CallModelFunction"
    assert model["annotations"] == {
        "task_id": "t-9", "tenant_id": "acme",
        "gen_ai_operation_name": "chat", "gen_ai_system": "openai",
        "gen_ai_request_model": "gpt-4o-mini", "gen_ai_usage_input_tokens": 12,
        "gen_ai_usage_output_tokens": 3, "gen_ai_response_finish_reasons": "tool_calls"}
    assert model["metadata"]["gen_ai"]["attributes"] == {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3, "gen_ai.response.finish_reasons": ["tool_calls"]}
    # the model call's EMF line went to the function's log (stdout), with its task
    emf = [json.loads(line) for line in probe.stdout.splitlines() if line.startswith('{"_aws"')]
    assert emf and emf[0]["task_id"] == "t-9" and emf[0]["InputTokens"] == [12.0]


def test_what_an_event_says_about_its_task() -> None:
    assert invocation_annotations({"task_id": "t-1", "turn": 2}) == {"task_id": "t-1"}
    api = {"pathParameters": {"task_id": "t-2"},
           "requestContext": {"authorizer": {"tenant_id": "acme"}}}
    assert invocation_annotations(api) == {"task_id": "t-2", "tenant_id": "acme"}
    sqs = {"Records": [{"body": json.dumps({"task_id": "t-3", "turn": 1}),
                        "attributes": {"AWSTraceHeader": f"Root={ROOT_ID};Parent=ab;Sampled=1"}}]}
    assert invocation_annotations(sqs) == {"task_id": "t-3", "sender_trace_id": ROOT_ID}
    assert invocation_annotations(["not", "a", "mapping"]) == {}
    assert trace_root("Sampled=1") is None


def _handler(trace_id: str, segment_id: str, start: float, **annotations: str) -> dict[str, Any]:
    return {"trace_id": trace_id, "id": segment_id, "name": "## lambda_handler",
            "start_time": start, "end_time": start + 0.5, "annotations": annotations}


def test_a_tasks_trace_is_printed_with_its_linked_trace_and_requests_on_demand() -> None:
    from opspawn.offline.traces import task_trace

    task, own, linked, get = "t-1", "1-a", "1-b", "1-c"
    nodes = [
        _handler(own, "s1", 10.0, task_id=task, function="SubmitFunction"),
        {"trace_id": own, "id": "d1", "parent_id": "s1", "name": "dynamodb",
         "start_time": 10.1, "end_time": 10.2, "annotations": {}},
        _handler(own, "s2", 11.0, task_id=task, function="PlanFunction"),
        _handler(linked, "s3", 12.0, task_id=task, sender_trace_id=own),
        _handler(get, "s4", 13.0, task_id=task, function="TasksFunction"),
        _handler("1-z", "s5", 13.0, task_id="another"),
    ]
    lines = task_trace(nodes, task)
    assert lines[0] == f"trace {own} (task {task}):"
    assert lines[1].startswith("+      0 ms    500 ms  ## lambda_handler")
    assert lines[2].startswith("  +    100 ms    100 ms  dynamodb")  # a child, indented
    assert lines[4] == f"linked trace {linked} (from SQS):" and len(lines) == 6
    assert f"request trace {get}:" in task_trace(nodes, task, requests=True)
