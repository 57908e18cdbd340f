"""Provider SDKs stay off every import path except the client that uses them.

Most functions do not even ship the SDKs (ProvidersLayer is attached to CallModel and to
the functions that embed for long-term memory: Memories, Plan, RunTools), so an import of
`openai`, `anthropic`, `google.genai` or `mcp` from agentkit's shared modules or a function
module would be an ImportError in production, and where they ship a cold-start cost paid
by every task whatever its provider.

Each check runs in a FRESH interpreter (the test process itself has imported everything
long ago) with a Lambda-like environment and sys.path = [function dir, layers/agentkit]:
* one interpreter imports agentkit, agentkit.llm, agentkit.tools,
  agentkit.loop.call_model and then every function module, checking sys.modules after
  each step. Imports only add to sys.modules, so while no SDK has appeared each step is
  proven clean; the steps after one that loaded an SDK are re-checked each in its own
  interpreter, so every failure names the module that caused it;
* one interpreter per provider client: importing its module loads no SDK, constructing
  it with a dummy key loads its own SDK (if it has one: Anthropic's has none) and no
  other.
The interpreters run concurrently (a few seconds in all).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "agentkit"
LLM_DIR = LAYER / "agentkit" / "llm"
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))

SDKS = ("openai", "anthropic", "google.genai", "mcp")
LIBRARY_MODULES = (
    "agentkit",
    "agentkit.llm",
    "agentkit.llm.embeddings",
    "agentkit.tools",
    "agentkit.loop.call_model",
)

# agentkit.llm module -> the SDKs its client may load (the first one it must load; none:
# it must load no SDK at all).
CLIENT_SDKS: dict[str, tuple[str, ...]] = {
    "openai_client": ("openai",),
    # The Messages API over httpx: the anthropic SDK's import costs about a second.
    "anthropic_client": (),
    "google_client": ("google.genai",),
    # OpenAI-compatible API: the client subclasses OpenAIClient and uses the openai SDK.
    "openrouter_client": ("openai",),
}
KNOWN_CLIENTS = {
    "openai_client": "OpenAIClient",
    "anthropic_client": "AnthropicClient",
    "google_client": "GoogleClient",
    "openrouter_client": "OpenRouterClient",
}

LAMBDA_ENV = {
    "TABLE_NAME": "opspawn-import-test",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:opspawn-test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "POWERTOOLS_SERVICE_NAME": "opspawn",
    "POWERTOOLS_METRICS_NAMESPACE": "Opspawn",
    "LANG": "C.UTF-8",
}

# Runs in the fresh interpreter; argv[1] is {"steps": [...]}; each step imports a module
# (by name, or a function's app.py by file under a unique name) and may construct a class.
PROBE = r"""
import importlib, importlib.util, json, sys
spec = json.loads(sys.argv[1])
sys.path[0:1] = [spec["layer"]]
SDKS = spec["sdks"]

def loaded():
    return [name for name in SDKS if name in sys.modules]

results = []
for step in spec["steps"]:
    before, error = loaded(), None
    try:
        if step.get("file"):
            sys.path.insert(0, step["dir"])
            mod_spec = importlib.util.spec_from_file_location(step["name"], step["file"])
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[step["name"]] = module
            mod_spec.loader.exec_module(module)
            sys.path.remove(step["dir"])
        else:
            module = importlib.import_module(step["module"])
        if step.get("construct"):
            getattr(module, step["construct"])("sk-test")
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
    results.append({"name": step["name"], "before": before, "after": loaded(), "error": error})
    if error:
        break
print(json.dumps(results))
"""


def _env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(LAMBDA_ENV)
    return env


def _run(steps: list[dict[str, Any]], sdks: tuple[str, ...] = SDKS) -> list[dict[str, Any]]:
    payload = json.dumps({"layer": str(LAYER), "sdks": list(sdks), "steps": steps})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, payload],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"probe failed:\n{result.stderr[-3000:]}"
    out: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _module_step(module: str) -> dict[str, Any]:
    return {"name": module, "module": module}


def _function_step(function: str) -> dict[str, Any]:
    app = ROOT / "functions" / function / "app.py"
    return {"name": f"functions/{function}/app.py", "file": str(app), "dir": str(app.parent)}


def _registered_clients() -> dict[str, str]:
    """agentkit.llm module -> class: the known clients plus whatever get_client can load."""
    clients = dict(KNOWN_CLIENTS)
    from agentkit.llm import providers

    for target in getattr(providers, "PROVIDER_CLIENTS", {}).values():
        module, _, cls = target.partition(":")
        clients[module.rpartition(".")[2]] = cls
    return clients


CLIENTS = _registered_clients()


def _client_steps(module: str, cls: str) -> list[dict[str, Any]]:
    name = f"agentkit.llm.{module}"
    return [
        {"name": f"import {name}", "module": name},
        {"name": f"{cls}('sk-test')", "module": name, "construct": cls},
    ]


@functools.cache
def _results() -> dict[str, Any]:
    """Every check, run concurrently: {step name: step result} and {client: [steps]}."""
    chain = [_module_step(m) for m in LIBRARY_MODULES] + [_function_step(f) for f in FUNCTIONS]
    existing = {
        m: c
        for m, c in CLIENTS.items()
        if (LLM_DIR / f"{m}.py").is_file() or (LLM_DIR / m).is_dir()
    }
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        chain_future = pool.submit(_run, chain)
        client_futures = {m: pool.submit(_run, _client_steps(m, c)) for m, c in existing.items()}
        steps = {r["name"]: r for r in chain_future.result()}
        # Steps after the first one that loaded an SDK (or failed) prove nothing in this
        # interpreter: re-check each of them alone.
        redo = [s for s in chain if s["name"] not in steps or steps[s["name"]]["before"]]
        redo_futures = {s["name"]: pool.submit(_run, [s]) for s in redo}
        for name, future in redo_futures.items():
            steps[name] = future.result()[0]
        clients = {m: f.result() for m, f in client_futures.items()}
    return {"steps": steps, "clients": clients}


def _assert_clean(name: str) -> None:
    step = _results()["steps"][name]
    assert step["error"] is None, f"importing {name} failed: {step['error']}"
    assert step["before"] == []
    assert step["after"] == [], f"importing {name} loaded provider SDK(s) {step['after']}"


def test_all_functions_found() -> None:
    assert {"submit", "tasks", "plan", "call_model", "run_tools", "finalize"} <= set(FUNCTIONS)


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_agentkit_module_imports_no_provider_sdk(module: str) -> None:
    _assert_clean(module)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_module_imports_no_provider_sdk(function: str) -> None:
    _assert_clean(f"functions/{function}/app.py")


@pytest.mark.parametrize("module", sorted(CLIENTS))
def test_provider_client_loads_only_its_own_sdk(module: str) -> None:
    clients = _results()["clients"]
    assert module in clients, (
        f"agentkit.llm.{module} does not exist: drop it from KNOWN_CLIENTS if it was removed"
    )
    assert module in CLIENT_SDKS, (
        f"agentkit.llm.{module} is new: add the SDK(s) its client may load to CLIENT_SDKS"
    )
    allowed = CLIENT_SDKS[module]
    steps = clients[module]
    imported = steps[0]
    assert imported["error"] is None, imported["error"]
    assert imported["after"] == [], (
        f"importing agentkit.llm.{module} loaded {imported['after']}: the SDK must be "
        "imported lazily, when the client is built"
    )
    assert len(steps) == 2, steps
    built = steps[1]
    assert built["error"] is None, f"{built['name']} failed: {built['error']}"
    if allowed:
        assert allowed[0] in built["after"], f"{built['name']} did not load {allowed[0]}"
    others = sorted(set(built["after"]) - set(allowed))
    assert not others, f"{built['name']} also loaded {others}"


# Powertools' idempotency package imports boto3 (POST /tasks with an Idempotency-Key).
BOTO3_ALLOWED = {"submit"}


def test_functions_build_their_clients_without_boto3() -> None:
    """agentkit.aws builds clients on botocore: `import boto3` (s3transfer, thread pools,
    a session of its own) would add about a tenth to a cold start, for nothing used."""
    steps = [_function_step(f) for f in FUNCTIONS if f not in BOTO3_ALLOWED]
    results = _run(steps, sdks=("boto3", "s3transfer"))
    for result in results:
        assert result["error"] is None, f"importing {result['name']} failed: {result['error']}"
        assert result["after"] == [], f"importing {result['name']} loaded {result['after']}"
    assert len(results) == len(steps)


def test_plans_and_output_schemas_cost_only_the_tasks_that_have_them() -> None:
    """The JSON Schema validator and the update_plan tool (its schema built by pydantic) are
    imported when a task has an output schema or a plan, not at a cold start."""
    steps = [_function_step(f) for f in ("call_model", "submit", "finalize")]
    results = _run(steps, sdks=("fastjsonschema", "agentkit.planner.update_plan"))
    for result in results:
        assert result["error"] is None, f"importing {result['name']} failed: {result['error']}"
        assert result["after"] == [], f"importing {result['name']} loaded {result['after']}"
    assert len(results) == len(steps)
