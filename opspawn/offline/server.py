"""Start, stop and inspect the host LocalStack (``up`` / ``down`` / ``status``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from opspawn.offline.clients import client_at
from opspawn.offline.console import progress, say
from opspawn.offline.install import lambda_python, tail
from opspawn.offline.paths import (
    EXECUTOR_NAME,
    PLUGIN_DIR,
    REGION,
    SERVICES,
    Layout,
    endpoint_url,
)
from opspawn.offline.paths import (
    port as default_port,
)

HEALTH_PATH = "/_localstack/health"


class StartError(RuntimeError):
    """LocalStack did not come up; the message carries the log tail."""


def health(port: int | None = None, timeout: float = 1.0) -> dict[str, Any] | None:
    """LocalStack's health document, or None if nothing healthy answers on the port."""
    try:
        with urllib.request.urlopen(endpoint_url(port) + HEALTH_PATH, timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return doc if isinstance(doc, dict) and "services" in doc else None


def _read_pid(layout: Layout) -> int | None:
    try:
        return int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as dead
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def our_pid(layout: Layout | None = None) -> int | None:
    """The pid of the LocalStack this state dir started, if it is still running."""
    layout = layout or Layout.current()
    pid = _read_pid(layout)
    if pid and _pid_alive(pid) and "localstack.runtime.main" in _cmdline(pid):
        return pid
    return None


def _run_info(layout: Layout) -> dict[str, Any]:
    try:
        info = json.loads(layout.run_info.read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def running_port(layout: Layout | None = None) -> int | None:
    """The port our running LocalStack listens on (None if ours is not running)."""
    layout = layout or Layout.current()
    if our_pid(layout) is None:
        return None
    return int(_run_info(layout).get("port") or default_port())


def is_running(port: int | None = None, layout: Layout | None = None) -> bool:
    """True if our LocalStack runs and answers health on ``port`` (default: configured)."""
    layout = layout or Layout.current()
    port = port or default_port()
    return running_port(layout) == port and health(port) is not None


def localstack_env(layout: Layout, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("AWS_")
    }
    env.update(
        {
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(layout.filesystem_root),
            "DNS_ADDRESS": "0",
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "SERVICES": SERVICES,
            "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR_NAME,
            "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC": "1",
            "XDG_CACHE_HOME": str(layout.cache_dir),
            "TMPDIR": str(layout.tmp_dir),
            "OPSPAWN_OFFLINE_STATE": str(layout.home),
            # Functions run as on AWS: the runtime's Python and boto3, their code, their layers.
            "OPSPAWN_LAMBDA_PYTHON": str(lambda_python(layout)),
            "OPSPAWN_LAMBDA_RUNTIME": str(layout.lambda_runtime),
            "AWS_DEFAULT_REGION": REGION,
            # This checkout's plugin code wins over the editable install's mapping, which
            # points at whichever checkout last ran `install` against a shared offline dir.
            # Functions never see it: the executor passes them only Lambda's variables.
            "PYTHONPATH": str(PLUGIN_DIR),
        }
    )
    return env


def start(
    port: int | None = None,
    layout: Layout | None = None,
    timeout: float = 90.0,
    warm_dynamodb: bool = True,
) -> bool:
    """Start LocalStack detached (or reuse ours). Returns True if this call started it.

    Raises StartError (with the log tail) if it does not become healthy.
    """
    layout = layout or Layout.current()
    port = port or default_port()
    if not layout.venv_python.exists():
        raise StartError(
            f"LocalStack is not installed in {layout.venv}: run `python -m opspawn.offline install`"
        )
    pid = our_pid(layout)
    if pid is not None:
        if running_port(layout) == port and health(port) is not None:
            say(f"LocalStack already running (pid {pid}) on {endpoint_url(port)}: reusing it")
            return False
        if running_port(layout) != port:
            raise StartError(
                f"our LocalStack (pid {pid}) runs on port {running_port(layout)}, not {port}: "
                "run `python -m opspawn.offline down` first"
            )
    elif health(port) is not None:
        raise StartError(
            f"something else already answers LocalStack health on {endpoint_url(port)} "
            f"(not started from {layout.home}); stop it or set OPSPAWN_OFFLINE_PORT"
        )
    if pid is None and not _port_free(port):
        raise StartError(
            f"port {port} on 127.0.0.1 is in use by another process (not LocalStack health); "
            "free it or set OPSPAWN_OFFLINE_PORT"
        )
    for directory in (layout.filesystem_root, layout.cache_dir, layout.tmp_dir, layout.lambda_logs):
        directory.mkdir(parents=True, exist_ok=True)
    _share_installed_packages(layout)

    started = time.monotonic()
    if pid is None:
        say(f"starting LocalStack on {endpoint_url(port)} (log: {layout.log_file})")
        with open(layout.log_file, "ab") as log:
            log_offset = log.tell()
            log.write(f"\n===== opspawn offline start {time.ctime()} port {port} =====\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [str(layout.venv_python), "-m", "localstack.runtime.main"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=localstack_env(layout, port),
                cwd=str(layout.home),
                start_new_session=True,
            )
        pid = proc.pid
        layout.outputs_file.unlink(missing_ok=True)  # a new LocalStack has no stack yet
        layout.pid_file.write_text(f"{pid}\n")
        layout.run_info.write_text(json.dumps({"pid": pid, "port": port, "started": time.time()}))
    else:
        proc, log_offset = None, 0

    while True:
        elapsed = time.monotonic() - started
        if health(port) is not None:
            break
        if proc is not None and proc.poll() is not None:
            raise StartError(
                f"LocalStack exited with code {proc.returncode} during startup; "
                f"last lines of {layout.log_file}:\n{tail(layout.log_file)}"
            )
        if proc is not None and _log_says_failed(layout, log_offset):
            stop(layout=layout, quiet=True)
            raise StartError(
                f"LocalStack could not start; last lines of {layout.log_file}:\n"
                + tail(layout.log_file)
            )
        if elapsed > timeout:
            stop(layout=layout, quiet=True)
            raise StartError(
                f"LocalStack did not become healthy within {timeout:.0f} s; "
                f"last lines of {layout.log_file}:\n{tail(layout.log_file)}"
            )
        progress(f"waiting for LocalStack health ... {elapsed:4.1f} s")
        time.sleep(0.25)
    progress(f"LocalStack healthy after {time.monotonic() - started:.1f} s", final=True)
    if warm_dynamodb:
        _warm_dynamodb(port, layout)
    return True


def _share_installed_packages(layout: Layout) -> None:
    """A named instance's LocalStack finds DynamoDB Local and Java where the default one
    does: its packages directory is a link to the shared one."""
    link = layout.instance_lib_dir
    if link == layout.lib_dir or link.is_symlink():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists():
        shutil.rmtree(link)
    link.symlink_to(layout.lib_dir, target_is_directory=True)


def _warm_dynamodb(port: int, layout: Layout) -> None:
    """DynamoDB Local's JVM starts on the first call (8-10 s): pay it now, once."""
    started = time.monotonic()
    say("warming DynamoDB (first call starts DynamoDB Local's JVM, ~10 s)")
    client = client_at("dynamodb", endpoint_url(port), read_timeout=120)
    try:
        client.list_tables()
    except Exception as exc:
        raise StartError(
            f"DynamoDB did not answer: {exc}; last lines of {layout.log_file}:\n"
            + tail(layout.log_file)
        ) from exc
    say(f"DynamoDB ready ({time.monotonic() - started:.1f} s)")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


#: log lines meaning the gateway will never answer (LocalStack keeps running regardless)
FATAL_LOG_MARKERS = ("CannotListenError", "Address already in use")


def _log_says_failed(layout: Layout, offset: int) -> bool:
    try:
        with open(layout.log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return False
    return any(marker in text for marker in FATAL_LOG_MARKERS)


def _children(pid: int) -> list[int]:
    """All descendants of pid (walks /proc; workers lead their own sessions)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop(layout: Layout | None = None, timeout: float = 15.0, quiet: bool = False) -> bool:
    """SIGTERM our LocalStack, wait, SIGKILL it and everything it started after ``timeout``.
    Returns True if something was stopped."""
    layout = layout or Layout.current()
    pid = our_pid(layout)
    if pid is None:
        if not quiet:
            say("LocalStack is not running")
        layout.pid_file.unlink(missing_ok=True)
        return False
    started = time.monotonic()
    if not quiet:
        say(f"stopping LocalStack (pid {pid})")
    descendants = _children(pid)
    _kill([pid], signal.SIGTERM)
    while _pid_alive(pid) and time.monotonic() - started < timeout:
        descendants = sorted(set(descendants) | set(_children(pid)))
        time.sleep(0.1)
    if _pid_alive(pid):
        if not quiet:
            say(f"LocalStack did not exit after {timeout:.0f} s: SIGKILL")
        _kill([pid], signal.SIGKILL)
    # workers (own sessions) and DynamoDB Local's JVM: kill what is left
    _kill([p for p in descendants if _pid_alive(p)], signal.SIGKILL)
    for _ in range(50):
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    layout.pid_file.unlink(missing_ok=True)
    layout.run_info.unlink(missing_ok=True)
    if not quiet:
        say(f"LocalStack stopped ({time.monotonic() - started:.1f} s)")
    return True


def status(layout: Layout | None = None) -> dict[str, Any]:
    layout = layout or Layout.current()
    pid = our_pid(layout)
    port = running_port(layout) or default_port()
    doc = health(port)
    return {
        "running": pid is not None,
        "pid": pid,
        "port": port,
        "endpoint_url": endpoint_url(port),
        "healthy": doc is not None,
        "services": (doc or {}).get("services", {}),
        "version": (doc or {}).get("version"),
        "state_dir": str(layout.home),
        "log_file": str(layout.log_file),
    }
