"""A Docker-free LocalStack Lambda runtime executor that runs functions as AWS does.

Each LocalStack execution environment is one persistent worker subprocess (``worker.py``)
on the Lambda runtime's interpreter (``OPSPAWN_LAMBDA_PYTHON``: a bare CPython 3.12, run
isolated: no site-packages, no PYTHONPATH, no user site), whose ``sys.path`` is what Lambda's
is: the function's unzipped code, its layers (last first, as /opt overlays), the standard
library, then the runtime's own packages (``OPSPAWN_LAMBDA_RUNTIME``: boto3/botocore at a
runtime-like version). A package the function does not ship fails to import here as on AWS.

Written against LocalStack 4.8.1's private executor API
(``localstack.services.lambda_.invocation.runtime_executor.RuntimeExecutor``); pin that version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import (
    FunctionVersion,
    InvocationResult,
)
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

LOG = logging.getLogger(__name__)

WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))
#: Host variables a function also sees (on top of the Lambda-defined ones): what a process
#: needs to run here, nothing of the project's (no PYTHONPATH, VIRTUAL_ENV, OPSPAWN_*).
PASSTHROUGH_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "USER", "TZ")
#: Keep at most this much of an environment's log text in memory for get_logs().
MAX_KEPT_LOG_CHARS = 1_000_000
_EOF = object()
#: seconds a worker may take to import the handler module (AWS: 10 s init phase)
INIT_TIMEOUT_S = float(os.environ.get("OPSPAWN_LAMBDA_INIT_TIMEOUT") or 10)


def worker_python() -> str:
    """The Lambda runtime's interpreter (set by ``opspawn.offline`` when it starts LocalStack)."""
    return os.environ.get("OPSPAWN_LAMBDA_PYTHON", "")


def runtime_dir() -> str:
    """The runtime's own packages (boto3, botocore), after the standard library on sys.path."""
    return os.environ.get("OPSPAWN_LAMBDA_RUNTIME", "")


def _function_path() -> str:
    """The host PATH without virtualenv bin directories (a function must not find the
    project's tools by accident; system tools such as node stay reachable)."""
    keep = [
        entry
        for entry in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
        if entry and not os.path.exists(os.path.join(entry, os.pardir, "pyvenv.cfg"))
    ]
    python_bin = os.path.dirname(worker_python())
    return os.pathsep.join(dict.fromkeys([python_bin, *keep]))


def state_dir() -> Path:
    """Where per-function log files go (``$OPSPAWN_OFFLINE_STATE/lambda-logs``)."""
    root = os.environ.get("OPSPAWN_OFFLINE_STATE") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "opspawn-offline"
    )
    return Path(root)


def _gateway_port() -> int:
    return int(config.GATEWAY_LISTEN[0].port)


def xray_daemon_address() -> str:
    """Where the functions' X-Ray SDK sends segments (OPSPAWN_XRAY_DAEMON_ADDRESS, default
    UDP 127.0.0.1:<gateway port>)."""
    return os.environ.get("OPSPAWN_XRAY_DAEMON_ADDRESS") or f"127.0.0.1:{_gateway_port()}"


class _Worker:
    """One worker subprocess and the thread reading its response pipe."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, out_path: Path) -> None:
        read_fd, write_fd = os.pipe()
        self.out_path = out_path
        with open(out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [*argv[:-1], argv[-1].replace("__RESPONSE_FD__", str(write_fd))],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        os.close(write_fd)
        self.lines: queue.Queue[Any] = queue.Queue()
        self._reader = threading.Thread(
            target=self._read, args=(os.fdopen(read_fd, "r"),), daemon=True
        )
        self._reader.start()
        self.ready: dict[str, Any] | None = None
        self.spawned = time.monotonic()

    def _read(self, stream: Any) -> None:
        with stream:
            for line in stream:
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    LOG.warning("opspawn worker sent a bad line: %r", line[:200])
        self.lines.put(_EOF)

    def next_message(self, timeout: float) -> Any:
        """The next message, ``_EOF`` if the worker died, ``None`` on timeout."""
        try:
            return self.lines.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return None

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, grace: float = 0.0) -> None:
        """Kill the worker and everything it started (it leads its own session)."""
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
            if grace > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            LOG.warning("opspawn worker %s did not exit after SIGKILL", self.proc.pid)

    def read_output(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""


class SubprocessRuntimeExecutor(RuntimeExecutor):
    """Runs a Lambda execution environment as a local worker subprocess."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._env: dict[str, str] = {}
        self._worker: _Worker | None = None
        self._lock = threading.RLock()
        self._logs: list[str] = []
        self._log_chars = 0
        self._invoke_started = time.monotonic()
        base = state_dir() / "lambda-logs"
        (base / "env").mkdir(parents=True, exist_ok=True)
        self._out_path = base / "env" / f"{id}.out"
        self._function_log = base / f"{function_version.id.function_name}.log"

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, env_vars: dict[str, str]) -> None:
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env["PATH"] = _function_path()
        env.update({k: str(v) for k, v in env_vars.items()})
        code_dir = str(self._code_dir())
        env["LAMBDA_TASK_ROOT"] = code_dir
        env["AWS_ENDPOINT_URL"] = f"http://{self.get_endpoint_from_executor()}:{_gateway_port()}"
        env.setdefault("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:0")
        # Lambda's X-Ray daemon address: segments go to UDP 127.0.0.1:<gateway port> (UDP,
        # so it never meets the gateway's TCP listener), where a test (or `python -m
        # opspawn.offline traces`) may listen; nobody listening, they are dropped, as on AWS
        # without the daemon.
        daemon = xray_daemon_address()
        env["AWS_XRAY_DAEMON_ADDRESS"] = daemon
        env["_AWS_XRAY_DAEMON_ADDRESS"], _, env["_AWS_XRAY_DAEMON_PORT"] = daemon.partition(":")
        self._env = env
        with self._lock:
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.kill(grace=0.5)
                self._worker = None
        with contextlib.suppress(OSError):
            self._out_path.unlink(missing_ok=True)

    def _code_dir(self) -> Path:
        code = self.function_version.config.code
        if code is None:
            raise LambdaRuntimeException("opspawn executor supports zip functions only")
        return Path(code.get_unzipped_code_location())

    def _layer_dirs(self) -> list[str]:
        return [
            str(layer.code.get_unzipped_code_location())
            for layer in self.function_version.config.layers
        ]

    def _spawn(self) -> _Worker:
        cfg = self.function_version.config
        worker_config = {
            "response_fd": "__RESPONSE_FD__",
            "code_dir": str(self._code_dir()),
            "layer_dirs": self._layer_dirs(),
            "runtime_dir": runtime_dir(),
            "handler": cfg.handler,
            "function_name": self.function_version.id.function_name,
            "function_version": self.function_version.id.qualifier,
            "arn": self.function_version.qualified_arn,
            "memory_size": cfg.memory_size,
            "log_stream_name": self._env.get("AWS_LAMBDA_LOG_STREAM_NAME", self.id),
        }
        # the fd number is only known once the pipe exists: _Worker substitutes it
        # -I: no PYTHONPATH, no user site, no script directory; -S: no site-packages at all
        # (the worker adds the runtime's packages itself, where Lambda has them)
        argv = [
            worker_python(),
            "-I",
            "-S",
            "-u",
            WORKER_SCRIPT,
            json.dumps(worker_config),
        ]
        self._worker = _Worker(argv, self._env, worker_config["code_dir"], self._out_path)
        return self._worker

    # ---- invoke ----------------------------------------------------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout_s = float(self.function_version.config.timeout)
        self._invoke_started = time.monotonic()
        with self._lock:
            worker = self._worker
            if worker is None or not worker.alive():
                worker = self._spawn()
            if worker.ready is None:
                # init (imports) has its own budget, as on AWS: not the function timeout
                init_budget = max(INIT_TIMEOUT_S, timeout_s)
                message = worker.next_message(init_budget - (time.monotonic() - worker.spawned))
                if message is None:
                    return self._timed_out(worker, request_id, init_budget, phase="init")
                if message is _EOF:
                    return self._died(worker, request_id, phase="init")
                worker.ready = message
            if not worker.ready.get("ready"):
                # import error: report it, restart on the next invoke (as AWS re-inits)
                logs = worker.read_output()
                worker.kill()
                self._worker = None
                return self._result(request_id, worker.ready["payload"], True, logs)
            deadline = time.monotonic() + timeout_s
            request: dict[str, Any] = dict(payload)
            request["deadline-ms"] = int((time.time() + (deadline - time.monotonic())) * 1000)
            try:
                worker.send(request)
            except OSError:
                return self._died(worker, request_id, phase="invoke")
            message = worker.next_message(deadline - time.monotonic())
            if message is None:
                return self._timed_out(worker, request_id, timeout_s)
            if message is _EOF:
                return self._died(worker, request_id, phase="invoke")
            return self._result(
                request_id, message["payload"], not message.get("ok"), worker.read_output()
            )

    def _timed_out(
        self, worker: _Worker, request_id: str, timeout_s: float, phase: str = "invoke"
    ) -> InvocationResult:
        worker.kill()
        self._worker = None
        what = "Task" if phase == "invoke" else "Init phase"
        error = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": (
                f"RequestId: {request_id} Error: {what} timed out after {timeout_s:.2f} seconds"
            ),
        }
        logs = worker.read_output() + f"{what} timed out after {timeout_s:.2f} seconds\n"
        return self._result(request_id, json.dumps(error), True, logs)

    def _died(self, worker: _Worker, request_id: str, phase: str) -> InvocationResult:
        worker.kill()
        self._worker = None
        code = worker.proc.returncode
        error = {
            "errorType": "Runtime.ExitError",
            "errorMessage": (
                f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
                f" (during {phase})"
            ),
        }
        return self._result(request_id, json.dumps(error), True, worker.read_output())

    def _result(
        self, request_id: str, payload: str, is_error: bool, output: str
    ) -> InvocationResult:
        duration_ms = (time.monotonic() - self._invoke_started) * 1000
        memory = self.function_version.config.memory_size
        if output and not output.endswith("\n"):
            output += "\n"
        logs = (
            f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n"
            f"{output}"
            f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, round(duration_ms))} ms\tMemory Size: {memory} MB\n"
        )
        self._keep_logs(logs, is_error)
        return InvocationResult(
            request_id=request_id, payload=payload.encode(), is_error=is_error, logs=logs
        )

    # ---- logs ------------------------------------------------------------------------------
    def _keep_logs(self, logs: str, is_error: bool) -> None:
        block = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {'ERROR ' if is_error else ''}{logs}"
        self._logs.append(block)
        self._log_chars += len(block)
        while self._log_chars > MAX_KEPT_LOG_CHARS and len(self._logs) > 1:
            self._log_chars -= len(self._logs.pop(0))
        try:
            with open(self._function_log, "a", encoding="utf-8") as f:
                f.write(block)
        except OSError as exc:
            LOG.debug("could not append to %s: %s", self._function_log, exc)

    def get_logs(self) -> str:
        return "".join(self._logs)

    # ---- addresses -------------------------------------------------------------------------
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{_gateway_port()}/_localstack_lambda/{self.id}"

    # ---- versions --------------------------------------------------------------------------
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        code = function_version.config.code
        if code is None:
            raise LambdaRuntimeException(
                "opspawn executor: only zip-packaged functions are supported (no images)"
            )
        code.prepare_for_execution()
        for layer in function_version.config.layers:
            layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        return None

    @classmethod
    def validate_environment(cls) -> bool:
        python, runtime = worker_python(), runtime_dir()
        if not python or not os.path.exists(python):
            LOG.error(
                "OPSPAWN_LAMBDA_PYTHON=%r is not an interpreter: start LocalStack with "
                "`python -m opspawn.offline up` (it points this at the Lambda runtime's Python)",
                python,
            )
            return False
        if not runtime or not os.path.isdir(runtime):
            LOG.error(
                "OPSPAWN_LAMBDA_RUNTIME=%r is missing: run `python -m opspawn.offline install`",
                runtime,
            )
            return False
        return True
