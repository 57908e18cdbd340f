"""Fixtures of the moto tier shared across its folders."""

from __future__ import annotations

import json

import boto3
import pytest

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def state_machine_arn(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A one-state machine on moto, named in STATE_MACHINE_ARN as the functions read it."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="agent", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    return str(arn)
