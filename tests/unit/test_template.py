"""The deployment artifacts: template.yaml, the agent state machine, the layer build, events/.

Runs the real tools from the project venv (the directory of sys.executable):
`statelint`, `sam validate --lint`, and `sam build` (~10 s, pip fetches the layer's
wheels for the Lambda target; needs the package index or a warm pip cache).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agentkit.models.api import SubmitTaskRequest
from agentkit.models.payloads import ModelStepOutput, TaskRef, ToolCallRef, TurnRef
from opspawn.build import python312_env
from tests.support.aws import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachines" / "agent.asl.json"
EVENTS = ROOT / "events"
BIN = Path(sys.executable).parent

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
SAMPLE_SUBSTITUTIONS = {
    "PlanFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:opspawn-PlanFunction-AbC123",
    "CallModelFunctionArn":
        "arn:aws:lambda:us-east-1:123456789012:function:opspawn-CallModelFunction-AbC123",
    "FinalizeFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:opspawn-Finalize-AbC123",
    "ToolQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/opspawn-ToolQueue-AbC123",
    "ToolCallTimeoutSeconds": "300",
    "MaxTurnsHardLimit": "50",
    "WaitForApprovalFunctionArn":
        "arn:aws:lambda:us-east-1:123456789012:function:opspawn-WaitForApproval-AbC123",
    "ApprovalTimeoutSeconds": "86400",
    "WaitForChildrenFunctionArn":
        "arn:aws:lambda:us-east-1:123456789012:function:opspawn-WaitForChildren-AbC123",
    "ChildTaskTimeoutSeconds": "3600",
}
LAMBDA_INVOKE = {
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::lambda:invoke.waitForTaskToken",
}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


# --- helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(ASL.read_text())


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable} (pip install -e '.[dev]')")
    return str(path)


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # The layer Makefile installs with this pip (wheels for the Lambda target).
    env["PIP"] = f"{sys.executable} -m pip"
    return env


def _run(
    cmd: list[str], *, timeout: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=env or _tool_env(), capture_output=True, text=True, timeout=timeout
    )


def _substituted_asl_text() -> str:
    text = ASL.read_text()
    for key, value in SAMPLE_SUBSTITUTIONS.items():
        text = text.replace("${" + key + "}", value)
    return text


def _walk_states(states: dict[str, Any]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(scope, name, state) for every state, nested Map/Parallel processors included."""
    found = []
    for name, state in states.items():
        found.append((states, name, state))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.extend(_walk_states(processor["States"]))
        for branch in state.get("Branches", []):
            found.extend(_walk_states(branch["States"]))
    return found


def _targets(state: dict[str, Any]) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    targets += [c["Next"] for c in state.get("Catch", [])]
    if state["Type"] == "Choice":
        targets += [c["Next"] for c in state["Choices"]]
        if "Default" in state:
            targets.append(state["Default"])
    return targets


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


# --- the state machine -----------------------------------------------------


def test_statelint_accepts_the_definition_after_substitution(tmp_path: Path) -> None:
    text = _substituted_asl_text()
    assert not PLACEHOLDER.search(text), "a ${...} placeholder has no sample value here"
    definition = tmp_path / "agent.asl.json"
    definition.write_text(text)
    result = _run([_tool("statelint"), str(definition)], timeout=120)
    assert result.returncode == 0, f"statelint:\n{result.stdout}{result.stderr}"


def test_statelint_rejects_a_broken_definition(tmp_path: Path) -> None:
    """Guards the guard: a dangling Next must make statelint fail."""
    broken = json.loads(_substituted_asl_text())
    broken["States"]["Plan"]["Next"] = "NoSuchState"
    definition = tmp_path / "broken.asl.json"
    definition.write_text(json.dumps(broken))
    result = _run([_tool("statelint"), str(definition)], timeout=120)
    assert result.returncode != 0


def test_placeholders_match_the_template_substitutions(template: dict[str, Any]) -> None:
    subs = template["Resources"]["AgentStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(PLACEHOLDER.findall(ASL.read_text())) == set(subs) == set(SAMPLE_SUBSTITUTIONS)


def test_numeric_substitutions_become_numbers() -> None:
    """Substitutions are strings: numeric fields go through States.StringToJson."""
    definition = json.loads(_substituted_asl_text())
    calls = re.findall(r"States\.StringToJson\('([^']*)'\)", json.dumps(definition))
    assert calls, "expected States.StringToJson for ToolCallTimeoutSeconds / MaxTurnsHardLimit"
    for argument in calls:
        assert isinstance(json.loads(argument), int)
    run_tools = definition["States"]["RunTools"]
    assert run_tools["TimeoutSecondsPath"] == "$.step.tool_timeout_seconds"
    selector = definition["States"]["CallModel"]["ResultSelector"]
    assert selector["tool_timeout_seconds.$"] == "States.StringToJson('300')"


def test_every_transition_targets_an_existing_state(asl: dict[str, Any]) -> None:
    for scope, name, state in _walk_states(asl["States"]):
        for target in _targets(state):
            assert target in scope, f"{name} -> {target}: no such state in its scope"
    assert asl["StartAt"] in asl["States"]


def test_every_state_is_reachable(asl: dict[str, Any]) -> None:
    def reachable(states: dict[str, Any], start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(_targets(states[name]))
        return seen

    machines = [asl]
    for _scope, _name, state in _walk_states(asl["States"]):
        machines += [m for m in (state.get("ItemProcessor"), state.get("Iterator")) if m]
        machines += state.get("Branches", [])
    assert len(machines) > 1, "expected the RunTools Map's ItemProcessor"
    for machine in machines:
        unreachable = set(machine["States"]) - reachable(machine["States"], machine["StartAt"])
        assert not unreachable, f"unreachable states: {sorted(unreachable)}"


def test_lambda_tasks_invoke_functions_of_the_template(
    asl: dict[str, Any], template: dict[str, Any]
) -> None:
    subs = template["Resources"]["AgentStateMachine"]["Properties"]["DefinitionSubstitutions"]
    functions = _functions(template)
    invoked = set()
    for _scope, name, state in _walk_states(asl["States"]):
        if state.get("Resource") not in LAMBDA_INVOKE:
            continue
        placeholder = PLACEHOLDER.fullmatch(state["Parameters"]["FunctionName"])
        assert placeholder, f"{name}: FunctionName must be a ${{...}} substitution"
        value = subs[placeholder.group(1)]
        assert value.get("Fn::GetAtt", [None, None])[1] == "Arn", f"{name}: {value}"
        function = value["Fn::GetAtt"][0]
        assert function in functions, f"{name} invokes {function}, not a function in the template"
        invoked.add(function)
        # Every Lambda task retries service errors and ends up in MarkFailed/Failed on error.
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert retried >= LAMBDA_SERVICE_ERRORS, f"{name} does not retry Lambda service errors"
        assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name
    assert invoked == {"PlanFunction", "CallModelFunction", "FinalizeFunction",
                       "WaitForApprovalFunction", "WaitForChildrenFunction"}
    policies = template["Resources"]["AgentStateMachine"]["Properties"]["Policies"]
    allowed = {
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for p in policies
        if "LambdaInvokePolicy" in p
    }
    assert allowed == invoked


def test_agent_loop_shape(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert asl["StartAt"] == "Plan"
    decide = states["Decide"]
    assert decide["Type"] == "Choice"
    routes = {c.get("StringEquals"): c["Next"] for c in decide["Choices"] if "StringEquals" in c}
    # A tool-using turn whose calls were all denied (or answered) goes straight back.
    assert routes == {"tool_calls": "CallModel", "final": "Finalize", "stop": "ReleaseSlot",
                      "wait": "WaitForProvider"}
    gated = {
        c["And"][1]["StringEquals"]: c["Next"]
        for c in decide["Choices"]
        if "And" in c and c["And"][1]["Variable"] == "$.step.route"
    }
    assert gated == {"run_tools": "RunTools", "await_approvals": "AwaitApprovals",
                     "delegate": "WaitForChildren",
                     "await_approvals_then_delegate": "AwaitApprovalsThenChildren"}
    assert all(c["And"][0] == {"Variable": "$.step.action", "StringEquals": "tool_calls"}
               for c in decide["Choices"] if "And" in c)
    # Waiting for a provider is a Wait state (no compute billed), then the same turn again.
    wait = states["WaitForProvider"]
    assert wait["Type"] == "Wait" and wait["SecondsPath"] == "$.step.wait_seconds"
    assert wait["Next"] == "CallModel"
    assert states["ReleaseSlot"]["Next"] == "Stopped"
    assert states["ReleaseSlot"]["Catch"][0]["Next"] == "Stopped"
    for name in ("Finalize", "MarkFailed", "ReleaseSlot"):
        payload = states[name]["Parameters"]["Payload"]
        assert payload["state_machine_arn.$"] == "$$.StateMachine.Id", name
    assert decide["Choices"][0]["Next"] == "TurnLimitReached", "the turn limit is checked first"
    assert decide["Default"] == "UnknownAction"
    # RunTools: one state for all of a turn's calls (one SQS message, one task token).
    run_tools = states["RunTools"]
    assert run_tools["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert run_tools["ResultPath"] is None and run_tools["Next"] == "CallModel"
    assert run_tools["TimeoutSecondsPath"] == "$.step.tool_timeout_seconds"
    body = run_tools["Parameters"]["MessageBody"]
    assert body["task_token.$"] == "$$.Task.Token"
    assert body["tool_calls.$"] == "$.step.tool_calls"
    from agentkit.models.payloads import RunToolsMessage

    # The message body is exactly what the RunTools function parses.
    assert {k.removesuffix(".$") for k in body} == set(RunToolsMessage.model_fields)
    # A failed or timed-out wait does not fail the turn: the model gets error results.
    [catch] = run_tools["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "CallModel"
    assert catch["ResultPath"] not in ("$.step", "$", "$.task_id")
    # CallModel's ResultSelector keeps the fields of ModelStepOutput the loop needs.
    selected = {k.removesuffix(".$") for k in states["CallModel"]["ResultSelector"]}
    assert (
        {"turn", "action", "route", "tool_calls", "approvals", "wait_seconds", "delegations"}
        <= selected
        <= set(ModelStepOutput.model_fields)
        | {"turn_limit", "tool_timeout_seconds", "children_timeout_seconds"}
    )
    assert states["MarkFailed"]["Parameters"]["Payload"]["error.$"] == "$.error"
    assert states["Failed"]["Type"] == "Fail"


def test_calls_that_need_approval_wait_on_their_own_path(asl: dict[str, Any]) -> None:
    from pydantic import TypeAdapter

    from agentkit.models.payloads import WaitForApprovalEvent

    await_approvals = asl["States"]["AwaitApprovals"]
    assert await_approvals["Type"] == "Map" and await_approvals["ItemsPath"] == "$.step.approvals"
    assert await_approvals["Next"] == "RunTools" and await_approvals["ResultPath"] is None
    processor = await_approvals["ItemProcessor"]
    states = processor["States"]
    assert processor["StartAt"] == "WaitForApproval"
    ref_fields = set(ToolCallRef.model_fields)
    sample = {
        "task_id": "tsk_1",
        "turn": 1,
        "call_id": "c",
        "index": 0,
        "task_token": "t",
        "error": {"Error": "States.Timeout"},
    }
    for name, action, extra in (
        ("WaitForApproval", "wait", {"task_token"}),
        ("ApprovalNotGranted", "settle", {"error"}),
    ):
        payload = states[name]["Parameters"]["Payload"]
        assert payload["action"] == action, name
        fields = {k.removesuffix(".$") for k in payload} - {"action"}
        assert fields == ref_fields | extra, name
        TypeAdapter(WaitForApprovalEvent).validate_python(
            {"action": action, **{k: sample[k] for k in fields}}
        )
    wait = states["WaitForApproval"]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert wait["TimeoutSecondsPath"] == "$.approval_timeout_seconds"
    assert "approval_timeout_seconds.$" in await_approvals["ItemSelector"]
    # Approved: the iteration ends and RunTools (after the Map) runs the call.
    assert wait.get("End") is True and wait["ResultPath"] is None
    assert wait["Catch"][0]["Next"] == "ApprovalNotGranted"
    assert states["ApprovalNotGranted"]["Parameters"]["Payload"]["error.$"] == "$.error"
    assert states["ApprovalNotGranted"].get("End") is True


def test_sub_tasks_are_waited_for_on_a_task_token(asl: dict[str, Any]) -> None:
    """A turn with `delegate` calls parks in WaitForChildren (a callback wait: no compute
    billed) before RunTools; after its approvals when it has some (the same Map, then
    WaitForChildren); a wait that times out or fails is settled, never the task's failure."""
    from pydantic import TypeAdapter

    from agentkit.models.payloads import WaitForChildrenEvent

    states = asl["States"]
    wait = states["WaitForChildren"]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    payload = wait["Parameters"]["Payload"]
    assert payload["task_token.$"] == "$$.Task.Token"
    assert payload["delegations.$"] == "$.step.delegations"
    assert payload["state_machine_arn.$"] == "$$.StateMachine.Id"
    assert wait["TimeoutSecondsPath"] == "$.step.children_timeout_seconds"
    assert wait["ResultPath"] is None and wait["Next"] == "RunTools"
    [catch] = wait["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "ChildrenNotFinished"
    assert catch["ResultPath"] not in ("$.step", "$", "$.task_id")
    settle = states["ChildrenNotFinished"]
    assert settle["Resource"] == "arn:aws:states:::lambda:invoke"
    assert settle["Next"] == "RunTools" and settle["Catch"][0]["Next"] == "RunTools"
    assert settle["Parameters"]["Payload"]["error.$"] == catch["ResultPath"]
    sample = {"task_id": "tsk_1", "turn": 1, "task_token": "t", "state_machine_arn": "arn",
              "delegations": [{"task_id": "tsk_1", "turn": 1, "call_id": "c", "index": 0}],
              "error": {"Error": "States.Timeout"}}
    for state in (wait, settle):
        fields = {k.removesuffix(".$") for k in state["Parameters"]["Payload"]}
        TypeAdapter(WaitForChildrenEvent).validate_python(
            {"action": state["Parameters"]["Payload"]["action"],
             **{k: sample[k] for k in fields - {"action"}}})
    # Approvals first, then the sub-tasks: the same Map as AwaitApprovals (its states
    # renamed, names are unique in a machine), another Next.
    first, then = states["AwaitApprovals"], states["AwaitApprovalsThenChildren"]

    def unnamed(state: dict[str, Any]) -> str:
        text = json.dumps({k: v for k, v in state.items() if k not in ("Next", "Comment")},
                          sort_keys=True)
        return text.replace("ThenChildren", "")

    assert unnamed(first) == unnamed(then)
    assert then["Next"] == "WaitForChildren"


# --- the template ----------------------------------------------------------


def test_sam_validate_lint() -> None:
    result = _run([_tool("sam"), "validate", "--lint", "--region", "us-east-1"], timeout=300)
    assert result.returncode == 0, f"sam validate --lint:\n{result.stdout}\n{result.stderr}"


def test_template_wiring(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    functions = _functions(template)
    for name, function in functions.items():
        code = ROOT / function["Properties"]["CodeUri"]
        assert code.is_dir(), f"{name}: CodeUri {code} is missing"
    assert resources["AgentApi"]["Type"] == "AWS::Serverless::Api"  # REST, not HttpApi
    # SQS event source: visibility >= 6x the consumer's timeout.
    tool_timeout = functions["RunToolsFunction"]["Properties"]["Timeout"]
    visibility = resources["ToolQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility == {"Ref": "ToolQueueVisibilityTimeoutSeconds"}
    default = template["Parameters"]["ToolQueueVisibilityTimeoutSeconds"]["Default"]
    assert default >= 6 * tool_timeout  # AWS's advice for Lambda event sources
    # The state machine must not depend on RunToolsFunction (whose role refers to it).
    state_machine = json.dumps(resources["AgentStateMachine"])
    assert "RunToolsFunction" not in state_machine


def _python312_available() -> bool:
    finder = ROOT / "layers" / "compile_pyc.sh"
    probe = subprocess.run(
        ["bash", "-c", f"source <(sed -n '/^find_312()/,/^}}/p' {finder}); find_312"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(probe.stdout.strip())


def test_sam_build_layer_layout(tmp_path: Path) -> None:
    """Slow-ish (~10 s): the real `sam build`, the layer through its Makefile."""
    build = tmp_path / "build"
    env = python312_env(_tool_env())
    result = _run(
        [
            _tool("sam"),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build),
            "--no-cached",
        ],
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, f"sam build:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    layer = build / "AgentKitLayer" / "python"
    assert (layer / "agentkit" / "models" / "domain.py").is_file()
    assert (layer / "pydantic").is_dir()
    assert (layer / "pydantic_core").is_dir()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert not (layer / "python").exists(), "layer content nested as python/python"
    # No bytecode of the build machine's interpreter leaks in (only the runtime's 3.12).
    assert not [p for p in layer.glob("agentkit/**/*.pyc") if ".cpython-312." not in p.name]
    # Wheels for the Lambda runtime, not for the machine that built them.
    assert list((layer / "pydantic_core").glob("*cpython-312-x86_64-linux-gnu.so"))
    assert not (layer / "boto3").exists(), "boto3 comes with the Lambda runtime"
    assert not (layer / "botocore").exists(), "botocore comes with the Lambda runtime"
    assert (layer / "aws_xray_sdk").is_dir() and (layer / "wrapt").is_dir()  # X-Ray tracing
    assert (build / "template.yaml").is_file()
    # Provider SDKs ship in their own layer, attached only to the functions that call models:
    # CallModel, and the embedding models of long-term memory (Memories, Plan, RunTools).
    assert not (layer / "openai").exists(), "provider SDKs must stay out of the shared layer"
    providers = build / "ProvidersLayer" / "python"
    assert (providers / "openai").is_dir()
    # Anthropic's client speaks the API over httpx: its SDK (a second of import) not shipped.
    assert not (providers / "anthropic").exists()
    assert (providers / "google" / "genai").is_dir()
    # One pydantic for CallModelFunction: the agentkit layer's pinned copy, not a second one.
    assert not (providers / "pydantic").exists() and not (providers / "pydantic_core").exists()
    if _python312_available():
        # Bytecode for the runtime ships with the layers (/opt is read-only on Lambda).
        assert list((layer / "pydantic").glob("__pycache__/*.cpython-312.pyc"))
        assert list((providers / "openai").glob("__pycache__/*.cpython-312.pyc"))
    functions = {
        name: resource.get("Properties", {})
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    with_providers = [
        n for n, p in functions.items() if {"Ref": "ProvidersLayer"} in p.get("Layers", [])
    ]
    # FinalizeFunction: a task with memory "auto" calls its model and embeds at its end.
    assert sorted(with_providers) == ["CallModelFunction", "FinalizeFunction",
                                      "MemoriesFunction", "PlanFunction", "RunToolsFunction"]
    with_mcp = sorted(n for n, p in functions.items() if {"Ref": "McpLayer"} in p.get("Layers", []))
    assert with_mcp == ["PlanFunction", "RunToolsFunction"]
    mcp_layer = build / "McpLayer" / "python"
    assert (mcp_layer / "mcp").is_dir() and not (mcp_layer / "pydantic").exists()


# --- events/ ---------------------------------------------------------------

ALL_EVENTS = sorted(p.name for p in EVENTS.glob("*.json"))


def _validate(model: type[BaseModel], data: dict[str, Any]) -> None:
    try:
        model.model_validate(data)
    except ValidationError as error:  # pragma: no cover - message for the failure
        pytest.fail(f"{model.__name__}: {error}")


def test_expected_events_exist() -> None:
    assert set(ALL_EVENTS) >= {
        "submit_post_tasks.json",
        "tasks_get_task.json",
        "plan.json",
        "call_model.json",
        "run_tools_sqs.json",
        "finalize_succeeded.json",
        "finalize_failed.json",
    }


@pytest.mark.parametrize("name", ALL_EVENTS)
def test_event_is_json_object(name: str) -> None:
    assert isinstance(json.loads((EVENTS / name).read_text()), dict)


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_step_function_events_match_the_models() -> None:
    _validate(TaskRef, _event("plan.json"))
    _validate(TurnRef, _event("call_model.json"))
    for name, outcome in (
        ("finalize_succeeded.json", "succeeded"),
        ("finalize_failed.json", "failed"),
    ):
        event = _event(name)
        _validate(TaskRef, event)
        assert event["outcome"] == outcome
    error = _event("finalize_failed.json")["error"]
    assert set(error) == {"Error", "Cause"}
    cause = json.loads(error["Cause"])  # what a Lambda error looks like after Catch
    assert cause["errorType"] == error["Error"] and cause["errorMessage"]


def test_run_tools_event_body_is_the_run_tools_message() -> None:
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    from agentkit.models.payloads import RunToolsMessage

    event = _event("run_tools_sqs.json")
    SqsModel.model_validate(event)
    (record,) = event["Records"]
    message = RunToolsMessage.model_validate_json(record["body"])
    assert message.task_token and message.tool_calls
    assert all((r.task_id, r.turn) == (message.task_id, message.turn) for r in message.tool_calls)
    assert record["eventSourceARN"].startswith("arn:aws:sqs:")
    assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1


def test_api_events_are_rest_proxy_events() -> None:
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

    submit = _event("submit_post_tasks.json")
    APIGatewayProxyEventModel.model_validate(submit)
    assert (submit["httpMethod"], submit["resource"]) == ("POST", "/tasks")
    assert submit["headers"]["Content-Type"] == "application/json"
    request = SubmitTaskRequest.model_validate_json(submit["body"])
    assert request.model == "scripted" and request.scripted_turns
    assert request.scripted_turns[0].tool_calls and request.scripted_turns[-1].content

    get = _event("tasks_get_task.json")
    APIGatewayProxyEventModel.model_validate(get)
    assert (get["httpMethod"], get["resource"]) == ("GET", "/tasks/{task_id}")
    _validate(TaskRef, get["pathParameters"])
    assert get["path"] == f"/tasks/{get['pathParameters']['task_id']}"


def test_security_events_match_the_models() -> None:
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel
    from pydantic import TypeAdapter

    from agentkit.models.api import ApprovalDecisionRequest
    from agentkit.models.payloads import WaitForApprovalEvent

    for name, action in (
        ("wait_for_approval.json", "wait"),
        ("approval_not_granted.json", "settle"),
    ):
        assert TypeAdapter(WaitForApprovalEvent).validate_python(_event(name)).action == action
    post = _event("approvals_post.json")
    APIGatewayProxyEventModel.model_validate(post)
    assert (post["httpMethod"], post["resource"]) == (
        "POST",
        "/tasks/{task_id}/approvals/{approval_id}",
    )
    params = post["pathParameters"]
    assert post["path"] == f"/tasks/{params['task_id']}/approvals/{params['approval_id']}"
    assert ApprovalDecisionRequest.model_validate_json(post["body"]).decision == "approve"
    assert params["task_id"] == _event("wait_for_approval.json")["task_id"]


def test_sub_agent_events_match_the_models() -> None:
    from pydantic import TypeAdapter

    from agentkit.models.payloads import WaitForChildrenEvent

    for name, action in (("wait_for_children.json", "start"),
                         ("children_not_finished.json", "settle")):
        event = TypeAdapter(WaitForChildrenEvent).validate_python(_event(name))
        assert event.action == action
        assert event.task_id == _event("wait_for_approval.json")["task_id"]


def test_events_share_one_task_id() -> None:
    ids = {
        _event("plan.json")["task_id"],
        _event("call_model.json")["task_id"],
        _event("finalize_succeeded.json")["task_id"],
        _event("finalize_failed.json")["task_id"],
        _event("tasks_get_task.json")["pathParameters"]["task_id"],
        json.loads(_event("run_tools_sqs.json")["Records"][0]["body"])["task_id"],
    }
    assert len(ids) == 1 and next(iter(ids)).startswith("tsk_")


def test_s3_vectors_resources_are_conditional_and_referenced_by_name_only() -> None:
    """LocalStack deploys a conditional resource that another one references (Ref, GetAtt)
    even when its condition is false, and it has no S3 Vectors: the memories function names
    the index by a built ARN instead, so the default deployment never touches them."""
    resources = load_template()["Resources"]
    vector_resources = {"MemoryVectorBucket", "MemoryVectorIndex"}
    for name in vector_resources:
        assert resources[name]["Condition"] == "UseS3Vectors"

    def references(value: Any) -> set[str]:
        if isinstance(value, dict):
            found = set()
            for key, inner in value.items():
                if key == "Ref" and isinstance(inner, str):
                    found.add(inner)
                elif key == "Fn::GetAtt":
                    target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                    found.add(target)
                found |= references(inner)
            return found
        if isinstance(value, list):
            return set().union(*(references(v) for v in value)) if value else set()
        return set()

    for name, resource in resources.items():
        if name not in vector_resources:
            assert not references(resource) & vector_resources, name
    index = resources["MemoryVectorIndex"]["Properties"]
    assert (index["DistanceMetric"], index["DataType"]) == ("cosine", "float32")
    assert index["Dimension"] == {"Ref": "EmbeddingDimensions"}
