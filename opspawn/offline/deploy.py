"""Deploy the project's SAM template onto the offline LocalStack.

The fastest path proven here (shared OFFLINE.md): zip each function's ``CodeUri`` and each
layer's ``ContentUri``, upload them and the state machine ASL to a LocalStack S3 bucket,
point the template at those S3 objects and call CloudFormation with the ``Transform`` left
untouched (LocalStack runs the SAM translator itself). No ``sam build``, no Docker.

Layers: a ``ContentUri`` that already holds ``python/`` is zipped as it is; otherwise its
content is zipped under ``python/`` (so ``layers/agentkit/agentkit`` becomes
``python/agentkit/...``, what ``BuildMethod: makefile`` produces on AWS). Third-party
requirements of a layer (``requirements.txt``) are NOT vendored into the zip: offline, the
executor runs every function on the project's venv interpreter, which already has them
installed, and puts the layer's ``python/`` in front of it, so the layer's own code wins.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from opspawn.offline.console import progress, say
from opspawn.offline.install import tail
from opspawn.offline.paths import DEFAULT_STACK_NAME, REPO_ROOT, Layout, endpoint_url
from opspawn.offline.server import running_port
from opspawn.offline.stack import StackOutputs, boto3_client

ARTIFACT_BUCKET = "opspawn-offline-artifacts"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
#: never shipped in a code or layer zip
SKIP_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store"}
SKIP_IN_LAYER = {"Makefile", "requirements.txt", "requirements-dev.txt"}
#: resource type -> (property naming a local artifact, how to package it, location style)
ARTIFACT_PROPERTIES: dict[str, tuple[str, str, str]] = {
    "AWS::Serverless::Function": ("CodeUri", "code", "sam"),
    "AWS::Serverless::LayerVersion": ("ContentUri", "layer", "sam"),
    "AWS::Serverless::StateMachine": ("DefinitionUri", "file", "sam"),
    "AWS::Serverless::Api": ("DefinitionUri", "file", "sam"),
    "AWS::Lambda::Function": ("Code", "code", "cfn"),
    "AWS::Lambda::LayerVersion": ("Content", "layer", "cfn"),
    "AWS::StepFunctions::StateMachine": ("DefinitionS3Location", "file", "sam"),
}
GOOD_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}


class DeployError(RuntimeError):
    """The stack did not deploy; the message holds the failed resources' reasons."""


# ---- template loading ------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """YAML loader turning CloudFormation short forms (!Ref, !GetAtt, !Sub...) into long forms
    and keeping dates (AWSTemplateFormatVersion) as strings."""


def _construct_intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)
_CfnLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),
)


def load_template(path: Path) -> dict[str, Any]:
    text = path.read_text()
    # _CfnLoader is a SafeLoader subclass
    doc = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_CfnLoader)
    if not isinstance(doc, dict) or "Resources" not in doc:
        raise DeployError(f"{path} is not a CloudFormation/SAM template (no Resources)")
    return doc


# ---- packaging -------------------------------------------------------------------------------
def _walk(src: Path) -> Iterator[Path]:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP_NAMES for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            yield path


def zip_dir(src: Path, prefix: str = "", skip_top: frozenset[str] = frozenset()) -> bytes:
    """A deterministic zip (fixed timestamps, sorted entries) of ``src`` under ``prefix``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in _walk(src):
            rel = path.relative_to(src)
            if rel.parts[0] in skip_top:
                continue
            info = zipfile.ZipInfo(prefix + rel.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def layer_zip(src: Path) -> bytes:
    """Lambda layer zip: ``src`` as-is if it holds ``python/``, else its content under python/."""
    if (src / "python").is_dir():
        return zip_dir(src)
    return zip_dir(src, prefix="python/", skip_top=frozenset(SKIP_IN_LAYER))


class _Uploader:
    def __init__(self, s3: Any, bucket: str, stack_name: str, base: Path) -> None:
        self.s3, self.bucket, self.stack_name, self.base = s3, bucket, stack_name, base
        self.count = 0

    def local(self, uri: Any) -> Path | None:
        """The local path a *Uri property names, or None if it is not a local path."""
        if not isinstance(uri, str) or uri.startswith(("s3://", "http://", "https://")):
            return None
        path = (self.base / uri).resolve()
        if not path.exists():
            raise DeployError(f"{uri} (relative to {self.base}) does not exist")
        return path

    def put(self, logical_id: str, data: bytes, suffix: str) -> str:
        digest = hashlib.sha256(data).hexdigest()[:20]
        key = f"{self.stack_name}/{logical_id}-{digest}{suffix}"
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        self.count += 1
        return key

    def code(self, logical_id: str, uri: Any) -> str | None:
        path = self.local(uri)
        if path is None:
            return None
        if path.is_file() and path.suffix in (".zip", ".jar"):
            return self.put(logical_id, path.read_bytes(), path.suffix)
        return self.put(logical_id, zip_dir(path), ".zip")

    def layer(self, logical_id: str, uri: Any) -> str | None:
        path = self.local(uri)
        if path is None:
            return None
        data = path.read_bytes() if path.is_file() else layer_zip(path)
        return self.put(logical_id, data, ".zip")

    def file(self, logical_id: str, uri: Any) -> str | None:
        path = self.local(uri)
        if path is None:
            return None
        return self.put(logical_id, path.read_bytes(), path.suffix)


def package(template: dict[str, Any], base: Path, s3: Any, bucket: str, stack_name: str) -> int:
    """Upload local artifacts and rewrite the template to their S3 locations, in place.
    Returns how many artifacts the template references."""
    up = _Uploader(s3, bucket, stack_name, base)

    def sam_loc(key: str) -> dict[str, str]:
        return {"Bucket": bucket, "Key": key}

    def cfn_loc(key: str) -> dict[str, str]:
        return {"S3Bucket": bucket, "S3Key": key}

    uploads = {"code": up.code, "layer": up.layer, "file": up.file}
    globals_fn = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_fn, dict):
        key = up.code("Globals", globals_fn.get("CodeUri"))
        if key:
            globals_fn["CodeUri"] = sam_loc(key)
    for logical_id, resource in template["Resources"].items():
        rule = ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if rule is None or "InlineCode" in props:
            continue
        prop, how, style = rule
        key = uploads[how](logical_id, props.get(prop))
        if key:
            props[prop] = sam_loc(key) if style == "sam" else cfn_loc(key)
    return up.count


def stringify_number_refs(template: dict[str, Any]) -> int:
    """LocalStack 4.8.1 resolves ``Ref`` to a ``Number`` parameter as an int (AWS gives a
    string), and its state machine provider then fails on ``DefinitionSubstitutions``
    ("replace() argument 2 must be str, not int"). Rewrite those refs to ``Fn::Join`` (LocalStack's
    ``Fn::Sub`` turns digits back into an int), the same string on AWS. Returns the count."""
    numbers = {
        name
        for name, spec in (template.get("Parameters") or {}).items()
        if isinstance(spec, dict) and spec.get("Type") == "Number"
    }
    count = 0
    for resource in template["Resources"].values():
        subs = (resource.get("Properties") or {}).get("DefinitionSubstitutions")
        if not isinstance(subs, dict):
            continue
        for key, value in subs.items():
            if isinstance(value, dict) and value.get("Ref") in numbers:
                subs[key] = {"Fn::Join": ["", [value]]}
                count += 1
    return count


# ---- CloudFormation --------------------------------------------------------------------------
def _stack_status(cfn: Any, stack_name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    status = stacks[0]["StackStatus"] if stacks else None
    return None if status == "DELETE_COMPLETE" else status


def _count_total(cfn: Any, stack_name: str) -> int | None:
    try:
        body = cfn.get_template(StackName=stack_name, TemplateStage="Processed")["TemplateBody"]
        doc = json.loads(body) if isinstance(body, str) else body
        return len(doc.get("Resources", {}))
    except (ClientError, ValueError, AttributeError):
        return None


def _wait(cfn: Any, stack_name: str, action: str, timeout: float) -> str:
    """Poll until the stack leaves *_IN_PROGRESS, printing done/total resources."""
    started = time.monotonic()
    total: int | None = None
    last_total = 0.0
    while True:
        status = _stack_status(cfn, stack_name)
        if status is None:
            raise DeployError(f"stack {stack_name} vanished during {action}")
        done = 0
        if action in ("create", "update"):
            if total is None or time.monotonic() - last_total > 3.0:
                # GetTemplate(Processed) answers 500 until the transform ran: ask rarely
                total, last_total = _count_total(cfn, stack_name) or total, time.monotonic()
            try:
                summaries = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
            except ClientError:
                summaries = []
            done = sum(
                1
                for r in summaries
                if r["ResourceStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            )
            total = max(total or 0, len(summaries)) or None
        elapsed = time.monotonic() - started
        counts = f" {done}/{total} resources" if total else ""
        if not status.endswith("_IN_PROGRESS"):
            progress(f"{stack_name}: {status}{counts} ({elapsed:.1f} s)", final=True)
            return status
        if elapsed > timeout:
            raise DeployError(f"stack {stack_name} still {status} after {timeout:.0f} s")
        progress(f"{stack_name}: {status}{counts} ({elapsed:.1f} s)")
        time.sleep(0.5)


def _failure_report(cfn: Any, stack_name: str) -> str:
    lines: list[str] = []
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        events = []
    for event in events:
        if event.get("ResourceStatus", "").endswith("FAILED"):
            lines.append(
                f"  {event.get('LogicalResourceId')} ({event.get('ResourceType')}): "
                f"{event.get('ResourceStatus')} {event.get('ResourceStatusReason', '')}"
            )
    return "\n".join(lines[:20]) or "  (no failed resource events)"


def _delete(cfn: Any, stack_name: str, timeout: float) -> None:
    status = _stack_status(cfn, stack_name)
    if status and status.endswith("_IN_PROGRESS"):
        say(f"stack {stack_name} is {status}: waiting for it to settle")
        _wait(cfn, stack_name, "settle", timeout)
    for attempt in (1, 2):
        say(f"deleting stack {stack_name}")
        cfn.delete_stack(StackName=stack_name)
        started = time.monotonic()
        while (status := _stack_status(cfn, stack_name)) is not None:
            elapsed = time.monotonic() - started
            # right after the call the old (failed) status may still show: give it a moment
            settled = not status.endswith("_IN_PROGRESS") and elapsed > 3.0
            if settled or elapsed > timeout:
                break
            progress(f"{stack_name}: {status} ({elapsed:.1f} s)")
            time.sleep(0.5)
        if status is None:
            progress(f"{stack_name}: deleted ({time.monotonic() - started:.1f} s)", final=True)
            return
        if attempt == 2:
            raise DeployError(
                f"stack {stack_name} could not be deleted ({status}):\n"
                f"{_failure_report(cfn, stack_name)}\n"
                "LocalStack keeps no state across restarts: `python -m opspawn.offline down` "
                "then `up` gives a clean slate"
            )


def _parameters(template: dict[str, Any], parameters: dict[str, str]) -> list[dict[str, str]]:
    declared = template.get("Parameters") or {}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        say(f"WARNING: template has no parameter(s) {', '.join(unknown)}: not passed")
    return [
        {"ParameterKey": key, "ParameterValue": str(value)}
        for key, value in parameters.items()
        if key in declared
    ]


# ---- outputs ---------------------------------------------------------------------------------
def collect_outputs(stack_name: str, endpoint: str, apigw: Any, cfn: Any) -> StackOutputs:
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in stack.get("Outputs", [])}
    resources: dict[str, str] = {}
    types: dict[str, str] = {}
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for r in page["StackResourceSummaries"]:
            resources[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
            types[r["LogicalResourceId"]] = r["ResourceType"]
    api_id = outputs.get("ApiId")
    stage = outputs.get("ApiStage")
    if not api_id:
        apis = sorted(lid for lid, kind in types.items() if kind == "AWS::ApiGateway::RestApi")
        preferred = [lid for lid in ("Api", "RestApi", "ServerlessRestApi") if lid in apis]
        chosen = (preferred or apis or [None])[0]
        api_id = resources.get(chosen) if chosen else None
    if api_id and not stage:
        try:
            names = [s["stageName"] for s in apigw.get_stages(restApiId=api_id).get("item", [])]
        except ClientError:
            names = []
        real = [n for n in names if n != "Stage"]
        stage = (real or names or [None])[0]
    api_url = f"{endpoint}/_aws/execute-api/{api_id}/{stage}" if api_id and stage else None
    return StackOutputs(
        stack_name=stack_name,
        endpoint_url=endpoint,
        api_id=api_id,
        api_stage=stage,
        api_url=api_url,
        outputs=outputs,
        resources=resources,
    )


def deploy(
    template_path: str | Path | None = None,
    parameters: dict[str, str] | None = None,
    stack_name: str | None = None,
    *,
    port: int | None = None,
    recreate: bool = False,
    timeout: float = 600.0,
) -> StackOutputs:
    """Package and deploy a SAM template; update the stack if it exists (or delete and
    recreate it when ``recreate`` or when it is in a failed state). Saves the outputs to
    ``.offline/outputs.json`` and returns them."""
    started = time.monotonic()
    layout = Layout.current()
    template_file = Path(template_path or REPO_ROOT / "template.yaml").resolve()
    stack_name = stack_name or DEFAULT_STACK_NAME
    port = port or running_port(layout)
    if port is None:
        raise DeployError("LocalStack is not running: run `python -m opspawn.offline up` first")
    endpoint = endpoint_url(port)
    s3, cfn = boto3_client("s3", port=port), boto3_client("cloudformation", port=port)
    template = load_template(template_file)

    try:
        s3.head_bucket(Bucket=ARTIFACT_BUCKET)
    except ClientError:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    stringify_number_refs(template)
    count = package(template, template_file.parent, s3, ARTIFACT_BUCKET, stack_name)
    say(f"packaged {count} artifact(s) from {template_file.name} into s3://{ARTIFACT_BUCKET}")
    params = _parameters(template, dict(parameters or {}))
    body = json.dumps(template)
    kwargs: dict[str, Any] = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Parameters": params,
        "Capabilities": CAPABILITIES,
    }

    status = _stack_status(cfn, stack_name)
    if status is not None and (recreate or status not in GOOD_STATES):
        _delete(cfn, stack_name, timeout)
        status = None
    no_changes = False
    if status is None:
        say(f"creating stack {stack_name}")
        cfn.create_stack(**kwargs)
        final = _wait(cfn, stack_name, "create", timeout)
    else:
        say(f"updating stack {stack_name} (was {status})")
        try:
            cfn.update_stack(**kwargs)
            final = _wait(cfn, stack_name, "update", timeout)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            say("no changes")
            final, no_changes = status, True
        if final != "UPDATE_COMPLETE" and not no_changes:
            say(f"update ended {final}:\n{_failure_report(cfn, stack_name)}\nrecreating the stack")
            _delete(cfn, stack_name, timeout)
            cfn.create_stack(**kwargs)
            final = _wait(cfn, stack_name, "create", timeout)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE") and not no_changes:
        raise DeployError(
            f"stack {stack_name} ended {final}:\n{_failure_report(cfn, stack_name)}\n"
            f"last lines of {layout.log_file}:\n{tail(layout.log_file, 25)}"
        )

    result = collect_outputs(stack_name, endpoint, boto3_client("apigateway", port=port), cfn)
    result.deploy_seconds = round(time.monotonic() - started, 1)
    layout.outputs_file.write_text(result.model_dump_json(indent=2) + "\n")
    say(f"deployed {stack_name} in {result.deploy_seconds} s; outputs in {layout.outputs_file}")
    if result.api_url:
        say(f"API: {result.api_url}")
    return result
