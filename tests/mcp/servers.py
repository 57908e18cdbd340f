"""Real MCP servers for the integration tests: installation, start/stop, configs.

* npm servers (`@modelcontextprotocol/server-everything`, `.../server-filesystem`,
  `.../server-memory`) are
  pinned in tests/mcp/package.json + package-lock.json and installed with `npm ci`
  into tests/mcp/node_modules by `ensure_node_servers()` when missing or stale
  (idempotent; a version check when present). `make` can do the same ahead of time:
  `cd tests/mcp && npm ci --no-audit --no-fund`.
* `mcp-server-time` comes from PyPI (pyproject's `dev` extra) and runs from the venv.
* `slow_server.py` (next to this file) is a tiny SDK server with a tool that hangs and
  a tool that fails; `schema_server.py` publishes input schemas of the shapes real
  servers publish, a tool that can break its own output schema, and logs the request
  methods it gets.
* HTTP servers are started on a free port bound to 127.0.0.1 only (loopback.cjs is
  preloaded into node so `listen(port)` does not bind every interface), and stopped
  by the fixture that started them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from agentkit.tools.mcp import McpServerConfig

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
BIN = NODE_MODULES / ".bin"
LOOPBACK = HERE / "loopback.cjs"
SLOW_SERVER = HERE / "slow_server.py"
SCHEMA_SERVER = HERE / "schema_server.py"
NPM_PACKAGES = {
    "@modelcontextprotocol/server-everything": "mcp-server-everything",
    "@modelcontextprotocol/server-filesystem": "mcp-server-filesystem",
    "@modelcontextprotocol/server-memory": "mcp-server-memory",
}
INSTALL_COMMAND = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]


class ServerUnavailable(RuntimeError):
    """A test server cannot be installed or started (the message says why)."""


def _pinned_versions() -> dict[str, str]:
    return json.loads((HERE / "package.json").read_text())["dependencies"]


def _installed() -> bool:
    for package, binary in NPM_PACKAGES.items():
        manifest = NODE_MODULES / package / "package.json"
        if not (BIN / binary).exists() or not manifest.exists():
            return False
        if json.loads(manifest.read_text()).get("version") != _pinned_versions()[package]:
            return False
    return True


def ensure_node_servers() -> Path:
    """`npm ci` into tests/mcp/node_modules unless the pinned versions are there already.
    Safe under pytest-xdist (an exclusive lock file). Returns the `.bin` directory."""
    if _installed():
        return BIN
    npm = shutil.which("npm")
    if npm is None:
        raise ServerUnavailable("npm is not on PATH; install Node 20+ to run the MCP tests")
    import fcntl

    lock_path = Path(tempfile.gettempdir()) / "opspawn-mcp-npm-ci.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed():  # another worker did it while we waited
                return BIN
            print(f"[mcp] installing test MCP servers: {' '.join(INSTALL_COMMAND)} in {HERE}",
                  file=sys.stderr, flush=True)
            started = time.monotonic()
            done = subprocess.run(
                [npm, *INSTALL_COMMAND[1:]], cwd=HERE, capture_output=True, text=True,
                timeout=600, check=False,
            )
            if done.returncode != 0 or not _installed():
                raise ServerUnavailable(
                    f"npm ci failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}"
                )
            print(f"[mcp] installed in {time.monotonic() - started:.1f} s",
                  file=sys.stderr, flush=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return BIN


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(
                f"server exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerUnavailable(f"server did not listen on 127.0.0.1:{port} within {timeout_s} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def everything_http_server(timeout_s: float = 20.0) -> Iterator[str]:
    """server-everything in streamableHttp mode on a free loopback port; yields the URL."""
    ensure_node_servers()
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "NODE_OPTIONS": f"--require {LOOPBACK}",
    }
    with tempfile.NamedTemporaryFile("w+b", prefix="mcp-everything-", suffix=".log") as log:
        process = subprocess.Popen(
            [str(BIN / "mcp-server-everything"), "streamableHttp"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            started = time.monotonic()
            _wait_for_port(port, process, Path(log.name), timeout_s)
            print(f"[mcp] server-everything (streamableHttp) on 127.0.0.1:{port} "
                  f"in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            _stop(process)


# --- configs (server names are the tool prefixes: `<name>__<tool>`)


def everything_stdio(name: str = "everything", **overrides: object) -> McpServerConfig:
    ensure_node_servers()
    return McpServerConfig.model_validate(
        {"name": name, "transport": "stdio", "command": str(BIN / "mcp-server-everything"),
         **overrides}
    )


def everything_http(url: str, name: str = "everything_http", **overrides: object
                    ) -> McpServerConfig:
    return McpServerConfig.model_validate(
        {"name": name, "transport": "streamable_http", "url": url, **overrides}
    )


def filesystem_stdio(root: Path, name: str = "fs", **overrides: object) -> McpServerConfig:
    ensure_node_servers()
    return McpServerConfig.model_validate(
        {"name": name, "transport": "stdio", "command": str(BIN / "mcp-server-filesystem"),
         "args": [str(root)], **overrides}
    )


def memory_stdio(store: Path, name: str = "memory", **overrides: object) -> McpServerConfig:
    """server-memory keeping its knowledge graph in the file `store`."""
    ensure_node_servers()
    return McpServerConfig.model_validate(
        {"name": name, "transport": "stdio", "command": str(BIN / "mcp-server-memory"),
         "env": {"MEMORY_FILE_PATH": str(store)}, **overrides}
    )


def time_stdio(name: str = "time", **overrides: object) -> McpServerConfig:
    script = Path(sys.executable).parent / "mcp-server-time"
    if script.exists():
        command, args = str(script), []
    else:
        command, args = sys.executable, ["-m", "mcp_server_time"]
    return McpServerConfig.model_validate(
        {"name": name, "transport": "stdio", "command": command,
         "args": [*args, "--local-timezone", "UTC"], **overrides}
    )


def slow_stdio(name: str = "slow", **overrides: object) -> McpServerConfig:
    return McpServerConfig.model_validate(
        {"name": name, "transport": "stdio", "command": sys.executable,
         "args": [str(SLOW_SERVER)], **overrides}
    )


def schema_stdio(
    name: str = "schema", log: Path | None = None, **overrides: object
) -> McpServerConfig:
    """schema_server.py; with `log`, the request methods it gets are appended there."""
    env = {"SCHEMA_SERVER_LOG": str(log)} if log is not None else {}
    return McpServerConfig.model_validate(
        {"name": name, "transport": "stdio", "command": sys.executable,
         "args": [str(SCHEMA_SERVER)], "env": env, **overrides}
    )
