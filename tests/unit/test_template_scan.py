"""Logs a team can audit, tracing, data protection, and the infrastructure scan (issue 13).

The template: X-Ray on the API stage, the state machine and every function behind
``TracingEnabled``; every function's log group and the API's JSON access log kept for
``LogRetentionDays``; point-in-time recovery, encrypted queues, a versioned artifacts bucket
whose old versions expire; a dead-letter queue wherever a function is invoked asynchronously.

The scan: checkov (its own venv, ``.venv-scan``, made by ``make scan``/``make setup``) over
template.yaml with ``.checkov.yaml`` passes; each skipped check still fails without its skip
(so no skip is stale) and nothing else does; and a new real finding fails the scan.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentkit.api.api_keys import authorize
from agentkit.tenancy import ApiKeyRecord
from tests.support.aws import ROOT, load_template

CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
CONFIG = ROOT / ".checkov.yaml"
#: The retention values CloudWatch Logs accepts (PutRetentionPolicy).
CLOUDWATCH_RETENTION_DAYS = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
]
RETENTION = {"Ref": "LogRetentionDays"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def _evaluate(value: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """A property as CloudFormation would see it for these parameters (Ref to a parameter,
    Fn::If on a condition built from Fn::Equals / Fn::Not; other intrinsics left as they are)."""
    if isinstance(value, list):
        return [_evaluate(item, template, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in template["Parameters"]:
        name = value["Ref"]
        return parameters.get(name, str(template["Parameters"][name].get("Default")))
    if set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if _condition(condition, template, parameters) else when_false
        return _evaluate(chosen, template, parameters)
    return {key: _evaluate(item, template, parameters) for key, item in value.items()}


def _condition(name: str, template: dict[str, Any], parameters: dict[str, str]) -> bool:
    def holds(expr: dict[str, Any]) -> bool:
        if "Fn::Equals" in expr:
            left, right = (_evaluate(v, template, parameters) for v in expr["Fn::Equals"])
            return bool(left == right)
        if "Fn::Not" in expr:
            return not holds(expr["Fn::Not"][0])
        raise AssertionError(f"condition {name}: unsupported {expr}")

    return holds(template["Conditions"][name])


# --- tracing ----------------------------------------------------------------


def test_tracing_parameter() -> None:
    spec = load_template()["Parameters"]["TracingEnabled"]
    assert spec["Default"] == "true"
    assert sorted(spec["AllowedValues"]) == ["false", "true"]


@pytest.mark.parametrize(("value", "on"), [("true", True), ("false", False)])
def test_tracing_follows_the_parameter(template: dict[str, Any], value: str, on: bool) -> None:
    params = {"TracingEnabled": value}
    # API Gateway's stage (a "true"/"false" string, which CloudFormation takes as a boolean)
    stage = _evaluate(template["Resources"]["AgentApi"]["Properties"]["TracingEnabled"],
                      template, params)
    assert str(stage).lower() == value
    # the state machine
    machine = template["Resources"]["AgentStateMachine"]["Properties"]
    assert _evaluate(machine["Tracing"], template, params) == {"Enabled": on}
    # every function: Globals, and no function overriding them
    mode = _evaluate(template["Globals"]["Function"]["Tracing"], template, params)
    assert mode == ("Active" if on else "PassThrough")
    for name, function in _of_type(template, "AWS::Serverless::Function").items():
        assert "Tracing" not in function["Properties"], f"{name} overrides Globals' Tracing"


@pytest.mark.parametrize(("value", "granted"), [("true", True), ("false", False)])
def test_state_machine_may_write_traces_when_tracing(
    template: dict[str, Any], value: str, granted: bool
) -> None:
    """SAM grants X-Ray to the machine's role only for a literal `Enabled: true`."""
    policies = _evaluate(
        template["Resources"]["AgentStateMachine"]["Properties"]["Policies"],
        template, {"TracingEnabled": value},
    )
    actions = {
        action
        for policy in policies
        for statement in (policy.get("Statement", []) if isinstance(policy, dict) else [])
        for action in statement.get("Action", [])
    }
    assert ("xray:PutTraceSegments" in actions) is granted


# --- logs -------------------------------------------------------------------


def test_log_retention_parameter(template: dict[str, Any]) -> None:
    spec = template["Parameters"]["LogRetentionDays"]
    assert spec["Type"] == "Number"
    assert spec["Default"] == 30
    assert spec["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS


def test_every_function_has_its_log_group_with_the_retention(template: dict[str, Any]) -> None:
    groups = _of_type(template, "AWS::Logs::LogGroup")
    by_name = {json.dumps(g["Properties"]["LogGroupName"]): g for g in groups.values()}
    for name in _of_type(template, "AWS::Serverless::Function"):
        group = by_name.get(json.dumps({"Fn::Sub": f"/aws/lambda/${{{name}}}"}))
        assert group is not None, f"{name} has no AWS::Logs::LogGroup /aws/lambda/${{{name}}}"
        assert group["Properties"]["RetentionInDays"] == RETENTION, name
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays") == RETENTION, name


def _access_log(template: dict[str, Any]) -> dict[str, Any]:
    setting: dict[str, Any] = template["Resources"]["AgentApi"]["Properties"]["AccessLogSetting"]
    return setting


def test_api_access_log_goes_to_a_group_with_the_retention(template: dict[str, Any]) -> None:
    destination = _access_log(template)["DestinationArn"]
    assert destination == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    group = template["Resources"]["ApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == RETENTION
    # API Gateway logs only with the account's CloudWatch role set, before the stage exists.
    assert "ApiGatewayAccount" in template["Resources"]["AgentApi"]["DependsOn"]
    account = template["Resources"]["ApiGatewayAccount"]
    assert account["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]
    }


def _api_gateway_render(format_: str, variables: dict[str, str]) -> str:
    """Substitute $context variables as API Gateway does ("-" for one it has no value for)."""
    return re.sub(r"\$context\.[A-Za-z0-9_.]+",
                  lambda m: variables.get(m.group(0), "-"), format_)


def test_api_access_log_is_one_json_line_with_the_audit_fields(template: dict[str, Any]) -> None:
    format_ = _access_log(template)["Format"]
    assert "\n" not in format_.strip(), "an access log line must be one line"
    # What the authorizer puts into requestContext.authorizer for a live key.
    record = ApiKeyRecord(key_id="key_1", tenant_id="acme", prefix="ops_abc")

    class Keys:
        def lookup(self, key: str) -> ApiKeyRecord:
            return record

    decision = authorize(
        {"Authorization": "Bearer ops_abc"},
        "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1/GET/tasks",
        keys=Keys(),
    )
    variables = {
        f"$context.authorizer.{key}": str(value)
        for key, value in decision.response["context"].items()
    }
    variables.update({
        "$context.requestId": "req-1",
        "$context.resourcePath": "/tasks/{task_id}",
        "$context.httpMethod": "GET",
        "$context.status": "200",
        "$context.responseLatency": "42",
        "$context.integrationLatency": "40",
        "$context.identity.userAgent": "opspawn-cli",
        "$context.identity.sourceIp": "203.0.113.9",
    })
    line = json.loads(_api_gateway_render(format_, variables))
    assert {
        "requestId": "req-1",
        "tenantId": "acme",
        "resourcePath": "/tasks/{task_id}",
        "httpMethod": "GET",
        "status": "200",
        "responseLatency": "42",
        "integrationLatency": "40",
        "userAgent": "opspawn-cli",
        "sourceIp": "203.0.113.9",
    }.items() <= line.items()
    # A request the authorizer never saw (a public route, a 401) still logs valid JSON.
    assert json.loads(_api_gateway_render(format_, {}))["tenantId"] == "-"


# --- data protection ----------------------------------------------------------


def test_every_table_has_point_in_time_recovery(template: dict[str, Any]) -> None:
    tables = _of_type(template, "AWS::DynamoDB::Table")
    assert tables
    for name, table in tables.items():
        spec = table["Properties"].get("PointInTimeRecoverySpecification", {})
        assert spec.get("PointInTimeRecoveryEnabled") is True, name


def test_every_queue_is_encrypted(template: dict[str, Any]) -> None:
    """SSE-SQS: what .checkov.yaml's CKV_AWS_27 skip relies on."""
    queues = _of_type(template, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name


def test_artifacts_bucket_is_versioned_and_old_versions_expire(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ArtifactsBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    noncurrent = [r["NoncurrentVersionExpiration"]["NoncurrentDays"]
                  for r in rules if "NoncurrentVersionExpiration" in r]
    assert noncurrent and max(noncurrent) <= 30
    assert any(r.get("ExpiredObjectDeleteMarker") is True for r in rules)


def test_asynchronously_invoked_functions_have_a_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    """What .checkov.yaml's CKV_AWS_116 skip relies on: EventBridge Scheduler invokes the
    schedules' target asynchronously, so it has a DLQ; the SQS event source's queue has a
    redrive policy; every other function is invoked synchronously."""
    resources = template["Resources"]
    target = resources["SchedulesFunction"]["Properties"]["Environment"]["Variables"][
        "SCHEDULE_TARGET_ARN"
    ]
    assert target == {"Fn::GetAtt": ["StartScheduledTaskFunction", "Arn"]}
    dlq = resources["StartScheduledTaskFunction"]["Properties"]["DeadLetterQueue"]
    assert dlq["Type"] == "SQS"
    assert resources[dlq["TargetArn"]["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"
    for name, function in _of_type(template, "AWS::Serverless::Function").items():
        for event in function["Properties"].get("Events", {}).values():
            assert event["Type"] in {"Api", "SQS"}, f"{name}: review CKV_AWS_116 for it"
            if event["Type"] == "SQS":
                queue = resources[event["Properties"]["Queue"]["Fn::GetAtt"][0]]
                assert "deadLetterTargetArn" in queue["Properties"]["RedrivePolicy"], name


# --- the scan -----------------------------------------------------------------


def _checkov(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """checkov, offline. It also reads a .checkov.yaml in `cwd` on its own."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make scan` (or `make setup`) first")
    env = dict(os.environ, CKV_SKIP_PACKAGE_UPDATE_CHECK="true", BC_SKIP_MAPPING="TRUE")
    return subprocess.run(
        [str(CHECKOV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def test_scan_passes() -> None:
    """`make scan`'s own command."""
    result = _checkov("--config-file", str(CONFIG), "-f", "template.yaml")
    assert result.returncode == 0, f"checkov:\n{result.stdout}\n{result.stderr}"
    assert "Failed checks: 0" in result.stdout


def test_scan_stays_offline() -> None:
    config = _config()
    assert config["skip-download"] is True
    assert config["framework"] == ["cloudformation"]


def test_every_skip_has_one_line_of_reason() -> None:
    skips = _config()["skip-check"]
    assert skips
    lines = {line.strip() for line in CONFIG.read_text().splitlines()}
    for check in skips:
        reasoned = [ln for ln in lines if re.fullmatch(rf"- {check}\s+#\s*\S.{{20,}}", ln)]
        assert len(reasoned) == 1, f"{check}: give one line of reason after it in {CONFIG.name}"


def test_each_skipped_check_still_fails_and_nothing_else_does(tmp_path: Path) -> None:
    """Without its skip list the scan fails exactly the skipped checks: no stale skip, and
    every other finding is fixed in the template rather than skipped."""
    config = _config()
    skips = set(config.pop("skip-check"))
    bare = tmp_path / "checkov.yaml"
    bare.write_text(yaml.safe_dump(config))
    # Run from tmp_path: in the repository checkov would read .checkov.yaml's skips too.
    result = _checkov(
        "--config-file", str(bare), "-f", str(ROOT / "template.yaml"), "-o", "json",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    failed = {c["check_id"] for c in json.loads(result.stdout)["results"]["failed_checks"]}
    assert failed == skips


@pytest.mark.parametrize(
    ("check", "break_template"),
    [
        ("CKV_AWS_21", lambda t: t["Resources"]["ArtifactsBucket"]["Properties"].pop(
            "VersioningConfiguration")),
        ("CKV_AWS_28", lambda t: t["Resources"]["IdempotencyTable"]["Properties"].pop(
            "PointInTimeRecoverySpecification")),
        ("CKV_AWS_76", lambda t: t["Resources"]["AgentApi"]["Properties"].pop(
            "AccessLogSetting")),
    ],
)
def test_scan_fails_on_a_new_finding(
    tmp_path: Path, template: dict[str, Any], check: str, break_template: Any
) -> None:
    broken = copy.deepcopy(template)
    break_template(broken)
    path = tmp_path / "template.json"
    path.write_text(json.dumps(broken))
    result = _checkov("--config-file", str(CONFIG), "-f", str(path), cwd=tmp_path)
    assert result.returncode != 0
    assert check in result.stdout
