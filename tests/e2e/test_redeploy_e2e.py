"""Redeploying the stack with a changed REST API updates it in place (issue 8).

On its own stack (``opspawn-redeploy``; the shared ``opspawn`` stack is untouched):

* a redeploy changing ``AuthorizerCacheTtlSeconds`` (the API's OpenAPI body, a new API
  deployment, the stage moved onto it) ends UPDATE_COMPLETE with the same API and table, its
  outputs, an API that answers, the data written before, and the new TTL in force;
* an update that fails (a template with an invalid queue name) makes
  ``python -m opspawn.offline deploy`` exit non-zero naming the resource and its reason, and
  LocalStack rolls the stack back (API, stage and data as before); the good template then
  deploys again.

LocalStack 4.8.1 needs the plugin's fixes (localstack-plugin/opspawn_localstack/cfn_fixes.py)
for all of this: without them the update failed at the stage, deleted it, and `deploy` still
said "deployed".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opspawn.admin import key_store
from opspawn.offline import deploy as offline_deploy
from opspawn.offline.paths import REPO_ROOT, Layout
from opspawn.offline.stack import LocalStackSession, StackOutputs, boto3_client

pytestmark = pytest.mark.e2e

STACK = "opspawn-redeploy"
TEMPLATE = REPO_ROOT / "template.yaml"
BASE_PARAMETERS = {"ScriptedModelEnabled": "true", "AuthorizerCacheTtlSeconds": "60"}
BAD_QUEUE = "OpspawnBadQueue"


class _Deployer:
    """Deploys STACK in-process (its outputs go to outputs-<STACK>.json: the instance's
    outputs.json, which the CLI and admin tests of the shared stack read, is untouched)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def __call__(self, template: Path, parameters: dict[str, str]) -> StackOutputs:
        return offline_deploy.deploy(template, parameters, stack_name=STACK)


def _stack(name: str = STACK) -> dict[str, Any]:
    stack: dict[str, Any] = boto3_client("cloudformation").describe_stacks(StackName=name)[
        "Stacks"
    ][0]
    return stack


def _parameter(name: str) -> str:
    params = {p["ParameterKey"]: p["ParameterValue"] for p in _stack()["Parameters"]}
    return str(params[name])


def _delete_stack() -> None:
    cfn = boto3_client("cloudformation")
    cfn.delete_stack(StackName=STACK)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        stacks = [
            s
            for s in cfn.describe_stacks()["Stacks"]
            if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"
        ]
        if not stacks or not stacks[0]["StackStatus"].endswith("_IN_PROGRESS"):
            return
        time.sleep(1)


@pytest.fixture(scope="module")
def deployer(
    localstack: LocalStackSession,
) -> Iterator[_Deployer]:
    default_outputs = Layout.current().outputs_file
    before = default_outputs.read_text() if default_outputs.exists() else None
    run = _Deployer(localstack.endpoint_url)
    try:
        run(TEMPLATE, BASE_PARAMETERS)
    except Exception as exc:
        pytest.fail(f"deploying {STACK} failed: {exc}", pytrace=False)
    try:
        yield run
    finally:
        _delete_stack()
    after = default_outputs.read_text() if default_outputs.exists() else None
    assert after == before, "a deploy of another stack overwrote the default stack's outputs"


def _get(url: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(url, headers=headers, timeout=60)


def _api_answers(outputs: StackOutputs, key: str) -> None:
    assert outputs.api_url
    assert _get(f"{outputs.api_url}/openapi.json").status_code == 200
    tasks = _get(f"{outputs.api_url}/tasks", key)
    assert tasks.status_code == 200, tasks.text
    assert isinstance(tasks.json().get("items"), list)


def _current(run: _Deployer) -> StackOutputs:
    """The stack's outputs as LocalStack has them now."""
    return offline_deploy.collect_outputs(
        STACK, run.endpoint, boto3_client("apigateway"), boto3_client("cloudformation")
    )


def test_redeploy_with_a_changed_api_updates_in_place(deployer: _Deployer) -> None:
    before = _current(deployer)
    assert _parameter("AuthorizerCacheTtlSeconds") == "60"
    store = key_store(endpoint=before.endpoint_url, table=before.outputs["TableName"])
    kept = store.create("redeploy-kept", description="written before the redeploy")
    cached = store.create("redeploy-cached")
    _api_answers(before, kept.key)
    assert _get(f"{before.api_url}/tasks", cached.key).status_code == 200
    store.revoke(cached.record.key_id)
    # TTL 60: the authorizer's answer is cached, the revoked key still passes
    assert _get(f"{before.api_url}/tasks", cached.key).status_code == 200

    after = deployer(TEMPLATE, {**BASE_PARAMETERS, "AuthorizerCacheTtlSeconds": "0"})

    assert _stack()["StackStatus"] == "UPDATE_COMPLETE"
    assert _parameter("AuthorizerCacheTtlSeconds") == "0"
    for name in ("ApiId", "ApiUrl", "ApiStage", "TableName", "StateMachineArn", "ToolQueueUrl"):
        assert after.outputs.get(name), f"output {name} missing after the update"
    # in place: same API, same table, same functions (nothing deleted and created again)
    assert after.api_id == before.api_id and after.api_stage == before.api_stage
    assert after.outputs["TableName"] == before.outputs["TableName"]
    assert after.resources["TasksTable"] == before.resources["TasksTable"]
    assert after.resources["TasksFunction"] == before.resources["TasksFunction"]
    stages = boto3_client("apigateway").get_stages(restApiId=after.api_id)["item"]
    assert [s["stageName"] for s in stages if s["stageName"] != "Stage"] == [after.api_stage]

    # the data written before is there, and the API answers with it
    _api_answers(after, kept.key)
    records = {r.key_id: r for r in store.list_keys("redeploy-kept")}
    assert records[kept.record.key_id].description == "written before the redeploy"
    assert [r.revoked for r in store.list_keys("redeploy-cached")] == [True]

    # TTL 0 is in force: a key revoked now is refused at once
    fresh = store.create("redeploy-fresh")
    assert _get(f"{after.api_url}/tasks", fresh.key).status_code == 200
    store.revoke(fresh.record.key_id)
    refused = _get(f"{after.api_url}/tasks", fresh.key)
    assert refused.status_code == 403
    # the update re-imported the API (PutRestApi, overwrite): its gateway responses still apply
    assert refused.json()["error"] == "forbidden", refused.text


def _bad_template(directory: Path) -> Path:
    """template.yaml plus a queue whose name SQS refuses, created after the API's stage (so the
    update has changed the API when it fails). Local paths made absolute for the copy."""
    doc = offline_deploy.load_template(TEMPLATE)
    functions = (doc.get("Globals") or {}).get("Function") or {}
    if isinstance(functions.get("CodeUri"), str):
        functions["CodeUri"] = str(REPO_ROOT / functions["CodeUri"])
    for resource in doc["Resources"].values():
        rule = offline_deploy.ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if rule and isinstance(props.get(rule[0]), str):
            props[rule[0]] = str(REPO_ROOT / props[rule[0]])
    doc["Resources"][BAD_QUEUE] = {
        "Type": "AWS::SQS::Queue",
        "DependsOn": ["AgentApiStage"],
        "Properties": {"QueueName": "not a valid queue name!"},
    }
    path = directory / "template-bad-queue.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_failed_update_exits_non_zero_and_rolls_back(deployer: _Deployer, tmp_path: Path) -> None:
    before = _current(deployer)
    ttl = _parameter("AuthorizerCacheTtlSeconds")
    parameters = {**BASE_PARAMETERS, "AuthorizerCacheTtlSeconds": ttl}
    changed_ttl = "30" if ttl != "30" else "45"
    apigw = boto3_client("apigateway")
    stage = apigw.get_stage(restApiId=before.api_id, stageName=before.api_stage)
    store = key_store(endpoint=before.endpoint_url, table=before.outputs["TableName"])
    kept = store.create("redeploy-rollback", description="written before the failed update")

    changed = {**parameters, "AuthorizerCacheTtlSeconds": changed_ttl}
    overrides = [f"{key}={value}" for key, value in changed.items()]
    run = subprocess.run(
        [sys.executable, "-m", "opspawn.offline", "deploy", "--template",
         str(_bad_template(tmp_path)), "--stack-name", STACK, *overrides],
        capture_output=True, text=True, timeout=600, env=os.environ.copy(), cwd=REPO_ROOT,
    )  # fmt: skip

    assert run.returncode != 0, run.stdout + run.stderr
    assert "deployed" not in run.stdout + run.stderr
    error = run.stderr
    assert f"updating stack {STACK} failed (now UPDATE_ROLLBACK_COMPLETE)" in error
    assert f"{BAD_QUEUE} (AWS::SQS::Queue): CREATE_FAILED" in error
    assert "Can only include alphanumeric characters" in error  # SQS's reason
    assert "--recreate" in error and "data are kept" in error

    # rolled back: previous parameters, same stage on the same deployment, data and API intact
    assert _stack()["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert _parameter("AuthorizerCacheTtlSeconds") == ttl
    after = _current(deployer)
    assert BAD_QUEUE not in after.resources
    assert after.api_id == before.api_id
    assert after.outputs["TableName"] == before.outputs["TableName"]
    restored = apigw.get_stage(restApiId=after.api_id, stageName=after.api_stage)
    assert restored["deploymentId"] == stage["deploymentId"]
    ttls = {a.get("authorizerResultTtlInSeconds") for a in apigw.get_authorizers(
        restApiId=after.api_id)["items"]}  # fmt: skip
    assert ttls == {int(ttl)}
    _api_answers(after, kept.key)
    assert [r.description for r in store.list_keys("redeploy-rollback")] == [
        "written before the failed update"
    ]

    # and the stack still updates
    again = deployer(TEMPLATE, changed)
    assert _stack()["StackStatus"] == "UPDATE_COMPLETE"
    assert _parameter("AuthorizerCacheTtlSeconds") == changed_ttl
    _api_answers(again, kept.key)
