"""Each function's cold start runs with the garbage collector paused and ends by freezing
what it built (agentkit.startup)."""

from __future__ import annotations

import ast
import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit import startup

ROOT = Path(__file__).resolve().parents[2]
APPS = sorted((ROOT / "functions").glob("*/app.py"))


def _statements(app: Path) -> list[str]:
    body = ast.parse(app.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return [ast.unparse(node) for node in body
            if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]


@pytest.mark.parametrize("app", APPS, ids=[app.parent.name for app in APPS])
def test_a_function_pauses_the_collector_before_its_imports_and_freezes_at_the_end(
    app: Path,
) -> None:
    statements = _statements(app)
    assert statements[:2] == ["from agentkit import startup", "startup.begin()"]
    assert statements[-1].startswith("startup.ready(")


@pytest.fixture
def collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


@pytest.mark.usefixtures("collector")
def test_begin_pauses_and_ready_freezes_and_resumes() -> None:
    gc.unfreeze()  # a function imported earlier in this process froze its own objects
    gc.enable()
    startup.begin()
    assert not gc.isenabled()
    made = [[] for _ in range(100)]  # objects the cold start keeps
    startup.ready()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


@pytest.mark.parametrize("function", ["tasks", "approvals", "submit", "schedules"])
def test_the_api_models_a_function_serves_are_built_at_its_cold_start(function: str) -> None:
    """A deferred model (agentkit.models.api) that a function's routes use is built by its
    cold start: the first request never pays for it."""
    http = (ROOT / "layers/agentkit/agentkit/http" / f"{function}.py").read_text()
    tree = ast.parse(http)
    served = sorted({alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     and node.module == "agentkit.models.api" for alias in node.names})
    assert served, f"agentkit/http/{function}.py imports no API model"
    path = [str(ROOT / "functions" / function), str(ROOT / "layers" / "agentkit")]
    probe = (
        "import importlib, json, sys\n"
        f"sys.path[0:0] = {path!r}\n"
        "importlib.import_module('app')\n"
        "from agentkit.models import api\n"
        f"print(json.dumps({{n: getattr(api, n).__pydantic_complete__ for n in {served!r}}}))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "TABLE_NAME": "t", "AWS_DEFAULT_REGION": "us-east-1",
           "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "t"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    built = json.loads(result.stdout.strip().splitlines()[-1])
    assert built == dict.fromkeys(served, True)
