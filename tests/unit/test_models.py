from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from agentkit.ids import new_task_id
from agentkit.models.api import ApprovalDecisionRequest, SubmitTaskRequest
from agentkit.models.domain import Message, Task, TaskStatus, ToolCall, Usage


def _fields(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in item["loc"]) for item in error.errors()}


def test_usage_adds_up() -> None:
    total = Usage(input_tokens=10, output_tokens=2, cost_usd=0.1, model_calls=1) + Usage(
        input_tokens=5, output_tokens=3, cached_tokens=4, cost_usd=0.2, model_calls=1
    )
    assert total == Usage(
        input_tokens=15, output_tokens=5, cached_tokens=4, cost_usd=0.3, model_calls=2
    )
    assert total.total_tokens == 20


def test_terminal_statuses() -> None:
    assert TaskStatus.SUCCEEDED.is_terminal and TaskStatus.CANCELLED.is_terminal
    assert not TaskStatus.RUNNING.is_terminal and not TaskStatus.WAITING_APPROVAL.is_terminal


def test_message_shape_rules() -> None:
    with pytest.raises(ValidationError, match="tool_call_id"):
        Message(role="tool", content="x")
    with pytest.raises(ValidationError, match="only assistant"):
        Message(role="user", content="x", tool_calls=[ToolCall(id="1", name="calculator")])


def test_submit_request_accepts_a_plain_goal() -> None:
    request = SubmitTaskRequest.model_validate({"goal": "  add two numbers  "})
    assert request.goal == "add two numbers"
    assert request.model is None and request.tools is None
    assert request.memory == "recall" and request.memory_scope is None


def test_a_task_stored_before_long_term_memory_loads_unscoped_with_recall() -> None:
    task = Task.model_validate({"task_id": "tsk_1", "goal": "g", "model": "scripted",
                                "max_turns": 3})
    assert task.memory_scope is None and task.memory == "recall"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "goal"),
        ({"goal": ""}, "goal"),
        ({"goal": 42}, "goal"),
        ({"goal": "x" * 16_001}, "goal"),
        ({"goal": "x", "max_turns": 0}, "max_turns"),
        ({"goal": "x", "max_turns": "many"}, "max_turns"),
        ({"goal": "x", "model": "gpt 4"}, "model"),
        ({"goal": "x", "tools": ["rm -rf"]}, "tools.0"),
        ({"goal": "x", "colour": "blue"}, "colour"),
        ({"goal": "x", "model": "scripted"}, "scripted_turns"),
        ({"goal": "x", "scripted_turns": [{"content": "hi"}]}, "scripted_turns"),
        ({"goal": "x", "model": "scripted", "scripted_turns": [{}]}, "scripted_turns.0"),
        ({"goal": "x", "memory_scope": "user/1"}, "memory_scope"),
        ({"goal": "x", "memory_scope": ""}, "memory_scope"),
        ({"goal": "x", "memory": "always"}, "memory"),
    ],
)
def test_submit_request_names_the_bad_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SubmitTaskRequest.model_validate(body)
    assert field in _fields(caught.value)


def test_task_ids_are_unique_and_time_ordered() -> None:
    ids = [new_task_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(i.startswith("tsk_") and len(i) == 30 for i in ids)
    assert ids[0][:14] <= ids[-1][:14]  # the time prefix never goes backwards


@pytest.mark.parametrize(
    ("char", "problem"),
    [
        ("\x00", "control character U+0000"),
        ("\x07", "control character U+0007"),
        ("\x0b", "control character U+000B"),
        ("\x1b", "control character U+001B"),
        ("\x1f", "control character U+001F"),
        ("\ud800", "lone surrogate (U+D800)"),
        ("\udfff", "lone surrogate (U+DFFF)"),
    ],
)
def test_text_for_a_model_refuses_what_providers_reject(char: str, problem: str) -> None:
    scripted = {"model": "scripted", "scripted_turns": [{"content": "ok"}]}
    for body, field in [
        ({"goal": f"sum{char}it"}, "goal"),
        ({"goal": f"{char}leading, stripped only after the check"}, "goal"),
        ({**scripted, "goal": "x", "scripted_turns": [{"content": f"a{char}"}]},
         "scripted_turns.0.content"),
        ({**scripted, "goal": "x", "scripted_turns": [{"error": {"message": f"a{char}"}}]},
         "scripted_turns.0.error.message"),
    ]:
        with pytest.raises(ValidationError) as caught:
            SubmitTaskRequest.model_validate(body)
        assert _fields(caught.value) == {field}
        assert problem in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        ApprovalDecisionRequest.model_validate({"decision": "deny", "reason": f"no{char}"})
    assert _fields(caught.value) == {"reason"} and problem in str(caught.value)


def test_text_for_a_model_keeps_tabs_newlines_and_any_unicode() -> None:
    goal = "Line one\n\tline two\r\nemoji 🙂, accents é, CJK 漢字, DEL \x7f, NBSP \xa0 kept"
    assert SubmitTaskRequest.model_validate({"goal": goal}).goal == goal
    assert ApprovalDecisionRequest(decision="deny", reason="no:\tbad\nidea").reason == (
        "no:\tbad\nidea")


# --- who builds which models: a Lambda that never serves HTTP never builds the API bodies

ROOT = Path(__file__).resolve().parents[2]
#: The state machine's functions and the authorizer: none of them serves an API body.
NOT_API_FUNCTIONS = ("api_key_authorizer", "call_model", "finalize", "plan", "run_tools",
                     "wait_for_approval")
_PROBE = (
    "import importlib.util, json, sys\n"
    "spec = importlib.util.spec_from_file_location('app', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('agentkit.models'))))\n"
)


def _models_imported_by(function: str) -> list[str]:
    env = {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT / "layers" / "agentkit"),
        "TABLE_NAME": "t", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:t",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    app = ROOT / "functions" / function / "app.py"
    result = subprocess.run([sys.executable, "-c", _PROBE, str(app)], capture_output=True,
                            text=True, env=env, cwd=app.parent, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout.splitlines()[-1]))


def test_functions_that_serve_no_http_do_not_build_the_api_models() -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        imported = dict(zip(NOT_API_FUNCTIONS, pool.map(_models_imported_by, NOT_API_FUNCTIONS),
                            strict=True))
    assert {fn: "agentkit.models.api" in found for fn, found in imported.items()} == {
        fn: False for fn in NOT_API_FUNCTIONS}
    # the probe sees model imports at all (so the check above can fail)
    assert "agentkit.models.payloads" in imported["call_model"]


def test_the_models_package_re_exports_nothing() -> None:
    import agentkit.models

    # its submodules appear as attributes once imported; anything else would be a re-export
    assert not [name for name, value in vars(agentkit.models).items()
                if not name.startswith("__") and not isinstance(value, ModuleType)]
