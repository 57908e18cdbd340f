"""bench/first_invoke.py's tables, without running the bench: every function folder has a
first invocation (an event, a scenario the agent loop can make, an answer to check), each
function's environment is the template's, and the table prints what it measured and what it
could not. One probe runs for real (the console's: it needs no AWS)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "bench") not in sys.path:
    sys.path.append(str(ROOT / "bench"))  # after everything: bench/'s modules shadow nothing
import first_invoke as bench  # noqa: E402

FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


@pytest.fixture(scope="module")
def tree() -> bench.Tree:
    return bench.load_tree("current", ROOT)


def test_every_function_folder_has_a_first_invocation() -> None:
    assert sorted(bench.CASE_BY_FUNCTION) == FUNCTIONS
    assert [c.function for c in bench.selected_cases(FUNCTIONS, [])] == FUNCTIONS
    assert [c.function for c in bench.selected_cases(FUNCTIONS, ["wait_for"])] == [
        "wait_for_approval", "wait_for_children"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_its_event_scenario_and_handler_exist(tree: bench.Tree, function: str) -> None:
    case = bench.CASE_BY_FUNCTION[function]
    event = bench.load_event(tree, case.event)
    assert event and case.expect
    # the scenario, and every one it continues, is made of steps whose events exist
    name: str | None = case.scenario
    while name is not None:
        parent, steps = bench.SCENARIOS[name]
        for step in steps:
            assert step.kind in {"seed", "invoke"}
            if step.kind == "invoke":
                assert tree.has_function(step.what) and bench.load_event(tree, step.event)
        name = parent
    # the template's handler is a function of its app.py
    config = bench.function_config(tree.template, function, bench.PARAMETERS)
    module, _, handler = config["handler"].rpartition(".")
    source = (tree.function_dir(function) / f"{module}.py").read_text()
    assert f"def {handler}(" in source
    assert config["timeout_s"] > 0


def test_the_environment_is_the_templates_with_the_bench_resources(tree: bench.Tree) -> None:
    endpoint = "http://127.0.0.1:1"
    env, _ = bench.function_env(tree.template, "tasks", {}, endpoint)
    assert env["TABLE_NAME"] == bench.TABLE
    assert env["IDEMPOTENCY_TABLE_NAME"] == bench.IDEMPOTENCY_TABLE
    assert env["ARTIFACTS_BUCKET"] == bench.BUCKET
    assert env["STATE_MACHINE_ARN"] == bench.STATE_MACHINE_ARN
    assert env["AWS_ENDPOINT_URL"] == endpoint
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"  # TracingEnabled=false, as cold_start
    assert env["AWS_REGION"] == "us-east-1" and "PYTHONPATH" not in env
    # what the template does not give a function, it does not have
    authorizer, _ = bench.function_env(tree.template, "api_key_authorizer", {}, endpoint)
    assert "STATE_MACHINE_ARN" not in authorizer
    # parameter overrides; a provider is never reachable
    memories = bench.CASE_BY_FUNCTION["memories"]
    env, _ = bench.function_env(tree.template, "memories", memories.parameters, endpoint)
    assert env["EMBEDDING_MODEL"] == "openai:text-embedding-3-small"
    assert env["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
    env, _ = bench.function_env(tree.template, "submit", {}, endpoint)
    assert env["SCRIPTED_MODEL_ENABLED"] == "true"


def test_the_ids_a_scenario_made_go_into_the_events(tree: bench.Tree) -> None:
    event = bench.load_event(tree, "api_key_authorizer_request.json")
    bench.patch_event("api_key_authorizer", event, {"key": "ops_new"})
    assert event["headers"]["Authorization"] == "Bearer ops_new"
    assert event["multiValueHeaders"]["Authorization"] == ["Bearer ops_new"]
    event = bench.load_event(tree, "approvals_post.json")
    bench.patch_event("approvals", event, {"approval_id": "apv_x"})
    assert event["pathParameters"]["approval_id"] == "apv_x"
    assert event["path"].endswith("/approvals/apv_x")
    # the environment's state machine and those the events name are created
    events = [bench.load_event(tree, name) for name in ("finalize_succeeded.json", "plan.json")]
    assert bench.state_machine_names(events) == {"opspawn-bench", "opspawn-agent"}


def test_an_answer_is_checked_along_dotted_paths() -> None:
    allow = {"policyDocument": {"Statement": [{"Effect": "Allow"}]}}
    assert bench.check_answer({"policyDocument.Statement.0.Effect": "Allow"}, allow) is None
    problem = bench.check_answer({"statusCode": 200}, {"statusCode": 500, "body": "boom"})
    assert problem is not None and "statusCode=500" in problem and "boom" in problem
    assert bench.check_answer({"children": bench.PRESENT}, {"children": []}) is not None
    assert bench.check_answer({"approval_id": bench.PRESENT}, {"approval_id": "apv_1"}) is None
    assert "without" in (bench.check_answer({"a.b": 1}, {"a": {}}) or "")


def _row(function: str, side: str, init: list[float], first: list[float], **kw: Any
         ) -> bench.Row:
    return bench.Row(function, side, "e.json", "s", init_ms=init, init_cpu_ms=init,
                     invoke_ms=first, invoke_cpu_ms=first, **kw)


def test_the_table_side_by_side() -> None:
    rows = [
        _row("plan", "base", [100, 120, 110], [10, 30, 20]),
        _row("plan", "current", [50, 60, 55], [50, 70, 60]),
        _row("memories", "base", [90, 95, 92], [], na="scenario 'x' could not be made"),
        _row("memories", "current", [90, 95, 92], [], invoke_error="answered statusCode=502"),
        _row("tasks", "base", [], [], error="ModuleNotFoundError: app"),
        _row("tasks", "current", [40, 40, 40], [5, 5, 5]),
    ]
    table = bench.fmt_table(rows, cpu=False, with_base=True).splitlines()
    assert table[0].split() == ["function", "base", "init", "base", "first", "base",
                                "init+first", "init", "first", "init+first", "x", "base"]
    # medians of init, first and of the per-sample sums (110+20=130 vs 55+60=115)
    assert table[2].split() == ["plan", "110", "20", "130", "55", "60", "115", "0.88"]
    assert table[3].split() == ["memories", "92", "n/a", "n/a", "92", "ERROR", "ERROR", "-"]
    assert table[4].split() == ["tasks", "ERROR", "ERROR", "ERROR", "40", "5", "45", "-"]
    alone = bench.fmt_table([r for r in rows if r.side == "current"], cpu=True,
                            with_base=False).splitlines()
    assert alone[0].split() == ["function", "init", "first", "init+first"]
    assert alone[2].split() == ["plan", "55", "60", "115"]
    notes = bench.footnotes(rows)
    assert "memories (base): invoke: n/a (scenario 'x' could not be made)" in notes
    assert "memories (current): invoke: ERROR, not timed: answered statusCode=502" in notes
    assert any(n.startswith("tasks (base): ERROR (import)") for n in notes)
    assert rows[3].as_json()["median_first_ms"] is None  # an error is never timed


def test_the_probe_times_the_import_and_the_first_call(tree: bench.Tree, tmp_path: Path) -> None:
    env, config = bench.function_env(tree.template, "console", {}, "http://127.0.0.1:1")
    event = bench.load_event(tree, "console_get")
    spec = bench.probe_spec(tree, "console", config, event, bench.cold_start.NOT_IN_LAMBDA_RUNTIME)
    out = bench.run_child(bench.PROBE, spec, env, str(tmp_path))
    assert out["init_ms"] > 0 and out["invoke_ms"] > 0 and out["init_modules"] > 0
    assert bench.check_answer(bench.CASE_BY_FUNCTION["console"].expect, out["result"]) is None


def test_base_and_current_take_turns_to_go_first() -> None:
    rows = [_row(f, side, [1], [1]) for f in ("a", "b") for side in ("base", "current")]
    assert [(r.function, r.side) for r in bench.run_order(rows, 0)] == [
        ("a", "base"), ("a", "current"), ("b", "base"), ("b", "current")]
    assert [(r.function, r.side) for r in bench.run_order(rows, 1)] == [
        ("a", "current"), ("a", "base"), ("b", "current"), ("b", "base")]
    alone = [_row(f, "current", [1], [1]) for f in ("a", "b")]
    assert bench.run_order(alone, 1) == alone


def test_x_base_is_the_median_of_each_runs_ratio() -> None:
    # the load rose over the run: each run's pair shares it, the medians do not
    base = _row("f", "base", [90, 190, 290], [10, 10, 10])
    current = _row("f", "current", [100, 180, 590], [10, 10, 10])
    assert bench.paired_ratio(base, current, cpu=False) == pytest.approx(1.1)  # not 190/200
    assert bench.paired_ratio(base, _row("f", "current", [1], [1]), cpu=False) is None
    failed = _row("f", "current", [100, 180, 590], [], invoke_error="raised")
    assert bench.paired_ratio(base, failed, cpu=True) is None
    rows = [base, current, _row("g", "base", [100], [0]), _row("g", "current", [110], [0])]
    overall = bench.overall_ratio(rows, cpu=False)
    assert overall is not None and overall[1] == 2
    assert overall[0] == pytest.approx((1.1 * 1.1) ** 0.5)
