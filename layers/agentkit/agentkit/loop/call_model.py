"""CallModel: one model turn. Reads the conversation, calls the model, stores the reply,
then decides the reply's tool calls (`gate_tools`) so the state machine only routes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelError,
    ModelRequestError,
    ProviderWaitError,
    ResponseFormat,
    ToolChoice,
)
from agentkit.llm.router import ModelRouter, RoutedResponse
from agentkit.llm.windows import context_window
from agentkit.loop.gate_tools import gate_tools
from agentkit.memory.context import (
    MAX_MODEL_CONTENT_CHARS,
    FittedContext,
    context_overflow,
    fit_context,
    harder_window,
)
from agentkit.models.domain import (
    Message,
    Task,
    TaskEvent,
    TaskStatus,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    WaitInfo,
    utc_now,
)
from agentkit.models.payloads import ModelStepOutput, TurnRef
from agentkit.observability.metrics import provider_wait
from agentkit.security import SecurityManager
from agentkit.store import ConflictError, TaskStore
from agentkit.store.approvals import ApprovalStore

# (task, "provider:model") → client (the scripted client's replies are read by task id).
ClientFactory = Callable[[Task, str], BaseLLMClient]

__all__ = ["MAX_MODEL_CONTENT_CHARS", "MISSING_RESULT", "budget_exhausted", "call_model"]

class MissingToolSnapshotError(RuntimeError):
    """CallModel ran for a task whose Plan step did not store its tool surface."""


MISSING_RESULT = "error: the tool call did not complete (it timed out or could not run)"


def call_model(
    ref: TurnRef,
    *,
    store: TaskStore,
    client_for: ClientFactory,
    router: ModelRouter | None = None,
    time_budget_s: float = 60.0,
    security: SecurityManager | None = None,
    approvals: ApprovalStore | None = None,
    context_windows: Mapping[str, int] | None = None,
    reply_reserve: int | None = None,
) -> ModelStepOutput:
    """Perform turn `ref.turn + 1`. `time_budget_s` bounds in-Lambda retries and backoff.
    `security` (default: the empty policy; the handler passes the deployment's) decides
    the reply's tool calls. The conversation is fitted to the smallest context window of
    the task's models first (agentkit.memory.context; `context_windows` overrides entries
    of llm/context_windows.json), folding older turns into a summary when needed, leaving
    `reply_reserve` tokens for the reply (default: DEFAULT_REPLY_RESERVE; the handler
    passes the larger output limit a provider client applies by itself)."""
    task = store.require_task(ref.task_id)

    def output(turn: int, reply: Message, *, retried: bool) -> ModelStepOutput:
        return _output(store, task, turn, reply, security=security or SecurityManager(),
                       approvals=approvals or ApprovalStore(store), retried=retried)

    turn = ref.turn + 1
    stop = ModelStepOutput(task_id=task.task_id, turn=ref.turn, action="stop")
    if task.status != TaskStatus.RUNNING:
        return stop  # cancelled or ended elsewhere: nothing more to do
    if task.turn >= turn:
        # A retry after the reply was already stored: answer from the record, call no model.
        stored = store.get_message(task.task_id, turn, 0)
        if stored is not None:
            return output(turn, stored, retried=True)

    _fill_missing_tool_results(store, task.task_id, ref.turn)

    if _stopped_for_budget(store, task, turn):
        return stop

    # The tool surface Plan fixed (it lists the MCP servers; this function does not carry
    # their SDK): every turn sees the same tools.
    tools = store.get_tool_specs(task.task_id)
    if tools is None:
        raise MissingToolSnapshotError(
            f"task {task.task_id} has no tool snapshot: its Plan step did not complete"
        )
    models = [task.model, *task.fallback_models]
    model_router = router or ModelRouter()
    started = time.monotonic()

    def route(request: LLMRequest) -> tuple[LLMResponse, str]:
        routed = model_router.complete(
            models,
            request,
            client_for=lambda model: client_for(task, model),
            time_budget_s=max(time_budget_s - (time.monotonic() - started), 1.0),
            tenant=task.tenant_id,
        )
        return routed.response, routed.model

    try:
        if turn == 1 and task.plan != "never":
            planned = _plan_first(store, task, tools, route=route, started=started)
            if planned is None:
                return stop
            task = planned
            if _stopped_for_budget(store, task, turn):
                return stop
        if task.plan_steps:
            # Imported only for a planned task: building its spec costs cold start.
            from agentkit.planner.update_plan import UPDATE_PLAN_SPEC

            tools = [*tools, UPDATE_PLAN_SPEC]
        fitted = fit_context(
            task, tools, store=store, turn=turn, summarise=route, reserve=reply_reserve,
            window=min(context_window(model, context_windows) for model in models),
        )
        if fitted.compaction is not None:
            _record_compaction(store, task.task_id, turn, fitted, _ms_since(started))
            # The summary's usage is now the task's: re-read it, and its budgets again.
            task = store.require_task(task.task_id)
            if task.status != TaskStatus.RUNNING or _stopped_for_budget(store, task, turn):
                return stop
        request = LLMRequest(
            model=task.model, messages=fitted.messages, tools=tools, turn=turn,
            **_answer_shape(task, fitted.messages, tools),
        )

        def call(request: LLMRequest) -> RoutedResponse:
            # What is left of the step's time budget, at the moment of the call.
            return model_router.complete(
                models,
                request,
                client_for=lambda model: client_for(task, model),
                time_budget_s=max(time_budget_s - (time.monotonic() - started), 1.0),
                tenant=task.tenant_id,
            )

        call_started = time.monotonic()
        try:
            routed = call(request)
        except ModelRequestError as refused:
            if not context_overflow(refused):
                raise
            # Longer than the provider's context after all: fit harder, call again once.
            fitted = fit_context(task, tools, store=store, turn=turn, summarise=route,
                                 reserve=reply_reserve, window=harder_window(fitted))
            if fitted.compaction is not None:
                _record_compaction(store, task.task_id, turn, fitted, _ms_since(call_started),
                                   refused=str(refused))
                task = store.require_task(task.task_id)
                if task.status != TaskStatus.RUNNING or _stopped_for_budget(store, task, turn):
                    return stop
            request = request.model_copy(update={"messages": fitted.messages})
            call_started = time.monotonic()
            routed = call(request)
    except ProviderWaitError as wait:
        return _wait_for_provider(store, task, turn, wait, stop)
    except ModelError as error:
        store.add_event(
            task.task_id,
            TaskEvent(
                kind="model_call",
                turn=turn,
                name=task.model,
                error=str(error),
                duration_ms=_ms_since(started),
                detail={"error_type": type(error).__name__},
            ),
        )
        raise
    # The reply keeps its call's usage: the next fitting measures the turns from it.
    reply = _unique_call_ids(routed.response.message, turn).model_copy(
        update={"model": routed.model, "usage": routed.response.usage}
    )
    event = TaskEvent(
        kind="model_call",
        turn=turn,
        name=routed.model,
        duration_ms=_ms_since(call_started),
        usage=routed.response.usage,
        detail={
            "finish_reason": routed.response.finish_reason,
            "tool_calls": len(reply.tool_calls),
            "failed_attempts": [f"{a.model}: {a.error}" for a in routed.attempts],
            "context": fitted.detail(),
        },
    )
    try:
        store.commit_model_turn(task.task_id, turn, reply, task.usage + routed.response.usage)
    except ConflictError:
        # Step Functions and Lambda deliver at least once, and a cancel may land mid-call.
        current = store.require_task(task.task_id)
        committed = store.get_message(task.task_id, turn, 0)
        if current.turn >= turn and committed is not None:
            # A twin of this step committed the turn first: answer from what it stored
            # (this call's reply is dropped and its usage not counted twice).
            return output(turn, committed, retried=True)
        if current.status != TaskStatus.RUNNING:
            # Ended meanwhile (cancelled): the call happened and was paid for, so its usage
            # and its event stay with the task.
            store.add_usage(task.task_id, routed.response.usage)
            event.detail["after"] = current.status.value
            store.add_event(task.task_id, event)
            return stop
        raise
    store.add_event(task.task_id, event)
    return output(turn, reply, retried=False)


def _wait_for_provider(
    store: TaskStore, task: Task, turn: int, wait: ProviderWaitError, stop: ModelStepOutput
) -> ModelStepOutput:
    """No model can be called now: wait in the state machine (no compute billed) and call
    again, until the task's patience (`max_wait_seconds`) is used up."""
    seconds = max(1, math.ceil(wait.wait_seconds))
    patience = task.max_wait_seconds
    if patience is not None and task.waited_seconds + seconds > patience:
        reason = (
            f"gave up waiting for {wait.provider} ({wait.reason}) after "
            f"{task.waited_seconds} s of waiting (max_wait_seconds {patience}): {wait}"
        )
        if store.finish_task(task.task_id, TaskStatus.FAILED, error=reason[:2000]):
            store.add_event(
                task.task_id,
                TaskEvent(kind="status", turn=turn, name=TaskStatus.FAILED.value, error=reason),
            )
        return stop
    now = datetime.now(UTC)
    info = WaitInfo(
        provider=wait.provider,
        reason=wait.reason,
        message=str(wait)[:500],
        until=(now + timedelta(seconds=seconds)).isoformat(timespec="seconds"),
        since=(task.waiting.since if task.waiting else utc_now()),
    )
    recorded = store.update_task(
        task.task_id,
        changes={
            "waiting": info.model_dump(mode="json"),
            "waited_seconds": task.waited_seconds + seconds,
        },
        allowed_statuses=[TaskStatus.RUNNING],
        expected_turn=task.turn,
    )
    if not recorded:
        return stop  # cancelled or moved on meanwhile
    store.add_event(
        task.task_id,
        TaskEvent(
            kind="wait",
            turn=turn,
            name=wait.provider,
            error=str(wait)[:1000],
            detail={"reason": wait.reason, "wait_seconds": seconds, "until": info.until,
                    "waited_seconds": task.waited_seconds + seconds},
        ),
    )
    provider_wait(provider=wait.provider, reason=wait.reason, seconds=seconds, tenant_id=task.tenant_id, waited_seconds=task.waited_seconds + seconds, task_id=task.task_id)  # noqa: E501
    return ModelStepOutput(
        task_id=task.task_id, turn=task.turn, action="wait", wait_seconds=seconds
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _record_compaction(
    store: TaskStore, task_id: str, turn: int, fitted: FittedContext, duration_ms: int,
    refused: str | None = None,
) -> None:
    """The timeline's entry for a compaction: which turns were folded, what it cost."""
    compaction = fitted.compaction
    assert compaction is not None and fitted.summary is not None
    store.add_event(
        task_id,
        TaskEvent(
            kind="compaction",
            turn=turn,
            name=fitted.summary.model,
            duration_ms=duration_ms,
            usage=compaction.usage,
            detail={
                "folded_turns": [compaction.folded[0], compaction.folded[-1]],
                "summary_through_turn": fitted.summary.through_turn,
                "summary_calls": len(compaction.summaries),
                "summary_chars": len(fitted.summary.text),
                "tokens_before": compaction.tokens_before,
                "tokens_after": fitted.tokens,
                "window": fitted.window,
                "reserve": fitted.reserve,
                # Set when the provider refused the request fitted before as too long.
                **({"refused": refused[:500]} if refused else {}),
            },
        ),
    )


def _stopped_for_budget(store: TaskStore, task: Task, turn: int) -> bool:
    """Stop the task (BUDGET_EXCEEDED) when a budget forbids model call `turn`."""
    exhausted = budget_exhausted(task, turn)
    if not exhausted:
        return False
    if store.finish_task(task.task_id, TaskStatus.BUDGET_EXCEEDED, error=exhausted):
        store.add_event(
            task.task_id,
            TaskEvent(
                kind="status", turn=turn, name=TaskStatus.BUDGET_EXCEEDED.value, error=exhausted
            ),
        )
    return True


def budget_exhausted(task: Task, next_turn: int) -> str | None:
    """Why the task may not make model call `next_turn`, or None. Checked before each call,
    so the partial conversation and the usage spent so far stay with the task."""
    # Per run (agentkit.loop.runs): a follow-up run counts its own turns and spending.
    usage = task.run_usage
    if next_turn - task.run_first_turn > task.max_turns:
        return f"max_turns ({task.max_turns}) reached before a final answer"
    if task.max_tokens is not None and usage.total_tokens >= task.max_tokens:
        return (
            f"max_tokens ({task.max_tokens}) reached: {usage.total_tokens} tokens "
            "spent before a final answer"
        )
    if task.max_cost_usd is not None and usage.cost_usd >= task.max_cost_usd:
        return (
            f"max_cost_usd ({task.max_cost_usd:g}) reached: ${usage.cost_usd:.6f} "
            "spent before a final answer"
        )
    return None


def _output(
    store: TaskStore,
    task: Task,
    turn: int,
    reply: Message,
    *,
    security: SecurityManager,
    approvals: ApprovalStore,
    retried: bool,
) -> ModelStepOutput:
    if not reply.tool_calls:
        if task.output_schema is not None:
            return _shaped_final(store, task, turn, reply)
        return ModelStepOutput(task_id=task.task_id, turn=turn, action="final")
    # A retried step may find some results stored already (one query); a fresh turn has none.
    answered = frozenset(
        m.tool_call_id or "" for m in store.list_messages(task.task_id, turn) if m.role == "tool"
    ) if retried else frozenset()
    if task.plan_steps:
        # update_plan is answered here, without a tool step.
        answered |= _update_plan(store, task, turn, reply.tool_calls, answered)
    gated = gate_tools(task, turn, reply.tool_calls, store=store, security=security,
                       approvals=approvals, answered=answered)
    return ModelStepOutput(
        task_id=task.task_id,
        turn=turn,
        action="tool_calls",
        run_turn=turn - task.run_first_turn,
        tool_calls=gated.tool_calls,
        approvals=gated.approvals,
        route=gated.route,
        delegations=gated.delegations,
    )


# --- the plan (agentkit.planner)


def _plan_first(
    store: TaskStore,
    task: Task,
    tools: list[ToolSpec],
    *,
    route: Callable[[LLMRequest], tuple[LLMResponse, str]],
    started: float,
) -> Task | None:
    """Before the first turn: the task's plan, asked of its model once (a retried step finds
    it on the task), written to the task with the call's usage, shown to the model as
    instructions in the opening, and recorded as a `plan` event. A reply that is no plan
    leaves the task without one (the event says why), and so does a model that refuses the
    call: planning helps, it never fails a task. None when the task stopped meanwhile."""
    if task.plan_steps is None:
        from agentkit.planner.planning import PlanReplyError, plan_from_reply, planning_request

        try:
            response, model = route(planning_request(task, tools, model=task.model))
        except ModelRequestError as refused:
            # E.g. a model without structured output: the task goes on unplanned. (A wait
            # or a retryable error still propagates: the plan is asked again after it.)
            response, model = None, task.model
            error: str | None = f"the planning call failed: {refused}"[:1000]
        else:
            error = None
        try:
            steps = plan_from_reply(task, response) if response is not None else []
        except PlanReplyError as problem:
            steps, error = [], str(problem)
        usage = response.usage if response is not None else Usage()
        recorded = store.update_task(
            task.task_id,
            changes={"plan_steps": [step.model_dump(mode="json") for step in steps],
                     "usage": (task.usage + usage).model_dump(mode="json")},
            allowed_statuses=[TaskStatus.RUNNING],
            expected_turn=0,
        )
        if recorded:
            store.add_event(task.task_id, TaskEvent(
                kind="plan", name=model, duration_ms=_ms_since(started), usage=usage,
                error=error, detail={"mode": task.plan, "needed": bool(steps),
                                     "steps": [step.model_dump() for step in steps]},
            ))
        task = store.require_task(task.task_id)
        if task.status != TaskStatus.RUNNING:
            if not recorded:
                store.add_usage(task.task_id, usage)  # the call was made and paid for
            return None  # cancelled meanwhile
        # Else, if the write failed, a twin of this step planned and went on: its plan
        # stands, and committing this turn will find the twin's turn (ConflictError below).
    if task.plan_steps:
        from agentkit.planner.planning import plan_message

        # Write-once: a retried step keeps the first; the opening's last message.
        store.put_message(task.task_id, 0, 2,
                          Message(role="system", content=plan_message(task.plan_steps)))
    return task


def _update_plan(
    store: TaskStore, task: Task, turn: int, calls: list[ToolCall], answered: frozenset[str]
) -> frozenset[str]:
    """Answer the turn's `update_plan` calls (the plan on the task, a `plan` event, the
    tool result); the ids of the calls answered."""
    from agentkit.planner.update_plan import UPDATE_PLAN, apply_update

    handled: set[str] = set()
    for index, call in enumerate(calls):
        if call.name != UPDATE_PLAN or call.id in answered:
            continue
        update = apply_update(call)
        # The plan first, then the result: a retry that finds the result stored skips it.
        if update.steps is not None:
            store.update_task(
                task.task_id,
                changes={"plan_steps": [step.model_dump(mode="json") for step in update.steps]},
                allowed_statuses=[TaskStatus.RUNNING],
            )
        result = ToolResult(call_id=call.id, name=call.name, content=update.result,
                            is_error=update.is_error)
        if store.put_message(task.task_id, turn, index + 1, result.to_message()):
            store.add_event(task.task_id, TaskEvent(
                kind="plan", turn=turn, name=UPDATE_PLAN, call_id=call.id,
                error=update.result[:500] if update.is_error else None,
                detail={"steps": [step.model_dump() for step in update.steps or []]},
            ))
        handled.add(call.id)
    return frozenset(handled)


# --- the answer's shape (agentkit.output_schema)

#: The name on the user message that asks for a repaired answer (one per task at most
#: in a row: the answer after it must validate).
REPAIR = "output_schema"


def _answer_shape(task: Task, messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
    """The request's structured-output fields: the task's output schema as the provider's
    response format; after a repair request, no tool calls either."""
    if task.output_schema is None:
        return {}
    shape: dict[str, Any] = {
        "response_format": ResponseFormat(name="answer", json_schema=task.output_schema)
    }
    last = messages[-1] if messages else None
    if tools and last is not None and last.role == "user" and last.name == REPAIR:
        shape["tool_choice"] = ToolChoice(mode="none")
    return shape


def _shaped_final(store: TaskStore, task: Task, turn: int, reply: Message) -> ModelStepOutput:
    """A final answer of a task with an output schema: valid, it is kept as `answer_json`
    and the task finalizes; invalid, the model is asked once to repair it; invalid right
    after a repair, the task fails naming the schema error."""
    from agentkit.output_schema import AnswerShapeError, check_answer

    try:
        value = check_answer(task.output_schema or {}, reply.content)
    except AnswerShapeError as problem:
        previous = store.get_message(task.task_id, turn - 1, 1) if turn > 1 else None
        if previous is not None and previous.role == "user" and previous.name == REPAIR:
            reason = f"the final answer does not match output_schema: {problem}"
            if store.finish_task(task.task_id, TaskStatus.FAILED, error=reason[:2000]):
                store.add_event(task.task_id, TaskEvent(
                    kind="status", turn=turn, name=TaskStatus.FAILED.value, error=reason,
                ))
            return ModelStepOutput(task_id=task.task_id, turn=turn, action="stop")
        repair = (
            f"Your answer does not match the required JSON Schema: {problem}. Answer again "
            "with only the JSON value, matching this schema:\n"
            + json.dumps(task.output_schema, ensure_ascii=False)
        )
        store.put_message(task.task_id, turn, 1,
                          Message(role="user", name=REPAIR, content=repair))
        return ModelStepOutput(task_id=task.task_id, turn=turn, action="tool_calls",
                               route="call_model")
    store.update_task(task.task_id, changes={"answer_json": value},
                      allowed_statuses=[TaskStatus.RUNNING])
    return ModelStepOutput(task_id=task.task_id, turn=turn, action="final")


def _unique_call_ids(message: Message, turn: int) -> Message:
    """Providers' call ids are opaque; make sure they are present and distinct within a turn."""
    seen: set[str] = set()
    calls = []
    for index, call in enumerate(message.tool_calls):
        call_id = call.id if call.id and call.id not in seen else f"call_{turn}_{index}"
        seen.add(call_id)
        calls.append(call.model_copy(update={"id": call_id}))
    return message.model_copy(update={"tool_calls": calls})


def _fill_missing_tool_results(store: TaskStore, task_id: str, turn: int) -> None:
    """Every tool call of the previous turn gets a result, an error one if it never came."""
    if turn < 1:
        return
    assistant = store.get_message(task_id, turn, 0)
    if assistant is None or not assistant.tool_calls:
        return
    present = {m.tool_call_id for m in store.list_messages(task_id, turn) if m.role == "tool"}
    for index, call in enumerate(assistant.tool_calls):
        if call.id not in present:
            missing = ToolResult(
                call_id=call.id, name=call.name, content=MISSING_RESULT, is_error=True
            )
            store.put_message(task_id, turn, index + 1, missing.to_message())
