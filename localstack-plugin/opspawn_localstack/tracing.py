"""X-Ray trace propagation offline, as AWS does it (LocalStack community has no X-Ray).

On AWS one trace id runs through a task: API Gateway (stage tracing on) starts the trace
and passes it to the submit function; botocore in the function sends the invocation's
``_X_AMZN_TRACE_ID`` as the ``X-Amzn-Trace-Id`` header of StartExecution, and the state
machine (tracing on) continues that trace, invoking each state's Lambda with it (and
giving an SQS message it sends the ``AWSTraceHeader`` attribute; the Lambda polled from
that queue starts a trace of its own, which X-Ray links to it).

LocalStack 4.8.1 samples no API request (``Sampled=0`` unless the caller sent a decision),
ignores StartExecution's header (it keeps only the ``traceHeader`` parameter) and invokes
a state's Lambda with no trace at all. These patches make it do as above:

* API Gateway samples every request the caller did not decide for (X-Ray's default rule
  samples the first request each second, which is every request at offline rates), and
  gives its trace to the Lambda proxy integration's invocation;
* the request's authorizer is invoked in the request's trace (authorizers.py);
* StartExecution without ``traceHeader`` takes the request's ``X-Amzn-Trace-Id`` header;
* a state's Lambda invocation and SQS message carry the execution's trace (a new parent
  id each, sampled).

The functions' X-Ray SDK sends its segments to ``AWS_XRAY_DAEMON_ADDRESS``, which the
executor points at UDP 127.0.0.1:<gateway port> (see executor.py): a test listens there.

Private API of LocalStack 4.8.1: if it changes, a patch logs a warning and is left out
(traces are then cut at that hop, nothing else changes).
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from typing import Any

LOG = logging.getLogger(__name__)
HEADER = "X-Amzn-Trace-Id"
_current = threading.local()


def new_root() -> str:
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def child_header(header: str | None) -> str:
    """The header for the next hop of `header`'s trace: same root, a new parent, sampled
    unless the trace was not (a new sampled trace when there is none)."""
    parts = dict(
        part.strip().split("=", 1) for part in (header or "").split(";") if "=" in part
    )
    root = parts.get("Root") or new_root()
    sampled = parts.get("Sampled", "1")
    if sampled not in {"0", "1"}:
        sampled = "1"
    return f"Root={root};Parent={secrets.token_hex(8)};Sampled={sampled}"


def _add_header(params: dict[str, Any], **_: Any) -> None:
    """botocore before-call handler: the current thread's trace header, if any."""
    header = getattr(_current, "header", None)
    if header:
        params.setdefault("headers", {})[HEADER] = header


def call_with_trace(header: str | None, function: Any, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` with `header` on every AWS call it makes (this thread)."""
    previous = getattr(_current, "header", None)
    _current.header = header
    try:
        return function(*args, **kwargs)
    finally:
        _current.header = previous


def _patched(function: Any) -> bool:
    return bool(getattr(function, "_opspawn_trace", False))


def _mark(function: Any) -> Any:
    function._opspawn_trace = True
    return function


def install() -> None:
    """Apply every patch (each once); called at LocalStack start."""
    for patch in (_client_header, _api_gateway, _start_execution, _state_tasks):
        try:
            patch()
        except (ImportError, AttributeError) as exc:  # pragma: no cover - version drift
            LOG.warning("opspawn: trace propagation (%s) not installed: %s", patch.__name__, exc)


def _client_header() -> None:
    """Every botocore client of this process adds the thread's trace header to its calls
    (only while one is set: LocalStack's own calls are unchanged)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call  # type: ignore[attr-defined]
    if _patched(original):
        return

    @functools.wraps(original)
    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if getattr(_current, "header", None):
            self.meta.events.register("before-call", _add_header, unique_id="opspawn-trace")
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = _mark(_make_api_call)  # type: ignore[attr-defined]


def _api_gateway() -> None:
    from localstack.services.apigateway.next_gen.execute_api.handlers.parse import (
        InvocationRequestParser,
    )
    from localstack.services.apigateway.next_gen.execute_api.integrations.aws import (
        RestApiAwsProxyIntegration,
    )

    populate = InvocationRequestParser.populate_trace_id
    if not _patched(populate):

        def populate_trace_id(headers: Any) -> str:
            incoming = headers.get(HEADER, "") or ""
            header: str = populate(headers)
            if "Sampled=" not in incoming:  # no decision from the caller: sample it
                header = header.replace("Sampled=0", "Sampled=1")
            return header

        InvocationRequestParser.populate_trace_id = staticmethod(_mark(populate_trace_id))

    invoke = RestApiAwsProxyIntegration.invoke
    if not _patched(invoke):

        @functools.wraps(invoke)
        def proxy_invoke(self: Any, context: Any) -> Any:
            trace = getattr(context, "trace_id", None)
            return call_with_trace(child_header(trace) if trace else None, invoke, self, context)

        RestApiAwsProxyIntegration.invoke = _mark(proxy_invoke)


def _start_execution() -> None:
    from localstack.services.stepfunctions.provider import StepFunctionsProvider

    original = StepFunctionsProvider.start_execution
    if _patched(original):
        return

    @functools.wraps(original)
    def start_execution(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("trace_header") and len(args) < 4:
            sent = context.request.headers.get(HEADER) if context.request else None
            kwargs["trace_header"] = sent or child_header(None)
        return original(self, context, *args, **kwargs)

    StepFunctionsProvider.start_execution = _mark(start_execution)


def _execution_header(env: Any) -> str | None:
    """The trace header of the execution `env` evaluates (None if unknown)."""
    from localstack.services.stepfunctions.backend.store import sfn_stores

    try:
        execution_arn = env.states.context_object.context_object_data["Execution"]["Id"]
        parts = execution_arn.split(":")
        region, account = parts[3], parts[4]
        execution = sfn_stores[account][region].executions.get(execution_arn)
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
    header = getattr(execution, "trace_header", None) if execution is not None else None
    return child_header(header) if header else None


def _state_tasks() -> None:
    from localstack.services.stepfunctions.asl.component.state.state_execution.state_task import (
        lambda_eval_utils,
    )
    from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.state_task_service_sqs import (  # noqa: E501
        StateTaskServiceSqs,
    )

    invoke = lambda_eval_utils.execute_lambda_function_integration
    if not _patched(invoke):

        @functools.wraps(invoke)
        def execute_lambda_function_integration(env: Any, *args: Any, **kwargs: Any) -> Any:
            return call_with_trace(_execution_header(env), invoke, env, *args, **kwargs)

        lambda_eval_utils.execute_lambda_function_integration = _mark(
            execute_lambda_function_integration
        )

    send = StateTaskServiceSqs._eval_service_task
    if not _patched(send):

        @functools.wraps(send)
        def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
            return call_with_trace(_execution_header(env), send, self, env, *args, **kwargs)

        StateTaskServiceSqs._eval_service_task = _mark(_eval_service_task)
