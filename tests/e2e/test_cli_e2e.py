"""The `opspawn` command, run as a user would (a subprocess), against the offline stack.

The endpoint comes from OPSPAWN_ENDPOINT and the tenant's key from OPSPAWN_API_KEY (set
by the `offline_stack` fixture); the model is the scripted one, everything else is real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opspawn.offline.stack import StackOutputs

TIMEOUT_S = 180


def _command() -> list[str]:
    """The installed console script (`pip install -e .`), else `python -m opspawn`."""
    script = Path(sys.executable).with_name("opspawn")
    if script.exists():
        return [str(script)]
    found = shutil.which("opspawn")
    return [found] if found else [sys.executable, "-m", "opspawn"]


@pytest.fixture(scope="module")
def cli_env(offline_stack: StackOutputs, tmp_path_factory: pytest.TempPathFactory) -> dict:
    assert offline_stack.api_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSPAWN_")}
    env["OPSPAWN_ENDPOINT"] = offline_stack.api_url
    if key := os.environ.get("OPSPAWN_API_KEY"):
        env["OPSPAWN_API_KEY"] = key
    env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg"))  # no user config file
    env["COLUMNS"] = "160"
    return env


def _opspawn(env: dict, *argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*_command(), *argv], env=env, capture_output=True, text=True, timeout=TIMEOUT_S + 30
    )
    key = env.get("OPSPAWN_API_KEY")
    if key:
        assert key not in result.stdout and key not in result.stderr
    return result


def test_submit_wait_prints_progress_and_the_answer(cli_env: dict) -> None:
    turns = [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
        {"content": "6 * 7 = 42."},
    ]
    result = _opspawn(
        cli_env, "submit", "What is 6 * 7?", "--model", "scripted",
        "--scripted-turns", json.dumps(turns), "--tools", "calculator",
        "--wait", "--timeout", str(TIMEOUT_S),
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr}"
    assert "accepted (scripted)" in out
    for line in (
        "status  RUNNING",
        "goal    What is 6 * 7?",
        'model   turn 1 → calculator({"expression": "6 * 7"})',
        "tool    calculator → 42",
        "model   turn 2 → final answer",
        "status  SUCCEEDED",
    ):
        assert line in out, f"{line!r} not in:\n{out}"
    assert out.index("calculator → 42") < out.index("status  SUCCEEDED")
    assert "6 * 7 = 42." in out.split("status  SUCCEEDED", 1)[1]

    task_id = out.split("task ", 1)[1].split()[0]
    got = _opspawn(cli_env, "get", task_id, "--json")
    assert got.returncode == 0, got.stderr
    view = json.loads(got.stdout)
    assert (view["status"], view["answer"], view["turn"]) == ("SUCCEEDED", "6 * 7 = 42.", 2)


def test_a_failed_task_exits_3_with_the_reason(cli_env: dict) -> None:
    turns = [{"error": {"kind": "fatal", "message": "the model refused the request"}}]
    result = _opspawn(
        cli_env, "submit", "Refuse this", "--model", "scripted",
        "--scripted-turns", json.dumps(turns), "--wait", "--timeout", str(TIMEOUT_S),
    )  # fmt: skip
    assert result.returncode == 3, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "status  FAILED" in result.stdout
    assert "the model refused the request" in result.stderr


def test_api_errors_are_readable(cli_env: dict) -> None:
    result = _opspawn(cli_env, "get", "tsk_doesnotexist")
    assert result.returncode == 1
    assert "error:" in result.stderr and "HTTP 404" in result.stderr
    # The request is rejected by the API (not locally): a tool name the API does not know.
    result = _opspawn(cli_env, "submit", "x", "--tools", "no_such_tool")
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr and "tools" in result.stderr


def test_schedules_create_list_delete(cli_env: dict) -> None:
    created = _opspawn(
        cli_env, "schedules", "create", "cli-e2e", "rate(1 day)", "What is 6 * 7?",
        "--model", "scripted", "--scripted-turns", '[{"content": "42"}]', "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    schedule_id = json.loads(created.stdout)["schedule_id"]
    try:
        listed = _opspawn(cli_env, "schedules", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert schedule_id in [s["schedule_id"] for s in json.loads(listed.stdout)["items"]]
    finally:
        deleted = _opspawn(cli_env, "schedules", "delete", schedule_id)
    assert deleted.returncode == 0, deleted.stderr
    assert f"schedule {schedule_id} deleted" in deleted.stdout
