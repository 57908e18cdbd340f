"""Each function's cold start runs with the garbage collector paused and ends by freezing
what it built (agentkit.startup)."""

from __future__ import annotations

import ast
import gc
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
    assert statements[-1] == "startup.ready()"


@pytest.fixture
def collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


@pytest.mark.usefixtures("collector")
def test_begin_pauses_and_ready_freezes_and_resumes() -> None:
    gc.enable()
    startup.begin()
    assert not gc.isenabled()
    made = [[] for _ in range(100)]  # objects the cold start keeps
    startup.ready()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)
