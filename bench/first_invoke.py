"""Each Lambda function's cold start as INIT plus its FIRST INVOCATION, optionally against
another revision side by side.

cold_start.py times only the import of a handler module. Work a module no longer does at
import (a pydantic model built lazily, a client made on first use) is not gone: the first
request pays it. Here every sample is a FRESH interpreter (one subprocess per sample) with
cold_start.py's Lambda-like environment and sys.path = [function dir, layers/agentkit,
<site-packages>] (awscrt / OpenSSL unimportable, as on Lambda), which times separately:

  init         `import app` (everything at module level, as Lambda's INIT phase);
  first invoke the handler (template.yaml's `Handler:`, app.lambda_handler) called once with
               a sample event from events/ and a minimal LambdaContext;
  init+first   both, per sample (the median of the sums, not the sum of the medians);

each as wall time (perf_counter) and CPU time of the process (process_time), medians.

AWS is moto's server, started in this process on 127.0.0.1 (a free port); the children
reach it through AWS_ENDPOINT_URL (agentkit.aws builds its botocore clients from one
session, which honours it). Before each sample the moto state is reset and set to the
snapshot the function's first invocation starts from, so every sample does the same work:
the tables as template.yaml declares them (tests/support/aws.py's
create_table_from_template, of the tree being measured), the artifacts bucket, the state
machines the environment and the events name, and the items of a scenario. A scenario is
made once per tree by that tree's own code: its agentkit.store writes the task the sample
events name (or an API key), then the functions that come before in the agent loop are
invoked as they would be (Plan, CallModel with the scripted model, ...), and the tables and
the bucket are snapshotted. A first invocation that raises, or answers something else than
its path's answer (an HTTP status, an authorizer's Allow, no SQS batch failures...), is
reported as an error and not timed; a function whose first invocation cannot be prepared is
reported as "invoke n/a" with the reason, its import still timed.

Each function's environment is template.yaml's (Globals + its own variables, parameters at
their defaults, resources named as here) over cold_start.LAMBDA_ENV's runtime variables,
with these parameter overrides: TracingEnabled=false (POWERTOOLS_TRACE_DISABLED=true, as in
cold_start.py; --tracing: true), ScriptedModelEnabled=true (the tasks play the scripted
model), and per function those in CASES (an approval policy, an embedding model).

    .venv/bin/python bench/first_invoke.py [--runs N] [--only TEXT] [--base REV]
        [--tracing] [--venv-as-is] [--json PATH]

--base REV: the same rows for REV too, from a temporary `git worktree add --detach` of this
checkout's repository (its functions/, layers/agentkit, template.yaml, events/ and
tests/support/aws.py), removed at the end. Samples are interleaved (run 1 of every function,
its base sample right before its current one, then run 2 with current first, ...) after one
untimed warm-up per row (so .pyc files exist); `x base` is the median of the runs' ratios of
the two adjacent samples, current / base of init+first.
"""

from __future__ import annotations

import argparse
import base64
import copy
import importlib.util
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import types
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.append(str(BENCH_DIR))
import cold_start  # noqa: E402

ROOT = cold_start.ROOT
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
# The template's intrinsics resolved as a deployment with default parameters would see
# them (the test that checks each function's environment against its settings).
from tests.unit import test_function_environment as template_env  # noqa: E402

TABLE = cold_start.LAMBDA_ENV["TABLE_NAME"]
IDEMPOTENCY_TABLE = "opspawn-bench-idempotency"
BUCKET = "opspawn-bench-artifacts"
STATE_MACHINE_ARN = cold_start.LAMBDA_ENV["STATE_MACHINE_ARN"]
STATE_MACHINE_ROLE = "arn:aws:iam::123456789012:role/opspawn-bench-states"
#: template resource → what a `!Ref` to it is here
RESOURCES = {
    "TasksTable": TABLE,
    "IdempotencyTable": IDEMPOTENCY_TABLE,
    "ArtifactsBucket": BUCKET,
    "AgentStateMachine": STATE_MACHINE_ARN,
}
#: the task and tenant the sample events name (tests/support/api_events.py)
EXAMPLE_ID = "tsk_01JEXAMPLE0000000000000000"
EXAMPLE_TENANT = "tenant-example"
#: a dotted path's expected value meaning "present and not empty"
PRESENT = "<present>"
#: the last line a child prints: this prefix, then its JSON (handlers log to stdout too)
MARK = "@@first_invoke@@ "

#: parameter overrides of every function (see the docstring); --tracing sets TracingEnabled
PARAMETERS = {"TracingEnabled": "false", "ScriptedModelEnabled": "true"}
APPROVAL_POLICY = {"SecurityPolicy": json.dumps({"approval_required": ["calculator"]})}


@dataclass(frozen=True)
class Case:
    """One function's first invocation: the event, the state it starts from, what its
    answer must hold (dotted paths into the handler's return value), parameter overrides."""

    function: str
    event: str  # a file of events/, or a name of BUILT_EVENTS
    scenario: str  # a key of SCENARIOS
    expect: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    #: variables beside the template's (what a deployment keeps in its secret)
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: where the providers' base URLs point (nothing listens there)
CLOSED_PORT = _closed_port()

CASES: tuple[Case, ...] = (
    Case("api_key_authorizer", "api_key_authorizer_request.json", "api_key",
         {"policyDocument.Statement.0.Effect": "Allow"},
         note="a live key (the event's Authorization set to the key the scenario created)"),
    Case("approvals", "approvals_post.json", "approval_waiting", {"statusCode": 200},
         parameters=APPROVAL_POLICY,
         note="approve the call waiting (the event's approval id set to its id); the task "
         "token answered on moto"),
    Case("call_model", "call_model.json", "planned",
         {"action": "tool_calls", "route": "run_tools"},
         note="turn 0 of the example task, scripted model: one calculator call"),
    Case("console", "console_get", "empty", {"statusCode": 200}, note="GET /console"),
    Case("finalize", "finalize_succeeded.json", "answered", {"status": "SUCCEEDED"},
         note="the example task after its final answer"),
    Case("memories", "memories_list", "empty", {"statusCode": 200},
         # memory off (the default) answers 404 memory_disabled; with an embedding model the
         # first request makes the long-term memory (the embedding client, not called: a
         # list reads the newest memories without embedding anything)
         parameters={"EmbeddingModel": "openai:text-embedding-3-small"},
         env={"OPENAI_API_KEY": "sk-bench-not-a-key"},
         note="GET /memories (newest first), EmbeddingModel=openai:text-embedding-3-small"),
    Case("plan", "plan.json", "submitted", {"task_id": EXAMPLE_ID, "turn": 0},
         note="the example task, just submitted"),
    Case("run_tools", "run_tools_sqs.json", "tool_calls", {"batchItemFailures": []},
         note="the calculator call of turn 1; the task token answered on moto"),
    Case("schedules", "schedules_post.json", "empty", {"statusCode": 201}),
    Case("start_scheduled_task", "start_scheduled_task.json", "scheduled",
         {"status": "QUEUED"},
         note="the schedule POST /schedules made (the event's schedule id set to it)"),
    Case("submit", "submit_post_tasks.json", "empty", {"statusCode": 202},
         note="with the event's Idempotency-Key (unused before each sample: the state is reset)"),
    Case("tasks", "tasks_get_task.json", "tool_calls", {"statusCode": 200},
         note="GET /tasks/{id} of a running task"),
    Case("wait_for_approval", "wait_for_approval.json", "approval_needed",
         {"approval_id": PRESENT}, parameters=APPROVAL_POLICY,
         note="SecurityPolicy approval_required [calculator]"),
    Case("wait_for_children", "wait_for_children.json", "delegating", {"children": PRESENT},
         note="a delegate call of one sub-task (started on moto)"),
)
CASE_BY_FUNCTION = {case.function: case for case in CASES}


# --- scenarios: the state a first invocation starts from ---------------------------------


@dataclass(frozen=True)
class Step:
    """`seed`: the tree's agentkit.store writes (SEED); `invoke`: a function's handler on an
    event, as the agent loop would call it (the ids its answer holds, an approval's or a
    schedule's, go into the events of the functions measured from that state)."""

    kind: str  # "seed" | "invoke"
    what: str  # SEED action, or a function
    event: str | dict[str, Any] = ""
    expect: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)


_PLAN = Step("invoke", "plan", "plan.json", {"turn": 0})
_TURN_0 = Step("invoke", "call_model", "call_model.json", {"route": "run_tools"})
#: scenario → (the scenario it continues, or None: from an empty state; its steps)
SCENARIOS: dict[str, tuple[str | None, tuple[Step, ...]]] = {
    "empty": (None, ()),
    "api_key": (None, (Step("seed", "api_key"),)),
    "submitted": (None, (Step("seed", "example_task"),)),
    "planned": ("submitted", (_PLAN,)),
    "tool_calls": ("planned", (_TURN_0,)),
    "answered": ("tool_calls", (
        Step("invoke", "run_tools", "run_tools_sqs.json", {"batchItemFailures": []}),
        Step("invoke", "call_model", {"task_id": EXAMPLE_ID, "turn": 1}, {"action": "final"}),
    )),
    "approval_needed": ("planned", (
        Step("invoke", "call_model", "call_model.json", {"route": "await_approvals"},
             APPROVAL_POLICY),
    )),
    "approval_waiting": ("approval_needed", (
        Step("invoke", "wait_for_approval", "wait_for_approval.json",
             {"approval_id": PRESENT}, APPROVAL_POLICY),
    )),
    "delegating": (None, (
        Step("seed", "delegate_task"),
        _PLAN,
        Step("invoke", "call_model", "call_model.json", {"route": "delegate"}),
    )),
    "scheduled": (None, (
        Step("invoke", "schedules", "schedules_post.json", {"statusCode": 201}),
    )),
}

#: The example task's script when it delegates: one sub-task, which answers at once.
DELEGATE_SCRIPT = [
    {"tool_calls": [{"name": "delegate",
                     "arguments": {"tasks": [{"goal": "the capital of France"}]},
                     "child_scripts": [[{"content": "Paris"}]]}],
     "usage": {"input_tokens": 100, "output_tokens": 20}},
    {"content": "Paris.", "usage": {"input_tokens": 120, "output_tokens": 5}},
]

# Runs in a fresh interpreter with the tree's agentkit: the direct writes of a scenario.
SEED = r"""
import json, sys
spec = json.loads(sys.argv[1])
sys.path[0:1] = spec["path"]
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.store import TaskStore

table, action = spec["table"], spec["action"]
out = {}
if action in ("example_task", "delegate_task"):
    # as tests/support/api_events.py's seed_example_task: the task the sample events name
    if action == "example_task":
        request = SubmitTaskRequest.model_validate_json(spec["submit_body"])
        tools = ["calculator", "current_time"]
    else:
        request = SubmitTaskRequest.model_validate(
            {"goal": "Find the capital of France.", "model": "scripted",
             "scripted_turns": spec["script"], "tools": ["delegate", "calculator"]})
        tools = ["delegate", "calculator"]
    store = TaskStore(table, artifacts_bucket=spec["bucket"])
    store.create_task(
        Task(task_id=spec["task_id"], tenant_id=spec["tenant"], goal=request.goal,
             model="scripted", tools=tools, max_turns=5),
        script=request.scripted_turns,
    )
elif action == "api_key":
    from agentkit.store.api_keys import ApiKeyStore
    out["key"] = ApiKeyStore(table).create(spec["tenant"], description="bench").key
else:
    raise SystemExit(f"unknown seed action {action!r}")
print(MARK + json.dumps(out), flush=True)
""".replace("MARK", repr(MARK))

# Runs in the fresh interpreter of a sample. argv[1] is a JSON spec:
#   path: entries replacing sys.path[0]; block: top-level modules made unimportable
#   handler: "app.lambda_handler"; event: the event, or null to time the import alone
#   timeout_s: the function's Timeout (the context's remaining time counts down from it)
PROBE = cold_start.PROBE_PREAMBLE + r"""


class LambdaContext:
    function_name = "opspawn-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:opspawn-bench"
    aws_request_id = "00000000-0000-0000-0000-000000000001"
    log_group_name = "/aws/lambda/opspawn-bench"
    log_stream_name = "2026/12/01/[$LATEST]bench"
    identity = None
    client_context = None

    def __init__(self, timeout_s):
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self):
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def done(**out):
    print(MARK + json.dumps(out, default=str), flush=True)
    raise SystemExit(0)


module_name, _, handler_name = spec["handler"].rpartition(".")
before = set(sys.modules)
c0 = time.process_time()
t0 = time.perf_counter()
try:
    module = importlib.import_module(module_name)
except BaseException as error:
    done(init_error=f"{type(error).__name__}: {error}")
init_ms = (time.perf_counter() - t0) * 1000.0
init_cpu_ms = (time.process_time() - c0) * 1000.0
after_init = set(sys.modules)
out = {"init_ms": init_ms, "init_cpu_ms": init_cpu_ms,
       "init_modules": len(after_init - before)}
if spec.get("event") is None:
    done(**out)
handler = getattr(module, handler_name)
context = LambdaContext(spec["timeout_s"])
c1 = time.process_time()
t1 = time.perf_counter()
try:
    result = handler(spec["event"], context)
except BaseException as error:
    done(**out, invoke_error=f"{type(error).__name__}: {error}")
invoke_ms = (time.perf_counter() - t1) * 1000.0
invoke_cpu_ms = (time.process_time() - c1) * 1000.0
done(**out, invoke_ms=invoke_ms, invoke_cpu_ms=invoke_cpu_ms,
     invoke_modules=len(set(sys.modules) - after_init), result=result)
""".replace("MARK", repr(MARK))


# --- the trees measured ------------------------------------------------------------------


@dataclass
class Tree:
    """A checkout whose functions are measured: this one, or the --base worktree."""

    side: str  # "current" | "base"
    root: Path
    rev: str
    aws_support: types.ModuleType  # its tests/support/aws.py
    template: dict[str, Any]

    @property
    def layer(self) -> Path:
        return self.root / "layers" / "agentkit"

    def function_dir(self, function: str) -> Path:
        return self.root / "functions" / function

    def has_function(self, function: str) -> bool:
        return (self.function_dir(function) / "app.py").is_file()


def load_tree(side: str, root: Path) -> Tree:
    """The tree at `root`, with its own template and table helper."""
    path = root / "tests" / "support" / "aws.py"
    spec = importlib.util.spec_from_file_location(f"_first_invoke_aws_{side}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module: Any = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    # parsed once: its create_table_from_template reads the template on every call
    template = module.load_template()
    module.load_template = lambda: template
    rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                            "functions", "layers", "template.yaml"],
                           capture_output=True, text=True).stdout.strip()
    return Tree(side, root, rev + ("+changes" if dirty else ""), module, template)


@contextmanager
def base_worktree(rev: str) -> Iterator[Path]:
    """A detached worktree of `rev` of this checkout's repository, removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="opspawn-first-invoke-base-"))
    tree = parent / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                    str(tree), rev], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False)
        shutil.rmtree(parent, ignore_errors=True)


# --- the environment of a function --------------------------------------------------------


def template_function(template: dict[str, Any], function: str) -> tuple[str, dict[str, Any]]:
    """(logical id, properties) of the template's function whose CodeUri is functions/<x>."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        if Path(resource["Properties"].get("CodeUri", "")).name == function:
            return logical_id, resource["Properties"]
    raise LookupError(f"template.yaml has no function with CodeUri functions/{function}/")


def _resolve(value: Any, template: dict[str, Any]) -> str:
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in RESOURCES:
        return RESOURCES[value["Ref"]]
    return str(template_env._resolve(value, template))


def function_config(
    template: dict[str, Any], function: str, parameters: dict[str, str]
) -> dict[str, Any]:
    """The function's handler, timeout and environment variables as the template deploys
    them, its parameters at their defaults but for `parameters`."""
    template = copy.deepcopy(template)
    for name, value in parameters.items():
        if name in template.get("Parameters", {}):
            template["Parameters"][name]["Default"] = value
    globals_ = template.get("Globals", {}).get("Function", {})
    _logical_id, properties = template_function(template, function)
    variables = {**globals_.get("Environment", {}).get("Variables", {}),
                 **properties.get("Environment", {}).get("Variables", {})}
    return {
        "handler": properties.get("Handler", globals_.get("Handler", "app.lambda_handler")),
        "timeout_s": int(properties.get("Timeout", globals_.get("Timeout", 3))),
        "variables": {name: _resolve(value, template) for name, value in variables.items()},
    }


def configured_variables(template: dict[str, Any]) -> set[str]:
    """Every variable the template sets on some function: a function it does not set one
    for has none (cold_start.LAMBDA_ENV's TABLE_NAME / STATE_MACHINE_ARN included)."""
    names = set(template.get("Globals", {}).get("Function", {})
                .get("Environment", {}).get("Variables", {}))
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            names |= set(resource["Properties"].get("Environment", {}).get("Variables", {}))
    return names


def function_env(
    template: dict[str, Any], function: str, parameters: dict[str, str], endpoint: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """(the child's environment, the function's config)."""
    config = function_config(template, function, {**PARAMETERS, **parameters})
    configured = configured_variables(template)
    env = {k: v for k, v in cold_start.lambda_env().items() if k not in configured}
    env.update(config["variables"])
    for name in env:
        if name.endswith("_BASE_URL"):
            # nothing a function does here may reach a provider: a port nobody listens on
            env[name] = f"http://127.0.0.1:{CLOSED_PORT}/v1"
    env["AWS_ENDPOINT_URL"] = endpoint
    return env, config


# --- events -------------------------------------------------------------------------------


def _load_event(tree: Tree, name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((tree.root / "events" / name).read_text())
    return event


def _console_get(tree: Tree) -> dict[str, Any]:
    # as tests/unit/test_console.py's _request: a public route, no authorizer
    event = _load_event(tree, "tasks_get_task.json")
    event["requestContext"].pop("authorizer", None)
    event["resource"] = event["requestContext"]["resourcePath"] = "/console"
    event["path"] = "/console"
    event["pathParameters"] = None
    return event


def _memories_list(tree: Tree) -> dict[str, Any]:
    # as tests/integration/api/test_memories.py's call("GET", "/memories")
    event = _load_event(tree, "schedules_post.json")
    event.update(httpMethod="GET", path="/memories", resource="/memories", body=None)
    event["requestContext"].update(httpMethod="GET", resourcePath="/memories")
    for headers in (event["headers"], event["multiValueHeaders"]):
        for name in ("Content-Length", "Content-Type"):
            headers.pop(name, None)
    event["requestContext"]["authorizer"] = {"tenant_id": EXAMPLE_TENANT}
    return event


BUILT_EVENTS: dict[str, Callable[[Tree], dict[str, Any]]] = {
    "console_get": _console_get,
    "memories_list": _memories_list,
}


def load_event(tree: Tree, name: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(name, dict):
        return copy.deepcopy(name)
    if name in BUILT_EVENTS:
        return BUILT_EVENTS[name](tree)
    return _load_event(tree, name)


def patch_event(function: str, event: dict[str, Any], patches: dict[str, str]) -> None:
    """Set in the sample event what its scenario made (ids the events cannot know)."""
    if function == "api_key_authorizer" and "key" in patches:
        bearer = f"Bearer {patches['key']}"
        event["headers"]["Authorization"] = bearer
        event.get("multiValueHeaders", {})["Authorization"] = [bearer]
    elif function == "approvals" and "approval_id" in patches:
        approval_id = patches["approval_id"]
        event["pathParameters"]["approval_id"] = approval_id
        task_id = event["pathParameters"]["task_id"]
        event["path"] = f"/tasks/{task_id}/approvals/{approval_id}"
        event["requestContext"]["path"] = f"/v1{event['path']}"
    elif function == "start_scheduled_task" and "schedule_id" in patches:
        event["schedule_id"] = patches["schedule_id"]


def state_machine_names(events: list[dict[str, Any]]) -> set[str]:
    """The state machines to create: the environment's and any an event names."""
    arns = {STATE_MACHINE_ARN} | {e["state_machine_arn"] for e in events
                                  if isinstance(e.get("state_machine_arn"), str)}
    return {arn.rsplit(":", 1)[1] for arn in arns}


# --- moto ---------------------------------------------------------------------------------


def start_moto() -> Any:
    """moto's server on 127.0.0.1, a free port, in a thread of this process."""
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


class Moto:
    """The bench's side of moto: reset, resources, snapshots."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        kwargs = {"endpoint_url": endpoint, "region_name": "us-east-1",
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.dynamodb = boto3.client("dynamodb", **kwargs)  # type: ignore[call-overload]
        self.s3 = boto3.client("s3", **kwargs)  # type: ignore[call-overload]
        self.sfn = boto3.client("stepfunctions", **kwargs)  # type: ignore[call-overload]
        self.state_machines: set[str] = set()

    def fresh(self, tree: Tree) -> None:
        """Everything reset, then the tree's tables, the bucket and the state machines."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        create = tree.aws_support.create_table_from_template
        create(self.dynamodb, TABLE)
        create(self.dynamodb, IDEMPOTENCY_TABLE, resource="IdempotencyTable")
        self.s3.create_bucket(Bucket=BUCKET)
        definition = json.dumps({"StartAt": "Run", "States": {"Run": {"Type": "Pass",
                                                                       "End": True}}})
        for name in sorted(self.state_machines):
            self.sfn.create_state_machine(name=name, definition=definition,
                                          roleArn=STATE_MACHINE_ROLE)

    def snapshot(self) -> dict[str, Any]:
        tables: dict[str, list[dict[str, Any]]] = {}
        for table in (TABLE, IDEMPOTENCY_TABLE):
            items: list[dict[str, Any]] = []
            for page in self.dynamodb.get_paginator("scan").paginate(TableName=table):
                items.extend(page["Items"])
            tables[table] = items
        objects = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for entry in page.get("Contents", []):
                body = self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
                objects[entry["Key"]] = base64.b64encode(body).decode()
        return {"tables": tables, "objects": objects}

    def restore(self, tree: Tree, snapshot: dict[str, Any]) -> None:
        self.fresh(tree)
        for table, items in snapshot["tables"].items():
            for start in range(0, len(items), 25):
                self.dynamodb.batch_write_item(RequestItems={table: [
                    {"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
        for key, body in snapshot["objects"].items():
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=base64.b64decode(body))


# --- rows and samples ---------------------------------------------------------------------


@dataclass
class Row:
    function: str
    side: str
    event: str
    scenario: str
    note: str = ""
    na: str | None = None  # the first invocation cannot be prepared: why
    error: str | None = None  # the import failed
    invoke_error: str | None = None  # the first invocation raised or answered wrong
    init_ms: list[float] = field(default_factory=list)
    init_cpu_ms: list[float] = field(default_factory=list)
    invoke_ms: list[float] = field(default_factory=list)
    invoke_cpu_ms: list[float] = field(default_factory=list)
    init_modules: int = 0
    invoke_modules: int = 0  # modules the first invocation imported
    # not in the JSON
    env: dict[str, str] = field(default_factory=dict, repr=False)
    spec: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def invoked(self) -> bool:
        return not (self.na or self.error or self.invoke_error)

    def totals(self, cpu: bool = False) -> list[float]:
        init, first = (self.init_cpu_ms, self.invoke_cpu_ms) if cpu else (
            self.init_ms, self.invoke_ms)
        return [a + b for a, b in zip(init, first, strict=True)] if self.invoked else []

    def median(self, what: str, cpu: bool = False) -> float | None:
        samples = {
            "init": self.init_cpu_ms if cpu else self.init_ms,
            "first": (self.invoke_cpu_ms if cpu else self.invoke_ms) if self.invoked else [],
            "total": self.totals(cpu),
        }[what]
        return statistics.median(samples) if samples else None

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in {"env", "spec"}}
        for what in ("init", "first", "total"):
            out[f"median_{what}_ms"] = self.median(what)
            out[f"median_{what}_cpu_ms"] = self.median(what, cpu=True)
        return out


def run_child(program: str, spec: dict[str, Any], env: dict[str, str], cwd: str) -> dict[str, Any]:
    """A fresh interpreter running `program`; its last MARK line, parsed."""
    result = subprocess.run([str(cold_start.PROJECT_PYTHON), "-c", program, json.dumps(spec)],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARK)]
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(f"exit {result.returncode}: {tail[-1] if tail else 'no output'}")
    out: dict[str, Any] = json.loads(lines[-1][len(MARK):])
    return out


def _short(value: Any, limit: int = 240) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def check_answer(expect: dict[str, Any], result: Any) -> str | None:
    """None if the handler's answer holds every dotted path of `expect`, else the problem."""
    for path, want in expect.items():
        value = result
        for part in path.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return f"answered without {path}: {_short(result)}"
        if want == PRESENT:
            if value in (None, "", [], {}):
                return f"answered {path}={value!r}: {_short(result)}"
        elif value != want:
            return f"answered {path}={_short(value, 60)}, not {want!r}: {_short(result)}"
    return None


def probe_spec(tree: Tree, function: str, config: dict[str, Any], event: dict[str, Any] | None,
               block: tuple[str, ...]) -> dict[str, Any]:
    return {"path": [str(tree.function_dir(function)), str(tree.layer)],
            "block": list(block), "handler": config["handler"],
            "timeout_s": config["timeout_s"], "event": event}


def invoke(tree: Tree, step: Step, endpoint: str, block: tuple[str, ...], cwd: str) -> Any:
    """A step's handler on its event (untimed, to make a scenario): its answer."""
    env, config = function_env(tree.template, step.what, step.parameters, endpoint)
    spec = probe_spec(tree, step.what, config, load_event(tree, step.event), block)
    out = run_child(PROBE, spec, env, cwd)
    problem = out.get("init_error") or out.get("invoke_error") or check_answer(
        step.expect, out.get("result"))
    if problem:
        raise RuntimeError(f"{step.what}: {problem}")
    return out["result"]


def seed(tree: Tree, action: str, endpoint: str, cwd: str) -> dict[str, Any]:
    env = {**cold_start.lambda_env(), "AWS_ENDPOINT_URL": endpoint, "ARTIFACTS_BUCKET": BUCKET}
    submit_body = _load_event(tree, "submit_post_tasks.json")["body"]
    spec = {"path": [str(tree.layer)], "table": TABLE, "bucket": BUCKET, "action": action,
            "task_id": EXAMPLE_ID, "tenant": EXAMPLE_TENANT, "submit_body": submit_body,
            "script": DELEGATE_SCRIPT}
    return run_child(SEED, spec, env, cwd)


@dataclass
class Prepared:
    """A scenario made in one tree: the state to restore, the ids it made."""

    snapshot: dict[str, Any] | None = None
    patches: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def prepare_scenarios(tree: Tree, names: set[str], moto: Moto, block: tuple[str, ...],
                      cwd: str) -> dict[str, Prepared]:
    """Each scenario in `names` (and those they continue) made by the tree's own code."""
    needed: list[str] = []

    def need(name: str) -> None:
        parent = SCENARIOS[name][0]
        if parent is not None:
            need(parent)
        if name not in needed:
            needed.append(name)

    for name in sorted(names):
        need(name)
    done: dict[str, Prepared] = {}
    for name in needed:
        parent, steps = SCENARIOS[name]
        prepared = Prepared(patches=dict(done[parent].patches) if parent else {})
        done[name] = prepared
        if parent is not None:
            if done[parent].error:
                prepared.error = done[parent].error
                continue
            snapshot = done[parent].snapshot
            assert snapshot is not None
            moto.restore(tree, snapshot)
        else:
            moto.fresh(tree)
        try:
            for step in steps:
                if step.kind == "seed":
                    prepared.patches.update(seed(tree, step.what, moto.endpoint, cwd))
                    continue
                answer = invoke(tree, step, moto.endpoint, block, cwd)
                for key in ("approval_id", "schedule_id"):
                    found = _answer_value(answer, key)
                    if found:
                        prepared.patches[key] = found
            prepared.snapshot = moto.snapshot()
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
            prepared.error = f"scenario {name!r} could not be made: {error}"
        log(f"[{tree.side}] scenario {name}: {prepared.error or 'ok'}")
    return done


def _answer_value(answer: Any, key: str) -> str | None:
    """`key` in a step's answer (an HTTP answer's JSON body, or the answer itself)."""
    if isinstance(answer, dict) and isinstance(answer.get("body"), str):
        try:
            answer = json.loads(answer["body"])
        except ValueError:
            return None
    value = answer.get(key) if isinstance(answer, dict) else None
    return value if isinstance(value, str) else None


def make_rows(trees: list[Tree], cases: list[Case], prepared: dict[str, dict[str, Prepared]],
              endpoint: str, block: tuple[str, ...]) -> list[Row]:
    rows = []
    for case in cases:
        for tree in trees:
            row = Row(case.function, tree.side, case.event, case.scenario, note=case.note)
            rows.append(row)
            if not tree.has_function(case.function):
                row.error = f"no functions/{case.function}/app.py in {tree.rev}"
                continue
            try:
                row.env, config = function_env(tree.template, case.function, case.parameters,
                                               endpoint)
                row.env.update(case.env)
            except (LookupError, AssertionError, KeyError, ValueError) as error:
                row.error = f"its configuration in template.yaml: {error}"
                continue
            event: dict[str, Any] | None = None
            scenario = prepared[tree.side].get(case.scenario)
            if not case.event:
                row.na = case.note
            elif scenario is None or scenario.error:
                row.na = scenario.error if scenario else f"no scenario {case.scenario!r}"
            else:
                try:
                    event = load_event(tree, case.event)
                    patch_event(case.function, event, scenario.patches)
                except (OSError, KeyError, ValueError) as error:
                    row.na = f"its event {case.event}: {type(error).__name__}: {error}"
                    event = None
            row.spec = probe_spec(tree, case.function, config, event, block)
    return rows


def sample(row: Row, tree: Tree, moto: Moto, prepared: Prepared | None, case: Case,
           cwd: str, record: bool) -> None:
    """One fresh interpreter: the import, then the first invocation (the state set first)."""
    if row.error or not row.spec:
        return
    if row.spec["event"] is not None and prepared is not None and prepared.snapshot is not None:
        moto.restore(tree, prepared.snapshot)
    try:
        out = run_child(PROBE, row.spec, row.env, cwd)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        row.error = str(error)
        return
    if out.get("init_error"):
        row.error = out["init_error"]
        return
    if row.spec["event"] is not None and not row.invoke_error:
        problem = out.get("invoke_error") and f"raised {out['invoke_error']}"
        problem = problem or check_answer(case.expect, out.get("result"))
        if problem:
            # an error is never timed: the row's invoke figures go
            row.invoke_error = problem
            row.invoke_ms, row.invoke_cpu_ms = [], []
    row.init_modules = out["init_modules"]
    if not record:
        return
    row.init_ms.append(out["init_ms"])
    row.init_cpu_ms.append(out["init_cpu_ms"])
    if row.invoked and "invoke_ms" in out:
        row.invoke_ms.append(out["invoke_ms"])
        row.invoke_cpu_ms.append(out["invoke_cpu_ms"])
        row.invoke_modules = out["invoke_modules"]


# --- output -------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _first_cell(row: Row, cpu: bool) -> str:
    if row.error:
        return "ERROR"
    if row.na:
        return "n/a"
    if row.invoke_error:
        return "ERROR"
    return _ms(row.median("first", cpu))


def paired_ratio(base: Row | None, current: Row | None, cpu: bool) -> float | None:
    """current / base of init+first: the median of each run's ratio (the two samples of a
    run were taken one right after the other, so a load that drifts over the run cancels
    out more than in the ratio of the two medians)."""
    if base is None or current is None:
        return None
    pairs = list(zip(base.totals(cpu), current.totals(cpu), strict=False))
    if not pairs or len(base.totals(cpu)) != len(current.totals(cpu)):
        return None
    return statistics.median(c / b for b, c in pairs if b > 0)


def _side(rows: list[Row], function: str, side: str) -> Row | None:
    return next((r for r in rows if r.function == function and r.side == side), None)


def overall_ratio(rows: list[Row], cpu: bool) -> tuple[float, int] | None:
    """The geometric mean of every function's x base, and how many had one."""
    ratios = [r for f in dict.fromkeys(row.function for row in rows)
              if (r := paired_ratio(_side(rows, f, "base"), _side(rows, f, "current"), cpu))]
    return (statistics.geometric_mean(ratios), len(ratios)) if ratios else None


def run_order(rows: list[Row], run: int) -> list[Row]:
    """The rows of a run: each function's sides one after the other, base first in even
    runs and current first in odd ones (neither always runs right after the other's
    state restore and a function of another row)."""
    if run % 2 == 0:
        return rows
    ordered: list[Row] = []
    for row in rows:
        if ordered and ordered[-1].function == row.function:
            ordered.insert(len(ordered) - 1, row)
        else:
            ordered.append(row)
    return ordered


def fmt_table(rows: list[Row], *, cpu: bool, with_base: bool) -> str:
    """function | init | first invoke | init+first [| the same for base | current/base]."""
    by_function: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_function.setdefault(row.function, {})[row.side] = row
    header = ["function", "init", "first", "init+first"]
    if with_base:
        header = ["function", "base init", "base first", "base init+first",
                  "init", "first", "init+first", "x base"]
    body = []
    for function, sides in by_function.items():
        cells = [function]
        for side in (("base", "current") if with_base else ("current",)):
            measured = sides.get(side)
            if measured is None:
                cells += ["-", "-", "-"]
                continue
            cells += ["ERROR" if measured.error else _ms(measured.median("init", cpu)),
                      _first_cell(measured, cpu),
                      _ms(measured.median("total", cpu)) if measured.invoked
                      else _first_cell(measured, cpu)]
        if with_base:
            ratio = paired_ratio(sides.get("base"), sides.get("current"), cpu)
            cells.append("-" if ratio is None else f"{ratio:.2f}")
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths),
                      *(line(cells) for cells in body)])


def footnotes(rows: list[Row]) -> list[str]:
    notes = []
    for row in rows:
        label = f"{row.function} ({row.side})"
        if row.error:
            notes.append(f"{label}: ERROR (import): {row.error}")
        elif row.na:
            notes.append(f"{label}: invoke: n/a ({row.na})")
        elif row.invoke_error:
            notes.append(f"{label}: invoke: ERROR, not timed: {row.invoke_error}")
    return notes


# --- main ---------------------------------------------------------------------------------


def selected_cases(functions: list[str], only: list[str]) -> list[Case]:
    """The case of every function folder (a folder without one: a case whose invocation is
    n/a), those whose name contains a TEXT of --only."""
    cases = [CASE_BY_FUNCTION.get(f) or Case(f, "", "", {}, note="no case in first_invoke.py")
             for f in functions]
    if only:
        cases = [c for c in cases if any(t in c.function or t in f"functions/{c.function}"
                                         for t in only)]
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per row (7)")
    parser.add_argument("--base", metavar="REV", help="also measure this revision, side by side")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="keep the functions whose name contains TEXT (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--tracing", action="store_true",
                        help="X-Ray tracing on (TracingEnabled=true)")
    parser.add_argument("--venv-as-is", action="store_true",
                        help=f"let botocore load {' / '.join(cold_start.NOT_IN_LAMBDA_RUNTIME)}")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.tracing:
        PARAMETERS["TracingEnabled"] = "true"
        cold_start.LAMBDA_ENV["POWERTOOLS_TRACE_DISABLED"] = "false"
    block = () if args.venv_as_is else cold_start.NOT_IN_LAMBDA_RUNTIME

    functions = sorted(p.parent.name for p in cold_start.FUNCTIONS_DIR.glob("*/app.py"))
    cases = selected_cases(functions, args.only)
    if not cases:
        parser.error("no function matches --only")

    with maybe_base_worktree(args.base) as base_root, \
            tempfile.TemporaryDirectory(prefix="opspawn-first-invoke-") as cwd:
        trees = ([load_tree("base", base_root)] if base_root else []) + [
            load_tree("current", ROOT)]
        server = start_moto()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        try:
            moto = Moto(endpoint)
            events = [load_event(t, c.event) for t in trees for c in cases
                      if c.event and (c.event in BUILT_EVENTS
                                      or (t.root / "events" / c.event).is_file())]
            moto.state_machines = state_machine_names(events)
            load_before = os.getloadavg()
            prepared = {
                tree.side: prepare_scenarios(tree, {c.scenario for c in cases if c.scenario},
                                             moto, block, cwd)
                for tree in trees
            }
            rows = make_rows(trees, cases, prepared, endpoint, block)
            tree_of = {t.side: t for t in trees}
            case_of = {c.function: c for c in cases}

            def each(run: int, record: bool) -> None:
                for row in run_order(rows, run):
                    sample(row, tree_of[row.side], moto, prepared[row.side].get(row.scenario),
                           case_of[row.function], cwd, record)

            log(f"warm-up: {len(rows)} rows")
            each(0, record=False)
            for run in range(args.runs):
                log(f"run {run + 1}/{args.runs}")
                each(run, record=True)
            startup = cold_start.startup_ms(str(cold_start.PROJECT_PYTHON), args.runs, cwd)
            load_after = os.getloadavg()
        finally:
            server.stop()

    with_base = args.base is not None
    print(cold_start.machine_line())
    print("trees: " + ", ".join(f"{t.side} {t.rev} ({t.root})" for t in trees))
    print(f"runs per row: {args.runs} fresh interpreters (medians; .pyc warm); AWS: moto on "
          f"{endpoint}, its state reset to the function's scenario before each sample")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          "(anything else running skews the figures; compare rows of one run)")
    print(f"not importable (absent from the Lambda runtime): {', '.join(block) or 'none'}; "
          f"tracing: {'on' if args.tracing else 'off'}")
    print(f"interpreter start-up (python -c pass, not included below): {startup:.0f} ms")
    print("init: `import app`; first: the handler's first call; init+first: median of the "
          "per-sample sums" + ("; x base: init+first, current / base, the median of each "
                               "run's ratio" if with_base else ""))
    for title, cpu in (("wall ms", False), ("CPU ms (process_time)", True)):
        print()
        print(title)
        print(fmt_table(rows, cpu=cpu, with_base=with_base))
        overall = overall_ratio(rows, cpu) if with_base else None
        if overall is not None:
            print(f"x base over {overall[1]} functions (geometric mean): {overall[0]:.2f}")
    notes = footnotes(rows)
    if notes:
        print()
        for note in notes:
            print(f"note: {note}")
    print()
    print("first invocations (modules imported by init / by the first invocation):")
    for case in cases:
        mods = ", ".join(f"{r.side} {r.init_modules}/{r.invoke_modules}" for r in rows
                         if r.function == case.function and not r.error)
        print(f"  {case.function}: {case.event or '-'} [{case.scenario or '-'}] {case.note} "
              f"({mods})")

    if args.json:
        payload = {
            **cold_start.machine_info(),
            "runs": args.runs,
            "trees": [{"side": t.side, "rev": t.rev, "root": str(t.root)} for t in trees],
            "base": args.base,
            "blocked": list(block),
            "tracing": args.tracing,
            "interpreter_startup_ms": startup,
            "loadavg_before_after": [load_before[0], load_after[0]],
            "rows": [row.as_json() for row in rows],
            "x_base": {
                function: {"wall": paired_ratio(base, current, False),
                           "cpu": paired_ratio(base, current, True)}
                for function in dict.fromkeys(r.function for r in rows)
                for base, current in [(_side(rows, function, "base"),
                                       _side(rows, function, "current"))]
            } if with_base else None,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if any(r.error or r.invoke_error for r in rows) else 0


@contextmanager
def maybe_base_worktree(rev: str | None) -> Iterator[Path | None]:
    if rev is None:
        yield None
        return
    with base_worktree(rev) as tree:
        yield tree


if __name__ == "__main__":
    sys.exit(main())
