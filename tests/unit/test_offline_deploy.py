"""The CloudFormation side of ``python -m opspawn.offline deploy``: what it does with an
existing stack, how it tells a failed update (even one LocalStack reports UPDATE_COMPLETE),
what it reports, and that a failed update never deletes or recreates the stack."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opspawn.offline import deploy
from tests.support.clock import Clock

STACK = "opspawn-x"
STACK_TYPE = "AWS::CloudFormation::Stack"
QUEUE_REASON = (
    "Resource provider operation failed: An error occurred (InvalidParameterValue) when "
    "calling the CreateQueue operation: Can only include alphanumeric characters"
)
STAGE_REASON = (
    "Resource provider operation failed: An error occurred (ConflictException) when "
    "calling the CreateStage operation: Stage already exists"
)


def _event(logical_id: str, status: str, reason: str = "", kind: str = "") -> dict[str, Any]:
    event: dict[str, Any] = {
        "EventId": f"{logical_id}-{status}-{len(reason)}",
        "LogicalResourceId": logical_id,
        "ResourceType": kind or (STACK_TYPE if logical_id == STACK else "AWS::SQS::Queue"),
        "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def _newest_first(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return list(reversed(events))


#: LocalStack 4.8.1 without the plugin's fix: the stage update fails, the "rollback" deletes
#: the stage, and the stack still ends UPDATE_COMPLETE (what `deploy` used to call deployed).
UNPATCHED_FAILED_UPDATE = _newest_first(
    _event(STACK, "UPDATE_IN_PROGRESS"),
    _event("AgentApi", "UPDATE_IN_PROGRESS", kind="AWS::ApiGateway::RestApi"),
    _event("AgentApi", "UPDATE_COMPLETE", kind="AWS::ApiGateway::RestApi"),
    _event("AgentApiStage", "UPDATE_IN_PROGRESS", kind="AWS::ApiGateway::Stage"),
    _event("AgentApiStage", "UPDATE_FAILED", STAGE_REASON, kind="AWS::ApiGateway::Stage"),
    _event(STACK, "UPDATE_FAILED"),
    _event(STACK, "ROLLBACK_IN_PROGRESS"),
    _event("AgentApiStage", "DELETE_COMPLETE", kind="AWS::ApiGateway::Stage"),
    _event(STACK, "ROLLBACK_COMPLETE"),
    _event(STACK, "UPDATE_COMPLETE"),
)
#: With the plugin: the new queue fails, the update is rolled back.
ROLLED_BACK_UPDATE = _newest_first(
    _event(STACK, "UPDATE_IN_PROGRESS"),
    _event("BadQueue", "CREATE_IN_PROGRESS"),
    _event("BadQueue", "CREATE_FAILED", QUEUE_REASON),
    _event(STACK, "UPDATE_ROLLBACK_IN_PROGRESS", f"BadQueue: {QUEUE_REASON}"),
    _event(STACK, "UPDATE_ROLLBACK_COMPLETE", f"BadQueue: {QUEUE_REASON}"),
)
GOOD_UPDATE = _newest_first(
    _event(STACK, "UPDATE_IN_PROGRESS"),
    _event("AgentApiStage", "UPDATE_IN_PROGRESS", kind="AWS::ApiGateway::Stage"),
    _event("AgentApiStage", "UPDATE_COMPLETE", kind="AWS::ApiGateway::Stage"),
    _event(STACK, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
    _event("OldDeployment", "DELETE_IN_PROGRESS", kind="AWS::ApiGateway::Deployment"),
    _event("OldDeployment", "DELETE_COMPLETE", kind="AWS::ApiGateway::Deployment"),
    _event(STACK, "UPDATE_COMPLETE"),
)


@pytest.mark.parametrize(
    ("status", "recreate", "action"),
    [
        (None, False, "create"),
        (None, True, "create"),
        ("CREATE_COMPLETE", False, "update"),
        ("UPDATE_COMPLETE", False, "update"),
        ("UPDATE_ROLLBACK_COMPLETE", False, "update"),
        ("UPDATE_COMPLETE", True, "recreate"),
        ("ROLLBACK_COMPLETE", False, "recreate"),
        ("CREATE_FAILED", False, "recreate"),
        ("UPDATE_ROLLBACK_FAILED", False, "refuse"),
        ("UPDATE_FAILED", False, "refuse"),
        ("DELETE_FAILED", False, "refuse"),
        ("UPDATE_ROLLBACK_FAILED", True, "recreate"),
    ],
)
def test_stack_action(status: str | None, recreate: bool, action: str) -> None:
    assert deploy.stack_action(status, recreate=recreate) == action


def test_a_failed_update_reported_update_complete_is_a_failure() -> None:
    assert deploy.update_failed(UNPATCHED_FAILED_UPDATE, STACK)
    assert deploy.failed_resources(UNPATCHED_FAILED_UPDATE, STACK) == ["AgentApiStage"]
    report = deploy.format_failures(UNPATCHED_FAILED_UPDATE, STACK)
    assert report == f"  AgentApiStage (AWS::ApiGateway::Stage): UPDATE_FAILED: {STAGE_REASON}"


def test_a_rolled_back_update_names_the_resource_once() -> None:
    assert deploy.update_failed(ROLLED_BACK_UPDATE, STACK)
    assert deploy.failed_resources(ROLLED_BACK_UPDATE, STACK) == ["BadQueue"]
    assert deploy.format_failures(ROLLED_BACK_UPDATE, STACK).splitlines() == [
        f"  BadQueue (AWS::SQS::Queue): CREATE_FAILED: {QUEUE_REASON}"
    ]


def test_a_good_update_is_not_a_failure() -> None:
    assert not deploy.update_failed(GOOD_UPDATE, STACK)
    assert deploy.failed_events(GOOD_UPDATE, STACK) == []
    assert deploy.format_failures(GOOD_UPDATE, STACK) == "  (no failed resource events)"


def test_a_cleanup_delete_failure_alone_does_not_fail_the_update() -> None:
    events = [_event("OldLayer", "DELETE_FAILED", "in use"), *GOOD_UPDATE]
    assert not deploy.update_failed(events, STACK)
    assert deploy.failed_resources(events, STACK) == ["OldLayer"]


def test_stack_reasons_stand_in_when_no_resource_failed() -> None:
    events = _newest_first(
        _event(STACK, "UPDATE_IN_PROGRESS"),
        _event(STACK, "UPDATE_ROLLBACK_IN_PROGRESS", "Template error: bad Ref"),
        _event(STACK, "UPDATE_ROLLBACK_COMPLETE", "Template error: bad Ref"),
    )
    assert deploy.update_failed(events, STACK)
    assert deploy.failed_resources(events, STACK) == []
    lines = deploy.format_failures(events, STACK).splitlines()
    assert lines == [
        f"  {STACK} ({STACK_TYPE}): UPDATE_ROLLBACK_IN_PROGRESS: Template error: bad Ref",
        f"  {STACK} ({STACK_TYPE}): UPDATE_ROLLBACK_COMPLETE: Template error: bad Ref",
    ]


def test_the_report_is_capped() -> None:
    events = [_event(f"Queue{i}", "CREATE_FAILED", "no") for i in range(25)]
    lines = deploy.format_failures(events, STACK, limit=20).splitlines()
    assert len(lines) == 21 and lines[-1] == "  ... and 5 more"
    assert lines[0].startswith("  Queue24 ")  # oldest first (events come newest first)


def test_recovery_advice() -> None:
    rolled_back = deploy.recovery_advice(STACK, "UPDATE_ROLLBACK_COMPLETE")
    assert "rolled it back" in rolled_back and "data are kept" in rolled_back
    assert f"deploy --stack-name {STACK} --recreate" in rolled_back
    assert "AND ITS DATA" in rolled_back
    assert "python -m opspawn.offline down` then `up`" in rolled_back
    assert "deploy` again" in rolled_back
    stuck = deploy.recovery_advice(STACK, "UPDATE_ROLLBACK_FAILED", can_update=False)
    assert "half updated" in stuck and "deploy` again" not in stuck


# ---- _update against a scripted CloudFormation ----------------------------------------------
class FakeCfn:
    """UpdateStack followed by the given statuses (the last repeats) and events."""

    def __init__(self, statuses: list[str], events: list[dict[str, Any]]) -> None:
        self.statuses = itertools.chain(statuses, itertools.repeat(statuses[-1]))
        self.old = [_event(STACK, "CREATE_COMPLETE")]
        self.events = self.old
        self.new_events = events
        self.calls: list[str] = []
        self.refuse: str | None = None

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"StackStatus": next(self.statuses)}]}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {"StackEvents": self.events}

    def get_paginator(self, name: str) -> Any:
        assert name == "describe_stack_events"
        cfn = self

        class Pages:
            def paginate(self, StackName: str) -> list[dict[str, Any]]:
                return [{"StackEvents": cfn.events}]

        return Pages()

    def update_stack(self, **kwargs: Any) -> None:
        self.calls.append("update_stack")
        if self.refuse:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": self.refuse}}, "UpdateStack"
            )
        self.events = self.new_events + self.old

    def list_stack_resources(self, StackName: str) -> dict[str, Any]:
        return {"StackResourceSummaries": []}

    def get_template(self, **kwargs: Any) -> dict[str, Any]:
        return {"TemplateBody": {"Resources": {}}}

    def delete_stack(self, **kwargs: Any) -> None:  # pragma: no cover - must not happen
        self.calls.append("delete_stack")

    def create_stack(self, **kwargs: Any) -> None:  # pragma: no cover - must not happen
        self.calls.append("create_stack")


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(1000.0)
    monkeypatch.setattr(deploy, "time", clock)
    return clock


def _update(cfn: FakeCfn) -> bool:
    kwargs = {"StackName": STACK, "TemplateBody": "{}", "Parameters": [], "Capabilities": []}
    return deploy._update(cfn, kwargs, "CREATE_COMPLETE", 60.0, Path("/tmp/localstack.log"))


def test_update_that_lies_update_complete_raises_and_keeps_the_stack() -> None:
    cfn = FakeCfn(["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"], UNPATCHED_FAILED_UPDATE)
    with pytest.raises(deploy.DeployError) as info:
        _update(cfn)
    assert info.value.failed_resources == ["AgentApiStage"]
    message = str(info.value)
    assert "AgentApiStage (AWS::ApiGateway::Stage): UPDATE_FAILED: " in message
    assert "Stage already exists" in message and "--recreate" in message
    assert "now UPDATE_COMPLETE" in message and "half updated" in message
    assert cfn.calls == ["update_stack"]  # no delete, no silent recreate


def test_rolled_back_update_raises_with_the_reason() -> None:
    cfn = FakeCfn(
        ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"],
        ROLLED_BACK_UPDATE,
    )
    with pytest.raises(deploy.DeployError) as info:
        _update(cfn)
    assert info.value.failed_resources == ["BadQueue"]
    assert "now UPDATE_ROLLBACK_COMPLETE" in str(info.value)
    assert "Can only include alphanumeric characters" in str(info.value)
    assert cfn.calls == ["update_stack"]


def test_events_before_the_update_do_not_count() -> None:
    cfn = FakeCfn(["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"], GOOD_UPDATE)
    cfn.old = [*ROLLED_BACK_UPDATE, _event(STACK, "CREATE_COMPLETE")]  # an earlier failure
    cfn.events = cfn.old
    assert _update(cfn) is True


def test_no_changes_and_refused_updates() -> None:
    cfn = FakeCfn(["UPDATE_COMPLETE"], [])
    cfn.refuse = "No updates are to be performed."
    assert _update(cfn) is False
    cfn.refuse = "Template format error: unresolved Ref Nope"
    with pytest.raises(deploy.DeployError, match=r"refused .*the stack is unchanged.*Nope"):
        _update(cfn)
    assert cfn.calls == ["update_stack", "update_stack"]


def test_a_template_over_cloudformation_s_inline_limit_is_read_from_s3() -> None:
    """CloudFormation refuses a TemplateBody over 51,200 bytes (LocalStack too); like `sam
    deploy`, a larger template goes to the artifacts bucket and is passed as TemplateURL."""
    from opspawn.offline.deploy import ARTIFACT_BUCKET, TEMPLATE_BODY_MAX_BYTES, template_source

    class RecordingS3:
        def __init__(self) -> None:
            self.puts: list[dict[str, Any]] = []

        def put_object(self, **kwargs: Any) -> None:
            self.puts.append(kwargs)

    s3 = RecordingS3()
    small = "x" * TEMPLATE_BODY_MAX_BYTES
    assert template_source(small, s3, "http://127.0.0.1:4566", STACK) == {"TemplateBody": small}
    assert s3.puts == []
    large = small + "x"
    source = template_source(large, s3, "http://127.0.0.1:4566", STACK)
    [put] = s3.puts
    assert put["Bucket"] == ARTIFACT_BUCKET and put["Body"] == large.encode()
    assert source == {"TemplateURL": f"http://127.0.0.1:4566/{ARTIFACT_BUCKET}/{put['Key']}"}
