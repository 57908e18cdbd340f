"""Lambda worker: one persistent process per LocalStack Lambda environment.

Run by the executor as ``$OPSPAWN_LAMBDA_PYTHON -I -S -u worker.py CONFIG_JSON`` with the
function's environment. It must stay standalone (stdlib only): it runs on the Lambda
runtime's bare interpreter, which has neither LocalStack nor this plugin.

Protocol (JSON lines):
* requests arrive on stdin: ``{"invoke-id", "invoked-function-arn", "payload", "trace-id",
  "deadline-ms"}`` (``deadline-ms`` = epoch milliseconds when the invocation times out);
* responses go to the fd the executor passes in the config (``"response_fd"``), never
  stdout: ``{"ok": bool, "payload": str}``, where ``payload`` is the handler's JSON result or
  Lambda's error document ``{errorMessage, errorType, stackTrace}``;
* the worker's stdout/stderr (fds 1 and 2, so C-level output and child processes too) are
  a regular file opened for append by the executor; the worker truncates it at the start of
  each invocation, so after the response it holds exactly that invocation's output.
* the first line written to the response fd is ``{"ready": true}`` (or an init error).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The subset of the AWS Lambda Python context object handlers use."""

    def __init__(self, request: dict[str, Any], config: dict[str, Any]) -> None:
        self.aws_request_id: str = request["invoke-id"]
        self.invoked_function_arn: str = request.get("invoked-function-arn") or config["arn"]
        self.function_name: str = config["function_name"]
        self.function_version: str = config.get("function_version", "$LATEST")
        self.memory_limit_in_mb: int = int(config.get("memory_size", 128))
        self.log_group_name: str = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = config.get("log_stream_name", "offline")
        self.identity = None
        self.client_context = None
        self._deadline_ms: int = int(request["deadline-ms"])
        self.tenant_id = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _user_tb(exc: BaseException) -> Any:
    """The traceback without this worker's own frame (as AWS shows only the handler's)."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def _log_exception(exc: BaseException) -> None:
    """Like the AWS runtime: ``[ERROR] Type: message`` then the traceback, on stderr."""
    print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
    traceback.print_exception(type(exc), exc, _user_tb(exc), file=sys.stderr)


def _error_document(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    tb = traceback.extract_tb(_user_tb(exc))
    doc: dict[str, Any] = {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_list(tb),
    }
    if request_id:
        doc["requestId"] = request_id
    return doc


def _setup_path(config: dict[str, Any]) -> None:
    """Lambda's order: function code, each layer (last layer first, as /opt overlays; its
    ``python/lib/pythonX.Y/site-packages`` before its ``python/``), the standard library,
    then the runtime's own packages (boto3, botocore), so a layer's copy of boto3 wins."""
    here = os.path.dirname(os.path.abspath(__file__))
    stdlib = [p for p in sys.path if p and os.path.abspath(p) != here]
    front: list[str] = [config["code_dir"]]
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for layer_dir in reversed(config.get("layer_dirs", [])):
        for sub in (os.path.join("python", "lib", pyver, "site-packages"), "python"):
            candidate = os.path.join(layer_dir, sub)
            if os.path.isdir(candidate):
                front.append(candidate)
    runtime = [config["runtime_dir"]] if config.get("runtime_dir") else []
    sys.path[:] = front + [p for p in stdlib if p not in front] + runtime


def _load_handler(handler: str) -> Any:
    module_name, _, func_name = handler.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{handler}': expected 'module.function'")
    module = importlib.import_module(module_name.replace("/", "."))
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise AttributeError(f"Handler '{func_name}' missing on module '{module_name}'") from None


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    response = os.fdopen(int(config["response_fd"]), "w", buffering=1)
    log_fd = 1  # a regular file (O_APPEND), shared with fd 2

    def reply(doc: dict[str, Any]) -> None:
        response.write(json.dumps(doc) + "\n")
        response.flush()

    _setup_path(config)
    os.chdir(config["code_dir"])
    try:
        handler = _load_handler(config["handler"])
    except BaseException as exc:  # init error: report it on every invocation
        init_error = _error_document(exc)
        if isinstance(exc, ImportError):
            # what the AWS runtime answers for a module that is not in the package
            module = config["handler"].rpartition(".")[0]
            init_error["errorType"] = "Runtime.ImportModuleError"
            init_error["errorMessage"] = f"Unable to import module '{module}': {exc}"
            init_error["stackTrace"] = []
        elif isinstance(exc, SyntaxError):
            init_error["errorType"] = "Runtime.UserCodeSyntaxError"
        _log_exception(exc)
        sys.stderr.flush()
        reply({"ready": False, "payload": json.dumps(init_error)})
        return
    reply({"ready": True})

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        with contextlib.suppress(OSError):  # not a regular file when run by hand
            os.ftruncate(log_fd, 0)
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace-id") or ""
        context = LambdaContext(request, config)
        try:
            event = json.loads(request["payload"]) if request.get("payload") else {}
            result = handler(event, context)
            doc = {"ok": True, "payload": json.dumps(result)}
        except BaseException as exc:
            _log_exception(exc)
            doc = {"ok": False, "payload": json.dumps(_error_document(exc, context.aws_request_id))}
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                sys.stdout.flush()
                sys.stderr.flush()
                reply(doc)
                return
        sys.stdout.flush()
        sys.stderr.flush()
        reply(doc)


if __name__ == "__main__":
    main()
