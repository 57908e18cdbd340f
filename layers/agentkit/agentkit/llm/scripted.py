"""A client that plays a given list of replies: deterministic runs for tests and the demo.

Turn N of the conversation (the request's `turn`, else counted by the assistant messages
present) gets scripted reply N. Chosen only when a task's model is `scripted` explicitly. A
turn's `error` plays a provider failure of each kind (`rate_limited` with its
`retry_after_s`, `overloaded`, `outage`, `fatal`), raised as the provider clients raise it.

A script may open with a `plan` turn: it answers the planning call (`purpose="plan"`) as
`{"steps": [...]}`, the planner's shape; without one the planning call is answered with
no steps (no plan needed). The loop's turns are the script's other turns.

A summary call (the loop compacting the conversation, `purpose="summary"`) is answered
with a summary made from the request itself, so a script never has to foresee when the
conversation outgrows its window: the summary so far, then one line per line of the
conversation folded in that starts with `[turn N]` (what was called, what answered),
oldest lines dropped to stay within the call's max_tokens (3 bytes a token).

A memory call (a finished task with `memory: "auto"` distilling its durable facts,
`purpose="memory"`, its `turn` the one after the final answer) plays the scripted reply of
that turn when the script has one (its content: `{"facts": [...]}`), else answers that
there is nothing to remember (`{"facts": []}`), so a script without it still succeeds.
"""

from __future__ import annotations

import json

from agentkit.llm.base import (
    BaseLLMClient,
    LLMRequest,
    LLMResponse,
    ModelError,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    RateLimitedError,
    RetryableModelError,
)
from agentkit.models.domain import Message, ToolCall, Usage
from agentkit.models.scripted import ScriptedError, ScriptedTurn

# The scripted error kinds as a provider would raise them, with the HTTP status it
# would have answered (the router and the logs see the same error either way).
_ERRORS: dict[str, tuple[type[ModelError], int | None]] = {
    "rate_limited": (RateLimitedError, 429),
    "overloaded": (OverloadedError, 503),
    "outage": (ProviderOutageError, 500),
    "fatal": (ModelRequestError, 400),
    "retryable": (RetryableModelError, None),
}


class ScriptedClient(BaseLLMClient):
    provider = "scripted"

    def __init__(self, turns: list[ScriptedTurn]) -> None:
        opens_with_plan = bool(turns) and turns[0].plan is not None
        self._plan = turns[0] if opens_with_plan else None
        self._turns = turns[1:] if opens_with_plan else turns

    def complete(self, request: LLMRequest) -> LLMResponse:
        if request.purpose == "summary":
            return _summary(request)
        if request.purpose == "memory" and (
            request.turn is None or request.turn > len(self._turns)
        ):
            return _no_facts(request)
        if request.purpose == "plan":
            return self._planned(request)
        index = (request.turn - 1 if request.turn is not None
                 else sum(1 for message in request.messages if message.role == "assistant"))
        if index >= len(self._turns):
            raise ModelRequestError(
                f"scripted model has {len(self._turns)} turn(s); turn {index + 1} was requested"
            )
        turn = self._turns[index]
        if turn.error is not None:
            raise scripted_error(turn.error)
        tool_calls = [
            ToolCall(id=f"call_{index + 1}_{position}", name=call.name, arguments=call.arguments)
            for position, call in enumerate(turn.tool_calls)
        ]
        usage = turn.usage or _estimate_usage(request, turn)
        return LLMResponse(
            message=Message(role="assistant", content=turn.content, tool_calls=tool_calls),
            finish_reason="tool_calls" if tool_calls else "stop",
            usage=usage.model_copy(update={"model_calls": 1}),
        )


    def _planned(self, request: LLMRequest) -> LLMResponse:
        """The planning call's answer, in the planner's JSON shape: the script's plan turn,
        or no plan when the script has none."""
        turn = self._plan or ScriptedTurn(plan=[])
        if turn.error is not None:
            raise scripted_error(turn.error)
        text = json.dumps({"steps": turn.plan or []})
        usage = turn.usage or _estimate_usage(request, turn.model_copy(update={"content": text}))
        return LLMResponse(
            message=Message(role="assistant", content=text),
            finish_reason="stop",
            usage=usage.model_copy(update={"model_calls": 1}),
        )


def scripted_error(error: ScriptedError) -> ModelError:
    """The exception a scripted turn's `error` stands for."""
    error_class, status = _ERRORS[error.kind]
    if error_class is ModelRequestError:
        return ModelRequestError(f"scripted error: {error.message}", status_code=status)
    return error_class(
        f"scripted error: {error.message}", status_code=status, retry_after_s=error.retry_after_s
    )


_SUMMARY_SO_FAR = "Summary so far ("
_FOLD_IN = "Conversation to fold in ("
_LINE_CHARS = 160


def _summary(request: LLMRequest) -> LLMResponse:
    """A deterministic summary of what the summary request shows (see the module doc)."""
    prompt = request.messages[-1].content or "" if request.messages else ""
    lines: list[str] = []
    if _SUMMARY_SO_FAR in prompt:
        previous = prompt.split(_SUMMARY_SO_FAR, 1)[1].split("\n", 1)[1]
        lines += previous.split("\n\n" + _FOLD_IN, 1)[0].splitlines()
    folded = prompt.split(_FOLD_IN, 1)[1] if _FOLD_IN in prompt else ""
    lines += [line[:_LINE_CHARS] for line in folded.splitlines() if line.startswith("[turn ")]
    limit = (request.max_tokens or 1024) * 3
    while len(lines) > 1 and len("\n".join(lines).encode()) > limit:
        lines.pop(0)
    text = "\n".join(lines)[:limit] or "(nothing to summarise)"
    prompt_chars = sum(len(m.content or "") for m in request.messages)
    return LLMResponse(
        message=Message(role="assistant", content=text),
        finish_reason="stop",
        usage=Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=max(1, len(text) // 4),
                    model_calls=1),
    )


def _no_facts(request: LLMRequest) -> LLMResponse:
    """A memory call the script does not answer: nothing durable to remember."""
    prompt_chars = sum(len(m.content or "") for m in request.messages)
    return LLMResponse(
        message=Message(role="assistant", content='{"facts": []}'),
        finish_reason="stop",
        usage=Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=4, model_calls=1),
    )


def _estimate_usage(request: LLMRequest, turn: ScriptedTurn) -> Usage:
    """Roughly four characters a token, so offline runs show plausible, non-zero usage."""
    prompt_chars = sum(len(m.content or "") + len(str(m.tool_calls)) for m in request.messages)
    prompt_chars += sum(len(spec.model_dump_json()) for spec in request.tools)
    reply_chars = len(turn.content or "") + sum(
        len(str(c.arguments)) + len(c.name) for c in turn.tool_calls
    )
    return Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=max(1, reply_chars // 4))
