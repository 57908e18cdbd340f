"""What one agent-loop turn costs in orchestration, counted on the offline stack, beside
what its tokens cost; and how fast a 3-turn task runs offline.

    .venv/bin/python bench/loop.py [--runs 10] [--template PATH] [--keep] [--json PATH]

It runs its own offline instance (`$OPSPAWN_BENCH_INSTANCE`, default `bench-loop`, port
`$OPSPAWN_BENCH_PORT`, default 4579; a stack you keep up is untouched), deploys the
template (default: this checkout's; `--template` another checkout's, to measure the same
thing before a change) under a new stack name, so every function starts cold, and runs
scripted 3-turn tasks (turn 1: two parallel tool calls, turn 2: one call, turn 3: the
answer) through the API.

Counted, not estimated, for one task run alone on the stack:
* state transitions: the `...StateEntered` events of the execution's history;
* Lambda invocations and billed ms of the loop's functions (not the API's): the `REPORT`
  lines the offline executor writes per invocation (`lambda-logs/<function>.log`) while
  the task runs, assigned to a turn by the `turn` key of the function's own log lines
  (Plan before turn 1, Finalize to the last turn);
* DynamoDB requests: LocalStack's request log (`AWS dynamodb.<Operation>`), assigned to a
  turn by time (a turn runs from its CallModel's StateEntered to the next one's).

Prices (list, us-east-1): Step Functions Standard $0.025 per 1,000 transitions; Lambda
$0.20 per 1M requests + $0.0000166667 per GB-second (x86, the function's MemorySize,
the offline billed duration); DynamoDB on demand $1.25 per 1M write request units, $0.25
per 1M read request units. A request is priced at one unit (items here are < 1 KB / 4 KB;
strongly consistent reads), a TransactWriteItems at 2 units per item (each of ours writes
two items). Token cost: the turn of two tool calls at ~2,000 input / 200 output tokens, at
the list prices in layers/agentkit/agentkit/llm/prices.json.

Latency: submit (POST /tasks) to the execution's stopDate, for the first task after the
deploy (cold functions) and the median of `--runs` warm tasks run one after another.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "agentkit")]
os.environ["OPSPAWN_OFFLINE_INSTANCE"] = os.environ.get("OPSPAWN_BENCH_INSTANCE") or "bench-loop"
os.environ["OPSPAWN_OFFLINE_PORT"] = os.environ.get("OPSPAWN_BENCH_PORT") or "4579"

from opspawn.client import OpspawnClient  # noqa: E402
from opspawn.offline import stack  # noqa: E402
from opspawn.offline.paths import Layout  # noqa: E402

SFN_PER_TRANSITION = 0.025 / 1000
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000166667
DDB_PER_WRITE_UNIT = 1.25 / 1_000_000
DDB_PER_READ_UNIT = 0.25 / 1_000_000
TURN_INPUT_TOKENS, TURN_OUTPUT_TOKENS = 2_000, 200
TOKEN_MODELS = {"gpt-4o-mini": "openai:gpt-4o-mini",
                "claude-sonnet": "anthropic:claude-sonnet-4-5"}
API_FUNCTIONS = {"SubmitFunction", "TasksFunction", "AuthorizerFunction", "SchedulesFunction",
                 "ScheduledTaskFunction", "ApprovalsFunction"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITE_UNITS = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1, "TransactWriteItems": 4}

THREE_TURNS: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}},
                    {"name": "current_time", "arguments": {"timezone": "UTC"}}],
     "usage": {"input_tokens": TURN_INPUT_TOKENS, "output_tokens": TURN_OUTPUT_TOKENS}},
    {"tool_calls": [{"name": "calculator", "arguments": {"expression": "391 + 1"}}],
     "usage": {"input_tokens": TURN_INPUT_TOKENS, "output_tokens": TURN_OUTPUT_TOKENS}},
    {"content": "17 * 23 = 391, plus one is 392.",
     "usage": {"input_tokens": TURN_INPUT_TOKENS, "output_tokens": TURN_OUTPUT_TOKENS}},
]
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\s.*AWS dynamodb\.(\w+) =>")
REPORT = re.compile(r"REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: (\d+) ms"
                    r"\tMemory Size: (\d+) MB")


@dataclass
class Bucket:
    transitions: int = 0
    states: list[str] = field(default_factory=list)
    lambda_invocations: Counter[str] = field(default_factory=Counter)
    gb_seconds: float = 0.0
    dynamodb: Counter[str] = field(default_factory=Counter)

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.dynamodb.items() if op in READS)

    @property
    def write_units(self) -> int:
        return sum(n * WRITE_UNITS.get(op, 0) for op, n in self.dynamodb.items())

    def cost(self) -> dict[str, float]:
        parts = {
            "step_functions": self.transitions * SFN_PER_TRANSITION,
            "lambda_requests": sum(self.lambda_invocations.values()) * LAMBDA_PER_REQUEST,
            "lambda_gb_seconds": self.gb_seconds * LAMBDA_PER_GB_SECOND,
            "dynamodb_writes": self.write_units * DDB_PER_WRITE_UNIT,
            "dynamodb_reads": self.reads * DDB_PER_READ_UNIT,
        }
        parts["total"] = sum(parts.values())
        return parts

    def figures(self) -> dict[str, Any]:
        return {
            "transitions": self.transitions,
            "states": self.states,
            "lambda_invocations": sum(self.lambda_invocations.values()),
            "lambda_by_function": dict(self.lambda_invocations),
            "lambda_gb_seconds": round(self.gb_seconds, 4),
            "dynamodb_reads": self.reads,
            "dynamodb_write_units": self.write_units,
            "dynamodb_requests": dict(self.dynamodb),
            "cost_usd": {k: round(v, 9) for k, v in self.cost().items()},
        }


def _token_costs() -> dict[str, float]:
    from agentkit.llm.pricing import with_cost  # the platform's own pricing
    from agentkit.models.domain import Usage

    usage = Usage(input_tokens=TURN_INPUT_TOKENS, output_tokens=TURN_OUTPUT_TOKENS)
    return {label: with_cost(model, usage).cost_usd for label, model in TOKEN_MODELS.items()}


def _deploy(template: Path) -> stack.StackOutputs:
    parameters = {"ScriptedModelEnabled": "true", "AuthorizerCacheTtlSeconds": "300"}
    return stack.deploy(template, parameters, f"bench-loop-{uuid.uuid4().hex[:6]}")


def _api_key(outputs: stack.StackOutputs) -> str:
    from opspawn.admin import key_store

    store = key_store(endpoint=outputs.endpoint_url, table=outputs.outputs["TableName"])
    return store.create("bench", description="bench/loop.py").key


def _run_task(api: OpspawnClient, sfn: Any, machine_arn: str) -> tuple[str, float, str]:
    """Submit one 3-turn task, wait for its execution; (task id, seconds, status)."""
    began = time.time()
    task = api.submit({"goal": "What is 17 * 23, and what time is it?", "model": "scripted",
                       "tools": ["calculator", "current_time"], "scripted_turns": THREE_TURNS})
    arn = machine_arn.replace(":stateMachine:", ":execution:") + f":{task.task_id}"
    deadline = time.monotonic() + 180
    while True:
        try:
            described = sfn.describe_execution(executionArn=arn)
        except sfn.exceptions.ExecutionDoesNotExist:
            described = {"status": "PENDING"}
        if described["status"] not in {"RUNNING", "PENDING"}:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task.task_id} still running after 180 s")
        time.sleep(0.02)
    return task.task_id, described["stopDate"].timestamp() - began, described["status"]


def _state_seconds(history: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(state, seconds from its StateEntered to its StateExited), in order."""
    entered: dict[str, float] = {}
    spans = []
    for event in history:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details:
            continue
        when = event["timestamp"].timestamp()
        if event["type"].endswith("StateEntered"):
            entered[details["name"]] = when
        elif details["name"] in entered:
            spans.append((details["name"], round(when - entered.pop(details["name"]), 2)))
    return spans


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def _offsets(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_size if p.exists() else 0 for p in paths}


def _new_text(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def _invocation_blocks(text: str) -> list[tuple[list[dict[str, Any]], int, int]]:
    """Each invocation's (JSON log lines, billed ms, memory MB) from a function log."""
    blocks: list[tuple[list[dict[str, Any]], int, int]] = []
    lines: list[dict[str, Any]] = []
    for line in text.splitlines():
        report = REPORT.search(line)
        if report:
            blocks.append((lines, int(report.group(1)), int(report.group(2))))
            lines = []
            continue
        start = line.find("{")
        if start >= 0:
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(record, dict):
                lines.append(record)
    return blocks


def measure_one(api: OpspawnClient, outputs: stack.StackOutputs) -> dict[str, Any]:
    """One task alone on the stack: transitions, Lambda and DynamoDB counted per turn."""
    sfn = outputs.client("stepfunctions")
    layout = Layout.current()
    # The loop's functions: everything but the API's (submit, reads, keys, schedules).
    function_names = {physical: logical for logical, physical in outputs.resources.items()
                      if logical.endswith("Function") and logical not in API_FUNCTIONS}
    logs = [layout.log_file,
            *(layout.lambda_logs / f"{name}.log" for name in function_names)]
    time.sleep(1.0)  # let the previous task's trailing writes land before the snapshot
    before = _offsets(logs)
    task_id, seconds, status = _run_task(api, sfn, outputs.outputs["StateMachineArn"])
    time.sleep(1.5)  # the executor appends a log block after the invocation returns
    arn = outputs.outputs["StateMachineArn"].replace(":stateMachine:", ":execution:")
    history = _history(sfn, f"{arn}:{task_id}")

    # Turn boundaries: each CallModel StateEntered opens a turn. A Wait (provider held)
    # would re-enter CallModel for the same turn; the scripted model never waits.
    buckets: dict[str, Bucket] = {"plan": Bucket()}
    bounds: list[tuple[float, str]] = [(0.0, "plan")]
    current = "plan"
    for event in history:
        if not event["type"].endswith("StateEntered"):
            continue
        name = event["stateEnteredEventDetails"]["name"]
        if name == "CallModel":
            current = f"turn {len(bounds)}"
            bounds.append((event["timestamp"].timestamp(), current))
            buckets[current] = Bucket()
        buckets[current].transitions += 1
        buckets[current].states.append(name)
    last_turn = bounds[-1][1]

    def bucket_at(when: float) -> str:
        label = "plan"
        for start, name in bounds:
            if when >= start:
                label = name
        return label

    text = _new_text(layout.log_file, before[logs[0]])
    window_start = history[0]["timestamp"].timestamp() - 0.05
    window_end = history[-1]["timestamp"].timestamp() + 0.5
    for line in text.splitlines():
        match = LOG_TIME.match(line)
        if not match:
            continue
        when = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp()
        if window_start <= when <= window_end:
            buckets[bucket_at(when)].dynamodb[match.group(2)] += 1

    for physical, logical in function_names.items():
        path = layout.lambda_logs / f"{physical}.log"
        for records, billed_ms, memory_mb in _invocation_blocks(_new_text(path, before[path])):
            if any(r.get("task_id") not in (None, task_id) for r in records):
                continue  # another task's (none should run meanwhile)
            turns = [r["turn"] for r in records if isinstance(r.get("turn"), int)]
            if logical == "PlanFunction":
                label = "plan"
            elif not turns or logical == "FinalizeFunction":
                label = last_turn
            else:
                label = f"turn {max(turns)}"
            bucket = buckets.setdefault(label, Bucket())
            bucket.lambda_invocations[logical] += 1
            bucket.gb_seconds += billed_ms / 1000 * memory_mb / 1024
    total = Bucket()
    for bucket in buckets.values():
        total.transitions += bucket.transitions
        total.lambda_invocations.update(bucket.lambda_invocations)
        total.gb_seconds += bucket.gb_seconds
        total.dynamodb.update(bucket.dynamodb)
    return {"task_id": task_id, "status": status, "seconds": round(seconds, 2),
            "per_turn": {k: v.figures() for k, v in buckets.items()},
            "total": total.figures()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    stack.ensure_installed(quiet=True)
    started_here = stack.start()
    load_before = os.getloadavg()[0]
    try:
        outputs = _deploy(Path(args.template).resolve())
        assert outputs.api_url
        sfn = outputs.client("stepfunctions")
        machine = outputs.outputs["StateMachineArn"]
        with OpspawnClient(outputs.api_url, api_key=_api_key(outputs), timeout_s=60) as api:
            first_id, first_s, first_status = _run_task(api, sfn, machine)
            executions = machine.replace(":stateMachine:", ":execution:")
            first_states = _state_seconds(_history(sfn, f"{executions}:{first_id}"))
            measured = measure_one(api, outputs)
            warm = []
            for _ in range(args.runs):
                _, seconds, status = _run_task(api, sfn, machine)
                if status != "SUCCEEDED":
                    raise RuntimeError(f"a warm task ended {status}")
                warm.append(seconds)
    finally:
        if started_here and not args.keep:
            stack.stop()
    tokens = _token_costs()
    tool_turn = measured["per_turn"]["turn 1"]
    orchestration = tool_turn["cost_usd"]["total"]
    return {
        "template": str(Path(args.template).resolve()),
        "first_task_after_deploy_s": round(first_s, 2),
        "first_task_status": first_status,
        "first_task_state_seconds": " ".join(f"{n}={s:g}" for n, s in first_states
                                             if s >= 0.05),
        "load_average_before_after": f"{load_before:.1f} / {os.getloadavg()[0]:.1f} "
                                     f"({os.cpu_count()} CPUs)",
        "warm_median_s": round(statistics.median(warm), 2),
        "warm_runs_s": [round(s, 2) for s in warm],
        "measured_task": measured,
        "turn_of_two_tool_calls": {
            "transitions": tool_turn["transitions"],
            "lambda_invocations": tool_turn["lambda_invocations"],
            "dynamodb_reads": tool_turn["dynamodb_reads"],
            "dynamodb_write_units": tool_turn["dynamodb_write_units"],
            "orchestration_usd": round(orchestration, 9),
            "token_usd": {k: round(v, 9) for k, v in tokens.items()},
            "orchestration_share": {k: f"{orchestration / v:.1%}" for k, v in tokens.items()},
        },
    }


def _print(figures: dict[str, Any]) -> None:
    measured = figures.pop("measured_task")
    turn = figures.pop("turn_of_two_tool_calls")
    for name, value in figures.items():
        print(f"{name:<28} {value}")
    print(f"\nmeasured task {measured['task_id']} ({measured['status']}, "
          f"{measured['seconds']} s)")
    header = f"{'':<8} {'transitions':>11} {'lambda':>7} {'GB-s':>7} {'reads':>6} " \
             f"{'WRU':>5} {'cost $':>11}  states"
    print(header)
    for label, row in [*measured["per_turn"].items(), ("total", measured["total"])]:
        print(f"{label:<8} {row['transitions']:>11} {row['lambda_invocations']:>7} "
              f"{row['lambda_gb_seconds']:>7.3f} {row['dynamodb_reads']:>6} "
              f"{row['dynamodb_write_units']:>5} {row['cost_usd']['total']:>11.9f}  "
              f"{' '.join(row['states'])}")
        if row["lambda_by_function"]:
            print(f"{'':<8} lambda: {row['lambda_by_function']}  "
                  f"dynamodb: {row['dynamodb_requests']}")
    print("\nthe turn of two tool calls (turn 1), ~2k input / 200 output tokens:")
    for name, value in turn.items():
        print(f"  {name:<22} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="warm tasks (default 10)")
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = run(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    _print(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
