"""Traces, metrics, alarms and the dashboard in template.yaml (issue 13).

Tracing off must reach the handlers (POWERTOOLS_TRACE_DISABLED, which their @traced reads);
the alarms watch the metrics the code writes (names, namespace, the service dimension) and
notify the optional AlarmTopicArn; the dashboard's body is valid JSON once substituted and
names only metrics that exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentkit.observability import metrics
from tests.support.aws import ROOT, load_template

#: Metric names agentkit.observability.metrics writes.
WRITTEN = {value for name, value in vars(metrics).items()
           if name.isupper() and isinstance(value, str)}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in template["Resources"].items()
            if res["Type"] == "AWS::CloudWatch::Alarm"}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in template["Resources"].items()
            if res["Type"] == "AWS::Serverless::Function"}


def test_tracing_off_reaches_every_handler(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["IsTracingEnabled", "false", "true"]}
    assert template["Conditions"]["IsTracingEnabled"] == {
        "Fn::Equals": [{"Ref": "TracingEnabled"}, "true"]}
    for name, properties in _functions(template).items():
        app = (ROOT / properties["CodeUri"] / "app.py").read_text()
        assert "\n@traced\n" in app, f"{name}'s handler is not @traced"


def test_the_layer_ships_the_xray_sdk_pinned_as_the_venv_runs_it() -> None:
    from importlib.metadata import version

    layer = ROOT / "layers" / "agentkit"
    requirements = (layer / "requirements.txt").read_text()
    # without its dependencies: a botocore in the layer would shadow the runtime's
    assert f"aws-xray-sdk=={version('aws-xray-sdk')}" in (
        layer / "requirements-nodeps.txt").read_text()
    assert "requirements-nodeps.txt" in (layer / "Makefile").read_text()
    assert not [line for line in requirements.splitlines() if line.startswith("aws-xray-sdk")]
    assert f"wrapt=={version('wrapt')}" in requirements


def test_every_alarm_notifies_the_optional_topic(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["AlarmTopicArn"]
    assert parameter["Type"] == "String" and parameter["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = _alarms(template)
    assert len(alarms) == 5
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == notify and alarm["OKActions"] == notify, name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_the_alarms_watch_what_the_issue_names(template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    watched = {(a.get("Namespace"), a.get("MetricName")): a for a in alarms.values()}
    # dead-letter queues not empty: both of them
    queues = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms.values()
              if a.get("Namespace") == "AWS/SQS"}
    assert queues == {"ToolDeadLetterQueue", "ScheduledTaskDeadLetterQueue"}
    assert all(a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold"
               for a in alarms.values() if a.get("Namespace") == "AWS/SQS")
    # executions failing (or timing out) on the agent state machine
    failing = alarms["ExecutionsFailingAlarm"]["Metrics"]
    stats = {m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"]["Metric"]
             for m in failing if "MetricStat" in m}
    assert set(stats) == {"ExecutionsFailed", "ExecutionsTimedOut"}
    assert all(s["Dimensions"] == [{"Name": "StateMachineArn",
                                    "Value": {"Ref": "AgentStateMachine"}}]
               for s in stats.values())
    # a provider's breaker open; a task waiting on its providers for long
    breaker = watched[("Opspawn", metrics.BREAKER_OPEN)]
    assert breaker["Statistic"] == "Sum" and breaker["Threshold"] == 1
    waited = watched[("Opspawn", metrics.TASK_WAITED)]
    assert waited["Statistic"] == "Maximum"
    assert waited["Threshold"] == {"Ref": "ProviderWaitAlarmSeconds"}


def test_custom_metric_alarms_match_what_the_functions_write(template: dict[str, Any]) -> None:
    """Namespace and service dimension as the functions set them (an alarm on a metric
    nobody writes would never fire)."""
    service = template["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_SERVICE_NAME"]
    namespaces = {p.get("Environment", {}).get("Variables", {}).get(
        "POWERTOOLS_METRICS_NAMESPACE") for p in _functions(template).values()} - {None}
    assert namespaces == {"Opspawn"}
    # the functions that write model-call, wait and task metrics have the namespace
    for name in ("CallModelFunction", "FinalizeFunction"):
        variables = _functions(template)[name]["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Opspawn", name
    for alarm in _alarms(template).values():
        if alarm.get("Namespace") == "Opspawn":
            assert alarm["MetricName"] in WRITTEN
            assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]


def _substituted_dashboard(template: dict[str, Any]) -> str:
    body = template["Resources"]["OpsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    resources = set(template["Resources"])
    for placeholder in re.findall(r"\$\{([^}]+)\}", body):
        assert placeholder.startswith("AWS::") or placeholder.split(".")[0] in resources, (
            placeholder)
    return re.sub(r"\$\{([^}]+)\}", lambda m: m.group(1).replace(":", "-"), body)


def test_the_dashboard_is_valid_and_shows_only_written_metrics(template: dict[str, Any]) -> None:
    body = json.loads(_substituted_dashboard(template))
    widgets = body["widgets"]
    text = json.dumps(widgets)
    opspawn = set(re.findall(r'\["Opspawn", "(\w+)"', text))
    opspawn |= set(re.findall(r'\{Opspawn,[\w,]+\} MetricName=\\"(\w+)\\"', text))
    opspawn |= set(re.findall(r'OR MetricName=\\"(\w+)\\"', text))
    assert opspawn and opspawn <= WRITTEN, opspawn - WRITTEN
    # every alarm is on it
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(_alarms(template))
    # the model calls' tokens, cost, latency, errors; tasks' outcome, duration, turns
    for name in (metrics.INPUT_TOKENS, metrics.OUTPUT_TOKENS, metrics.MODEL_COST,
                 metrics.MODEL_LATENCY, metrics.MODEL_ERRORS, metrics.TASKS_ENDED,
                 metrics.TASK_DURATION, metrics.TASK_TURNS):
        assert name in opspawn, name
    assert Path(ROOT / "template.yaml").read_text().count("OpsDashboard") >= 2  # an output
