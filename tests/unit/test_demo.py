"""`python -m opspawn.demo --keep` tells where the web console is and the key to open it
with; without --keep (the stack stops) it does not. The offline stack, the key store and the
API are stand-ins here: the demo's real path runs in `make demo`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from opspawn import admin, demo
from opspawn.client import TaskDetail
from opspawn.offline import embeddings, install, server, stack
from opspawn.offline.clients import StackOutputs

API_URL = "http://127.0.0.1:4599/_aws/execute-api/abc123/v1"
KEY = "ops_demoKEY0000000000000000000000"


class _Client:
    def __init__(self, url: str, *, api_key: str) -> None:
        assert (url, api_key) == (API_URL, KEY)

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def submit(self, request: dict[str, Any]) -> Any:
        return SimpleNamespace(task_id="tsk_demo")

    def wait(self, task_id: str, **_: Any) -> TaskDetail:
        return TaskDetail.model_validate({
            "task_id": task_id, "status": "SUCCEEDED", "goal": demo.GOAL, "model": "scripted",
            "turn": 3, "usage": {}, "answer": "1415", "created_at": "2026-12-01T00:00:00Z",
            "updated_at": "2026-12-01T00:00:02Z", "tools": [], "max_turns": 10, "messages": [],
        })


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stack's steps, stood in for; the list records a stop."""
    stopped: list[str] = []
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(install, "ensure_installed", lambda: None)
    monkeypatch.setattr(server, "start", lambda: True)
    monkeypatch.setattr(server, "stop", lambda: stopped.append("stopped"))
    # The embeddings server: started with the stack, its parameters deployed, stopped
    # with it.
    running: list[str] = []
    monkeypatch.setattr(embeddings, "start", lambda: running.append("e5") or "e5")
    monkeypatch.setattr(embeddings, "stop", lambda: stopped.append("embeddings stopped"))
    monkeypatch.setattr(embeddings, "parameters",
                        lambda: {"EmbeddingModel": "http://127.0.0.1:1/v1#e5"} if running else {})

    def deploy(template: Any, parameters: dict[str, str]) -> StackOutputs:
        assert parameters["EmbeddingModel"] == "http://127.0.0.1:1/v1#e5"
        return StackOutputs(stack_name="opspawn", endpoint_url="http://127.0.0.1:4599",
                            api_url=API_URL, outputs={"TableName": "tasks"})

    monkeypatch.setattr(stack, "deploy", deploy)
    monkeypatch.setattr(admin, "key_store", lambda **_: SimpleNamespace(
        create=lambda tenant: SimpleNamespace(key=KEY)))
    monkeypatch.setattr(demo, "OpspawnClient", _Client)
    return stopped


def test_keep_prints_the_console_url_and_the_demo_key(
    offline: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--keep"]) == 0
    out = capsys.readouterr().out
    assert f"web console: {API_URL}/console" in out
    assert KEY in out and offline == []


def test_without_keep_the_stack_stops_and_no_console_is_offered(
    offline: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "/console" not in out and KEY not in out
    assert offline == ["stopped", "embeddings stopped"]
