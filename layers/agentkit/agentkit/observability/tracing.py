"""X-Ray tracing through Powertools' Tracer, loaded only when tracing is on.

One trace per task: API Gateway starts it, the submit function's StartExecution carries it
(botocore sends `_X_AMZN_TRACE_ID` as the X-Amzn-Trace-Id header), the state machine
passes it to every Lambda it invokes. Each handler's subsegment carries the task id and
tenant as annotations (searchable: `annotation.task_id = "..."`); a model call or an MCP
call is a subsegment of its own (`span`).

Tracing is off outside Lambda and where the template says so (`TracingEnabled=false` sets
POWERTOOLS_TRACE_DISABLED): then `traced` returns the handler unchanged and `span` does
nothing, and the X-Ray SDK (about a second of imports) is never loaded.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agentkit.config.environment import environ

if TYPE_CHECKING:
    from aws_lambda_powertools.tracing import Tracer

logger = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Any])

#: Modules whose calls become subsegments: every AWS call (DynamoDB, S3, Step Functions,
#: SQS). Provider and MCP calls have spans of their own; patching httpx too would import it
#: at every function's cold start.
PATCHED_MODULES = ("botocore",)
_TRUE = {"1", "true", "yes", "on"}

_tracer: list[Tracer] = []
#: The invocation's task id and tenant, copied onto the spans opened during it.
_invocation: dict[str, str] = {}


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True in a Lambda function (AWS_LAMBDA_FUNCTION_NAME) unless POWERTOOLS_TRACE_DISABLED
    says otherwise; never under `sam local` (no daemon there)."""
    env = environ() if env is None else env
    if not env.get("AWS_LAMBDA_FUNCTION_NAME") or env.get("AWS_SAM_LOCAL"):
        return False
    return (env.get("POWERTOOLS_TRACE_DISABLED") or "").strip().lower() not in _TRUE


def tracer() -> Tracer | None:
    """The function's Tracer (made at first use), or None when tracing is off."""
    if not tracing_enabled():
        return None
    if not _tracer:
        from aws_lambda_powertools.tracing import Tracer

        _tracer.append(Tracer(patch_modules=PATCHED_MODULES))
    return _tracer[0]


def traced(handler: Handler) -> Handler:
    """A Lambda handler traced: its subsegment (`## <handler>`) annotated with the task id
    and tenant found in the event (or, for submit, the response). Tracing off: the handler
    itself, unchanged."""
    active = tracer()
    if active is None:
        return handler

    @functools.wraps(handler)
    def annotated(event: Any, context: Any) -> Any:
        _invocation.clear()
        _invocation.update(invocation_annotations(event))
        active.put_annotation("function", environ().get("AWS_LAMBDA_FUNCTION_NAME", ""))
        for key, value in _invocation.items():
            active.put_annotation(key, value)
        result = handler(event, context)
        if "task_id" not in _invocation:
            task_id = _task_id_of_result(result)
            if task_id:
                _invocation["task_id"] = task_id
                active.put_annotation("task_id", task_id)
        return result

    return active.capture_lambda_handler(annotated, capture_response=False)  # type: ignore[return-value]


def invocation() -> dict[str, str]:
    """The task id and tenant of the invocation being traced (empty when tracing is off)."""
    return dict(_invocation)


def annotate(**values: str | int | float | bool) -> None:
    """Annotate the current subsegment (no-op when tracing is off)."""
    active = tracer()
    if active is None:
        return
    for key, value in values.items():
        try:
            active.put_annotation(key, cast(Any, value))
        except Exception:  # a trace detail never fails the work
            logger.debug("annotation %s not recorded", key, exc_info=True)


@contextmanager
def span(
    name: str,
    *,
    annotations: Mapping[str, str | int | float | bool] | None = None,
    metadata: Mapping[str, Any] | None = None,
    namespace: str = "opspawn",
) -> Iterator[Any]:
    """A subsegment around a call (yields it, or None when tracing is off); an exception
    leaving the block is recorded on it. The invocation's task id and tenant are copied on."""
    active = tracer()
    if active is None:
        yield None
        return
    with active.provider.in_subsegment(name=name[:200]) as subsegment:
        for key, value in {**_invocation, **(annotations or {})}.items():
            subsegment.put_annotation(key, cast(Any, value))
        for key, value in (metadata or {}).items():
            subsegment.put_metadata(key, value, namespace)
        yield subsegment


def traced_call(
    name: str, describe: Callable[..., Mapping[str, str]] | None = None
) -> Callable[[Handler], Handler]:
    """A function or method run inside `span(name)`, annotated with `describe(*args,
    **kwargs)` (e.g. the MCP server and tool)."""

    def decorate(function: Handler) -> Handler:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not tracing_enabled():
                return function(*args, **kwargs)
            with span(name, annotations=describe(*args, **kwargs) if describe else None):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


# --- what an invocation is about


def invocation_annotations(event: Any) -> dict[str, str]:
    """The task id and tenant an event names: a state's payload (`task_id`), an API request
    (path parameter, the authorizer's tenant), an SQS batch (its first message's body, and
    the trace of the state that sent it: SQS-triggered invocations start a trace of their
    own, which X-Ray links to the sender's)."""
    found: dict[str, str] = {}
    if not isinstance(event, Mapping):
        return found
    task_id = event.get("task_id")
    if isinstance(task_id, str):
        found["task_id"] = task_id
    request = event.get("requestContext")
    if isinstance(request, Mapping):
        authorizer = request.get("authorizer")
        if isinstance(authorizer, Mapping) and isinstance(authorizer.get("tenant_id"), str):
            found["tenant_id"] = authorizer["tenant_id"]
        path = event.get("pathParameters")
        if isinstance(path, Mapping) and isinstance(path.get("task_id"), str):
            found["task_id"] = path["task_id"]
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        record = records[0]
        try:
            body = json.loads(record.get("body") or "{}")
        except ValueError:
            body = {}
        if isinstance(body, Mapping) and isinstance(body.get("task_id"), str):
            found["task_id"] = body["task_id"]
        attributes = record.get("attributes")
        header = attributes.get("AWSTraceHeader") if isinstance(attributes, Mapping) else None
        root = trace_root(header) if isinstance(header, str) else None
        if root:
            found["sender_trace_id"] = root
    return found


def trace_root(header: str) -> str | None:
    """`Root=1-...;Parent=...;Sampled=1` → `1-...`."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


def _task_id_of_result(result: Any) -> str | None:
    """The task id a handler answered (a state's output, or an API response's body)."""
    if not isinstance(result, Mapping):
        return None
    if isinstance(result.get("task_id"), str):
        return str(result["task_id"])
    body = result.get("body")
    if isinstance(body, str) and '"task_id"' in body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if isinstance(parsed, Mapping) and isinstance(parsed.get("task_id"), str):
            return str(parsed["task_id"])
    return None
