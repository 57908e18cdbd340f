"""Cold-start import cost of each Lambda function module, agentkit, and the provider clients.

Every sample is a FRESH interpreter (one subprocess per sample) with the environment a
Lambda function would have (TABLE_NAME, STATE_MACHINE_ARN, region, dummy credentials,
POWERTOOLS_*; no PYTHONPATH, no AWS config files) and
sys.path = [function dir, layers/agentkit, <site-packages>], like /var/task and
/opt/python. The figure is the wall time of the import statement itself, measured
inside the interpreter with perf_counter (interpreter start-up is printed separately),
plus the modules the import added to sys.modules.

Beside the project's own rows, the same probe runs `import agents` (openai-agents),
`import strands` (strands-agents), `import pydantic_ai` (pydantic-ai-slim) and
`import langgraph.graph` (langgraph; bare `langgraph` is an empty namespace package),
each in its own venv under .offline/bench-venvs/ (created on the
first run, reused after), so the ratio to a full agent framework is visible.

    .venv/bin/python bench/cold_start.py [--runs N] [--only TEXT] [--no-frameworks]
        [--no-pyc] [--json PATH]

Samples are interleaved (run 1 of every row, then run 2, ...) after one untimed warm-up
per row, so .pyc files exist and a slow moment of the machine hits all rows alike.
`--no-pyc` makes every sample compile from source (an empty -X pycache_prefix and -B),
which is what a Lambda layer built with `pip install --no-compile` pays on each cold
start, since /opt is read-only there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = ROOT / "functions"
LAYER_DIR = ROOT / "layers" / "agentkit"
LLM_DIR = LAYER_DIR / "agentkit" / "llm"
VENVS_DIR = ROOT / ".offline" / "bench-venvs"
PROJECT_PYTHON = Path(sys.executable)

PROVIDER_SDKS = ("openai", "anthropic", "google.genai", "mcp")

# Optional accelerators botocore / urllib3 import when they happen to be installed (the
# project venv has them through aws-sam-cli); the Lambda Python runtime ships neither, so
# by default the probe makes them unimportable (`--venv-as-is` keeps them).
NOT_IN_LAMBDA_RUNTIME = ("awscrt", "OpenSSL")

# module in agentkit.llm, client class, the SDK(s) it may load.
PROVIDER_CLIENTS = (
    ("openai_client", "OpenAIClient", ("openai",)),
    ("anthropic_client", "AnthropicClient", ("anthropic",)),
    ("google_client", "GoogleClient", ("google.genai",)),
    # OpenRouter speaks the OpenAI wire format; its client may reuse the openai SDK.
    ("openrouter_client", "OpenRouterClient", ("openai",)),
)

# venv name, pip requirement(s) tried in order, import name, distribution for the version.
FRAMEWORKS = (
    ("openai-agents", ("openai-agents",), "agents"),
    ("strands-agents", ("strands-agents",), "strands"),
    ("pydantic-ai", ("pydantic-ai-slim", "pydantic-ai"), "pydantic_ai"),
    # `langgraph` itself is a bare namespace package (nothing to import); langgraph.graph
    # (StateGraph) is the least a graph needs.
    ("langgraph", ("langgraph",), "langgraph.graph"),
)

LAMBDA_ENV = {
    "TABLE_NAME": "opspawn-bench-tasks",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:opspawn-bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_LAMBDA_FUNCTION_NAME": "opspawn-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "POWERTOOLS_SERVICE_NAME": "opspawn",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_METRICS_NAMESPACE": "Opspawn",
    # TracingEnabled=false (the handlers' @traced then loads no X-Ray SDK); --tracing: on.
    "POWERTOOLS_TRACE_DISABLED": "true",
    # template.yaml's Globals: no pydantic plugins, so no entry-point scan at the first model.
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
    "LANG": "C.UTF-8",
}

# Runs in the fresh interpreter. argv[1] is a JSON spec:
#   path: entries replacing sys.path[0] (the '' that -c puts there)
#   pre: modules imported before the clock starts
#   module: the module to time; then: a module imported next, in the same clock
#   construct: a class in the last module imported to build with a dummy key
#   dist: distribution whose version to report (untimed)
# The start of every probe (this one and bench/first_invoke.py's): argv[1] is a JSON spec
# whose `path` replaces sys.path[0] and whose `block` lists the top-level modules made
# unimportable (absent from the Lambda runtime).
PROBE_PREAMBLE = r"""
import importlib, json, sys, time
spec = json.loads(sys.argv[1])
sys.path[0:1] = spec["path"]
blocked = frozenset(spec.get("block", ()))


class NotInLambdaRuntime:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (bench: not in Lambda)", name=name)
        return None


if blocked:
    sys.meta_path.insert(0, NotInLambdaRuntime())
"""

PROBE = PROBE_PREAMBLE + r"""
for name in spec.get("pre", []):
    importlib.import_module(name)
before = set(sys.modules)
c0 = time.process_time()
t0 = time.perf_counter()
module = importlib.import_module(spec["module"])
if spec.get("then"):
    # A second module imported and a class in it built, timed with the first.
    module = importlib.import_module(spec["then"])
if spec.get("construct"):
    cls = getattr(module, spec["construct"])
    try:
        cls("sk-test")
    except TypeError:
        cls(api_key="sk-test")
elapsed_ms = (time.perf_counter() - t0) * 1000.0
cpu_ms = (time.process_time() - c0) * 1000.0
new = sorted(set(sys.modules) - before)
stdlib = set(sys.stdlib_module_names)
tops = set()
for name in new:
    parts = name.split(".")
    if parts[0] in stdlib or parts[0].startswith(("__", "_sysconfigdata", "_distutils_hack")):
        continue
    # google is a namespace package: name the member (google.genai, google.protobuf).
    tops.add(".".join(parts[:2]) if parts[0] == "google" and len(parts) > 1 else parts[0])
version = None
if spec.get("dist"):
    from importlib import metadata
    version = metadata.version(spec["dist"])
print(json.dumps({
    "ms": elapsed_ms,
    "cpu_ms": cpu_ms,
    "new_modules": len(new),
    "packages": sorted(tops),
    "sdks": [s for s in spec["sdks"] if s in sys.modules],
    "version": version,
}))
"""


@dataclass
class Row:
    label: str
    python: str
    spec: dict[str, Any]
    group: str
    note: str = ""
    samples_ms: list[float] = field(default_factory=list)
    # CPU time of the same import (process_time): what other load on the machine moves least.
    cpu_samples_ms: list[float] = field(default_factory=list)
    new_modules: int = 0
    packages: list[str] = field(default_factory=list)
    sdks: list[str] = field(default_factory=list)
    version: str | None = None
    error: str | None = None


def lambda_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(LAMBDA_ENV)
    return env


def probe(row: Row, *, no_pyc: bool, block: tuple[str, ...], cwd: str) -> dict[str, Any]:
    spec = {**row.spec, "sdks": list(PROVIDER_SDKS), "block": list(block)}
    cmd = [row.python]
    if no_pyc:
        # An empty cache tree that is never written: every module compiles from source.
        cmd += ["-B", "-X", f"pycache_prefix={cwd}/no-pyc"]
    cmd += ["-c", PROBE, json.dumps(spec)]
    result = subprocess.run(
        cmd, cwd=cwd, env=lambda_env(), capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr else "failed")
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def startup_ms(python: str, runs: int, cwd: str) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", "pass"], cwd=cwd, env=lambda_env(), check=True)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(samples)


# --- rows -------------------------------------------------------------------


def project_rows() -> list[Row]:
    py = str(PROJECT_PYTHON)
    layer = str(LAYER_DIR)
    rows = [
        Row("import agentkit", py, {"path": [layer], "module": "agentkit"}, "agentkit"),
        Row("import agentkit.llm", py, {"path": [layer], "module": "agentkit.llm"}, "agentkit"),
    ]
    for app in sorted(FUNCTIONS_DIR.glob("*/app.py")):
        fn_dir = str(app.parent)
        rows.append(
            Row(
                f"functions/{app.parent.name}/app.py",
                py,
                {"path": [fn_dir, layer], "module": "app"},
                "function",
            )
        )
    return rows


def provider_rows() -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    py = str(PROJECT_PYTHON)
    for module, cls, _own in PROVIDER_CLIENTS:
        if not ((LLM_DIR / f"{module}.py").is_file() or (LLM_DIR / module).is_dir()):
            notes.append(f"agentkit.llm.{module} does not exist: no {cls} row")
            continue
        rows.append(
            Row(
                f"first {cls}('sk-test')",
                py,
                {
                    "path": [str(LAYER_DIR)],
                    "pre": ["agentkit.llm"],
                    "module": f"agentkit.llm.{module}",
                    "construct": cls,
                },
                "provider",
                note=f"import agentkit.llm.{module} + construct, after agentkit.llm",
            )
        )
    # What the CallModel function pays on a cold start whose task is Anthropic's: its
    # handler module, then the client, in ONE interpreter (modules both need count once).
    if (LLM_DIR / "anthropic_client.py").is_file():
        rows.append(
            Row(
                "call_model app + AnthropicClient",
                py,
                {
                    "path": [str(FUNCTIONS_DIR / "call_model"), str(LAYER_DIR)],
                    "module": "app",
                    "then": "agentkit.llm.anthropic_client",
                    "construct": "AnthropicClient",
                },
                "provider",
                note="functions/call_model/app.py, then agentkit.llm.anthropic_client + "
                "construct, one clock",
            )
        )
    return rows, notes


def ensure_framework_venv(name: str, requirements: tuple[str, ...], import_name: str) -> Row:
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    if stamp.is_file() and python.exists():
        dist = stamp.read_text().strip()
        log(f"[venv] {name}: cached ({dist})")
    else:
        dist = ""
        for requirement in requirements:
            if venv.exists():
                shutil.rmtree(venv)
            log(
                f"[venv] {name}: creating {venv.relative_to(ROOT)} and installing {requirement} ..."
            )
            t0 = time.perf_counter()
            subprocess.run([str(PROJECT_PYTHON), "-m", "venv", str(venv)], check=True)
            result = subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--progress-bar",
                    "off",
                    requirement,
                ],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            ok = result.returncode == 0 and (
                subprocess.run(
                    [str(python), "-c", f"import {import_name}"], capture_output=True, timeout=300
                ).returncode
                == 0
            )
            log(
                f"[venv] {name}: {requirement} {'ok' if ok else 'FAILED'} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
            if ok:
                dist = requirement
                stamp.write_text(dist + "\n")
                break
            log((result.stderr or "").strip()[-2000:])
        if not dist:
            row = Row(f"import {import_name}", str(python), {}, "framework")
            row.error = f"could not install {' or '.join(requirements)}"
            return row
    return Row(
        f"import {import_name}",
        str(python),
        {"path": [], "module": import_name, "dist": dist},
        "framework",
        note=dist,
    )


# --- output -----------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The machine a bench ran on, as every bench's JSON records it."""
    return {"python": platform.python_version(), "machine": platform.machine(),
            "platform": platform.platform(), "nproc": os.cpu_count()}


def machine_line() -> str:
    """The machine a bench ran on, as every bench prints it first."""
    return (f"Python {platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.machine()}, nproc={os.cpu_count()}, {platform.platform()}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt_table(rows: list[Row], reference_ms: float | None) -> str:
    header = ("module", "median ms", "min-max ms", "modules", "x fn", "provider SDKs loaded")
    lines = []
    body = []
    for row in rows:
        if row.error:
            body.append((row.label, "-", "-", "-", "-", f"ERROR: {row.error}"))
            continue
        med = statistics.median(row.samples_ms)
        ratio = f"{med / reference_ms:.1f}" if reference_ms else "-"
        body.append(
            (
                row.label,
                f"{med:.0f}",
                f"{min(row.samples_ms):.0f}-{max(row.samples_ms):.0f}",
                str(row.new_modules),
                ratio,
                ", ".join(row.sdks) or "none",
            )
        )
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    right = {1, 2, 3, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    group = None
    for row, cells in zip(rows, body, strict=True):
        if group is not None and row.group != group:
            lines.append("")
        group = row.group
        lines.append(line(cells))
    return "\n".join(lines)


def print_targets(rows: list[Row]) -> None:
    """The cold-start targets as ratios of this run: every function module against
    `import strands`, the CallModel function with its first Anthropic client against
    `import agents` (each at most 0.8). Wall time, and beside it CPU time, which a busy
    machine inflates far less (an import is CPU-bound once the files are in the page cache).
    """
    def medians(attr: str) -> dict[str, float]:
        return {
            r.label.split(" (")[0]: statistics.median(getattr(r, attr))
            for r in rows
            if getattr(r, attr)
        }

    wall, cpu = medians("samples_ms"), medians("cpu_samples_ms")
    strands, agents = wall.get("import strands"), wall.get("import agents")
    if strands and cpu.get("import strands"):
        cpu_strands = cpu["import strands"]
        print()
        print(
            f"x strands = median / import strands' median (wall {strands:.0f} ms, "
            f"CPU {cpu_strands:.0f} ms); target <= 0.8"
        )
        print(f"  {'function':<40} {'wall':>5} {'CPU':>5}")
        for row in rows:
            if row.group == "function" and row.samples_ms:
                print(
                    f"  {row.label:<40} {wall[row.label] / strands:>5.2f} "
                    f"{cpu[row.label] / cpu_strands:>5.2f}"
                )
    combined = "call_model app + AnthropicClient"
    if agents and combined in wall:
        print(
            f"{combined} / import agents (wall {agents:.0f} ms): wall "
            f"{wall[combined] / agents:.2f}, CPU {cpu[combined] / cpu['import agents']:.2f}; "
            "target <= 0.8"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per row (7)")
    parser.add_argument("--no-frameworks", action="store_true", help="skip the framework venvs")
    parser.add_argument(
        "--no-pyc", action="store_true", help="compile every module from source (Lambda layer)"
    )
    parser.add_argument(
        "--venv-as-is",
        action="store_true",
        help=f"let botocore load {' / '.join(NOT_IN_LAMBDA_RUNTIME)} (absent on Lambda)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="keep the project rows whose label contains TEXT (repeatable); frameworks stay",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--tracing", action="store_true", help="X-Ray tracing on (TracingEnabled=true)"
    )
    args = parser.parse_args(argv)
    if args.tracing:
        LAMBDA_ENV["POWERTOOLS_TRACE_DISABLED"] = "false"
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    rows = project_rows()
    prov, notes = provider_rows()
    rows += prov
    if args.only:
        rows = [r for r in rows if any(text in r.label for text in args.only)]
    if not args.no_frameworks:
        VENVS_DIR.mkdir(parents=True, exist_ok=True)
        for name, requirements, import_name in FRAMEWORKS:
            rows.append(ensure_framework_venv(name, requirements, import_name))

    block = () if args.venv_as_is else NOT_IN_LAMBDA_RUNTIME
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="opspawn-coldstart-") as cwd:
        live = [r for r in rows if not r.error]
        log(f"warm-up: {len(live)} rows")
        for row in live:
            try:
                first = probe(row, no_pyc=args.no_pyc, block=block, cwd=cwd)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                row.error = str(error)
                continue
            row.new_modules, row.packages, row.sdks = (
                first["new_modules"],
                first["packages"],
                first["sdks"],
            )
            row.version = first["version"]
        live = [r for r in rows if not r.error]
        for run in range(args.runs):
            log(f"run {run + 1}/{args.runs}")
            for row in live:
                if row.error:
                    continue
                try:
                    sample = probe(row, no_pyc=args.no_pyc, block=block, cwd=cwd)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    row.error, row.samples_ms = str(error), []
                    continue
                row.samples_ms.append(sample["ms"])
                row.cpu_samples_ms.append(sample["cpu_ms"])
        start_project = startup_ms(str(PROJECT_PYTHON), args.runs, cwd)
    load_after = os.getloadavg()

    for row in rows:
        if row.group == "framework" and row.version:
            row.label = f"{row.label} ({row.note} {row.version})"

    fn_medians = [
        statistics.median(r.samples_ms) for r in rows if r.group == "function" and r.samples_ms
    ]
    reference = max(fn_medians) if fn_medians else None

    print(machine_line())
    print(
        f"runs per row: {args.runs} fresh interpreters (median, min-max); "
        f".pyc: {'none (compiled from source every time)' if args.no_pyc else 'warm'}"
    )
    print(
        f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        "(anything else running skews the figures; compare rows of one run)"
    )
    print(f"not importable (absent from the Lambda runtime): {', '.join(block) or 'none'}")
    print(f"interpreter start-up (python -c pass, not included below): {start_project:.0f} ms")
    print("x fn = median / the slowest function module's median")
    print()
    print(fmt_table(rows, reference))
    print()
    for note in notes:
        print(f"note: {note}")
    for row in rows:
        if row.note and row.group == "provider":
            print(f"note: {row.label}: {row.note}")
    print_targets(rows)
    print()
    print("third-party top-level packages loaded (stdlib not shown):")
    for row in rows:
        if not row.error:
            print(f"  {row.label}: {', '.join(row.packages) or '-'}")

    if args.json:
        payload = {
            **machine_info(),
            "runs": args.runs,
            "no_pyc": args.no_pyc,
            "blocked": list(block),
            "interpreter_startup_ms": start_project,
            "loadavg_before_after": [load_before[0], load_after[0]],
            "rows": [
                {
                    **asdict(r),
                    "median_ms": statistics.median(r.samples_ms) if r.samples_ms else None,
                    "median_cpu_ms": (
                        statistics.median(r.cpu_samples_ms) if r.cpu_samples_ms else None
                    ),
                }
                for r in rows
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
