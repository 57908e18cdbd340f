"""Deploy the project's SAM template onto the offline LocalStack.

The fastest path proven here (shared OFFLINE.md): package each function's ``CodeUri`` and
each layer's ``ContentUri``, upload them and the state machine ASL to a LocalStack S3 bucket,
point the template at those S3 objects and call CloudFormation with the ``Transform`` left
untouched (LocalStack runs the SAM translator itself). No Docker.

Artifacts are what ``sam build`` makes of them, so a function offline holds exactly what it
holds on AWS: a function is its ``CodeUri`` zipped as it is; a layer with
``Metadata: BuildMethod: makefile`` is built by its Makefile with its requirements vendored
for python3.12 (``opspawn.offline.layers``, cached by content hash); any other layer
directory is zipped as it is if it holds ``python/``, else under ``python/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from opspawn.offline.clients import StackOutputs, client_at
from opspawn.offline.console import progress, say
from opspawn.offline.install import tail
from opspawn.offline.layers import LayerBuildError, build_layer, source_files
from opspawn.offline.paths import DEFAULT_STACK_NAME, REPO_ROOT, Layout, endpoint_url
from opspawn.offline.server import running_port

ARTIFACT_BUCKET = "opspawn-offline-artifacts"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
#: a layer directory's build files, never shipped in its zip
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
#: statuses a stack is updated from
GOOD_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
#: a stack whose creation failed holds nothing worth keeping: deploy deletes and creates it
FAILED_CREATE_STATES = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}
_STACK_TYPE = "AWS::CloudFormation::Stack"


class DeployError(RuntimeError):
    """The stack did not deploy; the message holds the failed resources' reasons and how to
    recover. ``failed_resources``: logical ids of the resources that failed, if any."""

    def __init__(self, message: str, *, failed_resources: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failed_resources = list(failed_resources)


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
def zip_dir(src: Path, prefix: str = "", skip_top: frozenset[str] = frozenset()) -> bytes:
    """A deterministic zip (fixed timestamps, sorted entries) of ``src`` under ``prefix``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in source_files(src):
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

    def put_file(self, path: Path) -> str:
        """Upload a built artifact whose name already carries its content hash."""
        key = f"{self.stack_name}/{path.name}"
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            self.s3.upload_file(str(path), self.bucket, key)
        self.count += 1
        return key

    def code(self, logical_id: str, uri: Any) -> str | None:
        path = self.local(uri)
        if path is None:
            return None
        if path.is_file() and path.suffix in (".zip", ".jar"):
            return self.put(logical_id, path.read_bytes(), path.suffix)
        if (path / "requirements.txt").exists():
            # sam build would vendor them into the function; the offline deploy does not
            raise DeployError(
                f"{logical_id}: {path}/requirements.txt is not supported offline; ship "
                "third-party packages in a layer (BuildMethod: makefile)"
            )
        return self.put(logical_id, zip_dir(path), ".zip")

    def layer(self, logical_id: str, uri: Any, build_method: str | None = None) -> str | None:
        path = self.local(uri)
        if path is None:
            return None
        if build_method == "makefile" and path.is_dir():
            try:
                return self.put_file(build_layer(logical_id, path))
            except LayerBuildError as exc:
                raise DeployError(str(exc)) from None
        if build_method:
            raise DeployError(
                f"{logical_id}: BuildMethod {build_method!r} is not supported offline "
                "(use makefile)"
            )
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
        if how == "layer":
            method = (resource.get("Metadata") or {}).get("BuildMethod")
            key = up.layer(logical_id, props.get(prop), method)
        else:
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


def _settle(cfn: Any, stack_name: str, timeout: float = 30.0) -> str | None:
    """The stack's status once it stopped changing (a failed update may still roll back after
    a first *_FAILED status)."""
    deadline = time.monotonic() + timeout
    last, since = _stack_status(cfn, stack_name), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        status = _stack_status(cfn, stack_name)
        if status != last:
            last, since = status, time.monotonic()
        elif (status is None or not status.endswith("_IN_PROGRESS")) and (
            time.monotonic() - since >= 1.5
        ):
            break
    return last


def _events(cfn: Any, stack_name: str, since_event_id: str | None = None) -> list[dict[str, Any]]:
    """The stack's events, newest first, down to (not including) ``since_event_id``."""
    events: list[dict[str, Any]] = []
    try:
        for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_name):
            for event in page["StackEvents"]:
                if since_event_id is not None and event.get("EventId") == since_event_id:
                    return events
                events.append(event)
    except ClientError:
        pass
    return events


def _latest_event_id(cfn: Any, stack_name: str) -> str | None:
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return None
    return str(events[0]["EventId"]) if events else None


def failed_events(events: list[dict[str, Any]], stack_name: str) -> list[dict[str, Any]]:
    """The *_FAILED events of resources, oldest first and without repeats; the stack's own
    events carrying a reason stand in when no resource failed (e.g. a template error)."""
    seen: set[tuple[str, str, str]] = set()
    resources: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []
    for event in reversed(events):
        status = str(event.get("ResourceStatus", ""))
        reason = str(event.get("ResourceStatusReason") or "")
        logical_id = str(event.get("LogicalResourceId", ""))
        key = (logical_id, status, reason)
        if key in seen:
            continue
        if logical_id == stack_name and event.get("ResourceType") == _STACK_TYPE:
            if reason and ("FAILED" in status or "ROLLBACK" in status):
                seen.add(key)
                stack.append(event)
        elif status.endswith("FAILED"):
            seen.add(key)
            resources.append(event)
    return resources or stack


def failed_resources(events: list[dict[str, Any]], stack_name: str) -> list[str]:
    """Logical ids of the resources that failed, in order, once each."""
    ids = (str(e.get("LogicalResourceId")) for e in failed_events(events, stack_name))
    return [i for i in dict.fromkeys(ids) if i != stack_name]


def update_failed(events: list[dict[str, Any]], stack_name: str) -> bool:
    """Did this update fail? (LocalStack's engine, unpatched, ends a failed update as
    UPDATE_COMPLETE: its events tell the truth.) A DELETE_FAILED alone is a cleanup problem
    of an update that succeeded, as on AWS."""
    for event in events:
        status = str(event.get("ResourceStatus", ""))
        if event.get("LogicalResourceId") == stack_name and event.get("ResourceType") == (
            _STACK_TYPE
        ):
            if "ROLLBACK" in status or status.endswith("FAILED"):
                return True
        elif status.endswith("FAILED") and status != "DELETE_FAILED":
            return True
    return False


def format_failures(events: list[dict[str, Any]], stack_name: str, limit: int = 20) -> str:
    lines = [
        f"  {e.get('LogicalResourceId')} ({e.get('ResourceType')}): {e.get('ResourceStatus')}: "
        f"{e.get('ResourceStatusReason') or 'no reason given'}"
        for e in failed_events(events, stack_name)
    ]
    if len(lines) > limit:
        lines = [*lines[:limit], f"  ... and {len(lines) - limit} more"]
    return "\n".join(lines) or "  (no failed resource events)"


def _failure_report(cfn: Any, stack_name: str, since_event_id: str | None = None) -> str:
    return format_failures(_events(cfn, stack_name, since_event_id), stack_name)


def recovery_advice(stack_name: str, status: str | None, *, can_update: bool = True) -> str:
    """How to get a working stack back after a failed update that left it ``status``."""
    state = (
        "LocalStack rolled it back to its previous template: its resources and data are kept."
        if status == "UPDATE_ROLLBACK_COMPLETE"
        else f"It is {status}: it may be half updated (LocalStack did not roll it back)."
    )
    again = (
        "  * fix the template or parameters and run `python -m opspawn.offline deploy` again "
        "(an update: data kept);\n"
        if can_update
        else ""
    )
    return (
        f"{state}\nTo recover, either:\n{again}"
        f"  * `python -m opspawn.offline deploy --stack-name {stack_name} --recreate ...` "
        "(deletes the stack AND ITS DATA, then creates it);\n"
        "  * `python -m opspawn.offline down` then `up` and `deploy` (a fresh LocalStack: "
        "every stack and all data gone)."
    )


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


def stack_action(status: str | None, *, recreate: bool = False) -> str:
    """What deploy does with a stack in ``status``: "create" (none), "update" (in place, data
    kept), "recreate" (delete then create: asked for, or its creation failed) or "refuse" (a
    stack that cannot be updated is never deleted without ``--recreate``)."""
    if status is None:
        return "create"
    if recreate or status in FAILED_CREATE_STATES:
        return "recreate"
    return "update" if status in GOOD_STATES else "refuse"


def _create(cfn: Any, kwargs: dict[str, Any], timeout: float, log_file: Path) -> None:
    stack_name = kwargs["StackName"]
    say(f"creating stack {stack_name}")
    try:
        cfn.create_stack(**kwargs)
    except ClientError as exc:
        raise DeployError(f"CreateStack {stack_name} refused: {exc}") from None
    final = _wait(cfn, stack_name, "create", timeout)
    if final != "CREATE_COMPLETE":
        events = _events(cfn, stack_name)
        raise DeployError(
            f"stack {stack_name} ended {final}:\n{format_failures(events, stack_name)}\n"
            "Fix the template or parameters and deploy again (a stack whose creation failed "
            "is deleted and created again).\n"
            f"last lines of {log_file}:\n{tail(log_file, 25)}",
            failed_resources=failed_resources(events, stack_name),
        )


def _update(cfn: Any, kwargs: dict[str, Any], status: str, timeout: float, log_file: Path) -> bool:
    """Update the stack in place. False if there was nothing to update. A failed update raises
    DeployError naming the failed resources (never deletes or recreates the stack)."""
    stack_name = kwargs["StackName"]
    say(f"updating stack {stack_name} (was {status})")
    marker = _latest_event_id(cfn, stack_name)
    try:
        cfn.update_stack(**kwargs)
    except ClientError as exc:
        if "No updates are to be performed" in str(exc):
            say("no changes")
            return False
        raise DeployError(
            f"UpdateStack {stack_name} refused (the stack is unchanged): {exc}"
        ) from None
    final: str | None = _wait(cfn, stack_name, "update", timeout)
    events = _events(cfn, stack_name, marker)
    if final == "UPDATE_COMPLETE" and not update_failed(events, stack_name):
        if failed_events(events, stack_name):
            say(f"WARNING: the update left:\n{format_failures(events, stack_name)}")
        return True
    final = _settle(cfn, stack_name)
    events = _events(cfn, stack_name, marker)
    raise DeployError(
        f"updating stack {stack_name} failed (now {final}):\n"
        f"{format_failures(events, stack_name)}\n"
        f"{recovery_advice(stack_name, final)}\n"
        f"LocalStack's log: {log_file}",
        failed_resources=failed_resources(events, stack_name),
    )


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


#: CloudFormation's limit on an inline TemplateBody; a larger template (up to 1 MB) must be
#: read from S3 (TemplateURL), as `sam deploy` and `aws cloudformation deploy` do.
TEMPLATE_BODY_MAX_BYTES = 51_200


def template_source(body: str, s3: Any, endpoint: str, stack_name: str) -> dict[str, str]:
    """`TemplateBody` when CloudFormation takes it inline, else the template uploaded to the
    artifacts bucket (content-addressed) and its `TemplateURL`."""
    data = body.encode()
    if len(data) <= TEMPLATE_BODY_MAX_BYTES:
        return {"TemplateBody": body}
    key = f"{stack_name}/template-{hashlib.sha256(data).hexdigest()[:20]}.json"
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=data)
    return {"TemplateURL": f"{endpoint}/{ARTIFACT_BUCKET}/{key}"}


def deploy(
    template_path: str | Path | None = None,
    parameters: dict[str, str] | None = None,
    stack_name: str | None = None,
    *,
    port: int | None = None,
    recreate: bool = False,
    timeout: float = 600.0,
) -> StackOutputs:
    """Package and deploy a SAM template. A stack that exists is updated in place (its data
    kept); a failed update raises DeployError naming the failed resources and how to recover,
    it never deletes the stack. The stack is deleted first only with ``recreate`` or when its
    creation had failed. Saves the outputs to ``.offline/outputs.json`` and returns them."""
    started = time.monotonic()
    layout = Layout.current()
    template_file = Path(template_path or REPO_ROOT / "template.yaml").resolve()
    stack_name = stack_name or DEFAULT_STACK_NAME
    port = port or running_port(layout)
    if port is None:
        raise DeployError("LocalStack is not running: run `python -m opspawn.offline up` first")
    endpoint = endpoint_url(port)
    s3, cfn = client_at("s3", endpoint), client_at("cloudformation", endpoint)
    template = load_template(template_file)

    try:
        s3.head_bucket(Bucket=ARTIFACT_BUCKET)
    except ClientError:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    stringify_number_refs(template)
    count = package(template, template_file.parent, s3, ARTIFACT_BUCKET, stack_name)
    say(f"packaged {count} artifact(s) from {template_file.name} into s3://{ARTIFACT_BUCKET}")
    params = _parameters(template, dict(parameters or {}))
    kwargs: dict[str, Any] = {
        "StackName": stack_name,
        **template_source(json.dumps(template), s3, endpoint, stack_name),
        "Parameters": params,
        "Capabilities": CAPABILITIES,
    }

    status = _stack_status(cfn, stack_name)
    if status is not None and status.endswith("_IN_PROGRESS"):
        say(f"stack {stack_name} is {status}: waiting for it to settle")
        status = _wait(cfn, stack_name, "settle", timeout)
    action = stack_action(status, recreate=recreate)
    if action == "recreate":
        why = "--recreate" if recreate else f"its creation failed ({status})"
        say(f"{why}: deleting stack {stack_name} and its data, then creating it")
        _delete(cfn, stack_name, timeout)
        status = None
    elif action == "refuse":
        raise DeployError(
            f"stack {stack_name} is {status}: it cannot be updated.\n"
            f"{_failure_report(cfn, stack_name)}\n"
            f"{recovery_advice(stack_name, status, can_update=False)}"
        )
    if status is None:
        _create(cfn, kwargs, timeout, layout.log_file)
        final = "CREATE_COMPLETE"
    else:
        updated = _update(cfn, kwargs, status, timeout, layout.log_file)
        final = "UPDATE_COMPLETE" if updated else status

    result = collect_outputs(stack_name, endpoint, client_at("apigateway", endpoint), cfn)
    declared = [
        key
        for key, spec in (template.get("Outputs") or {}).items()
        if not (isinstance(spec, dict) and "Condition" in spec)
    ]
    missing = [key for key in declared if key not in result.outputs]
    if missing:
        raise DeployError(
            f"stack {stack_name} is {final} but has no output(s) {', '.join(missing)}: "
            f"LocalStack did not deploy it completely.\n{_failure_report(cfn, stack_name)}\n"
            f"{recovery_advice(stack_name, final)}"
        )
    result.deploy_seconds = round(time.monotonic() - started, 1)
    outputs_file = layout.outputs_file_for(stack_name)
    outputs_file.write_text(result.model_dump_json(indent=2) + "\n")
    say(f"deployed {stack_name} in {result.deploy_seconds} s; outputs in {outputs_file}")
    if result.api_url:
        say(f"API: {result.api_url}")
    return result
