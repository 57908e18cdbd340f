"""Context that fits: before each model call the conversation is fitted to the model's
context window; older turns are folded into a stored summary when it would not fit.

**Turns.** Turn 0 is the opening (system prompt + goal); turn k >= 1 is the model's reply of
turn k and what answers it (its tool results). A turn is kept or folded whole, so a tool
call is never separated from its results. The opening and the tool declarations are always
sent; so is the latest turn.

**Tokens per message.** Each turn's count is the larger of two figures:
* an estimate (`estimate_text_tokens`): UTF-8 bytes / 3, plus a few tokens a message. It
  errs high on purpose and needs no tokenizer: current BPE tokenizers average ~4 characters
  a token in English prose and ~3-3.5 in code and JSON (ASCII: one byte a character), and
  1-2 characters a token in non-Latin scripts, which take 2-3 bytes a character. It can
  count low only for high-entropy text (hex, base64: ~2-2.7 characters a token), which the
  provider's own count below corrects from the next turn on. A claim-checked output counts
  with its real size (`content_bytes`), not its inline preview.
* the provider's count, from the usage stored with each assistant message: request k+1 is
  request k plus turn k, so `input_tokens(k+1) - input_tokens(k)` is what turn k costs
  (the reply and its results, as the provider tokenized them; the reply's own
  output_tokens would also count hidden reasoning, which is never sent back). This holds
  only when both requests went to the same model and no new summary came in between; turn
  0 (with the tool declarations) is request 1's input_tokens. The latest turn has no next
  request yet: its reply counts as the larger of its estimate and its output_tokens. A
  turn's count is spread over its messages in proportion to their estimates.

**When.** The request must leave the reply reserve (`max_tokens` of the request, else
`DEFAULT_REPLY_RESERVE`) free: prompt <= window - reserve, the window being the smallest of
the task's model and its fallbacks (llm/context_windows.json). If the opening, the current
summary and the turns after it fit, nothing happens. Otherwise the latest turns are kept
while they fill at most `KEEP_SHARE` of the room left after the opening and a summary (at
least the latest turn), and the turns before them are folded: the model summarises the
previous summary plus those turns into a new summary (`ContextSummary`), stored as its own
item (TASK#<id> / SUM#<turn>) while the messages stay where they are (DynamoDB, GET
/tasks/{id}). Keeping only part of the room means the next turns fit without another
summary each time.

**The summary call** must fit too: the turns to fold are cut into chunks that each fit
the window with the instructions, the goal, the previous summary and the summary's own
reply; each chunk makes one call and one stored summary (the chaining: summary n folds
summary n-1 and its chunk). A tool output is shown to the summariser up to
`TRANSCRIPT_OUTPUT_TOKENS`, less if one turn alone would not fit. Its usage is added to the
task's usage with the summary (one transaction), so it counts toward the budgets, and a
`compaction` event shows it in the timeline.

**A single huge output** (the latest turn alone larger than the room) cannot be folded
(the model has not seen it yet), so it is cut for the request: the turn's tool results
share the room (small ones whole, the large ones cut to an equal share), each keeping its
head and a note saying how much was cut and that the full output stays in the task's
history (and in S3 behind its claim check). Claim-checked outputs are already sent at most
`MAX_MODEL_CONTENT_CHARS` characters.

**The request** sent: the opening, then (if any) the summary as a user message, then the
kept turns, whole.

**When the provider still refuses** the request as longer than its context (the table's
window too large for a deployment, a tokenizer far off the estimate: `context_overflow`
recognises the providers' wordings), the loop fits the conversation once more to
`harder_window` (two thirds of what was refused) and calls again, once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from agentkit.llm.base import LLMRequest, LLMResponse, ModelRequestError
from agentkit.models.domain import Message, Task, ToolSpec, Usage, utc_now
from agentkit.store import TaskStore

#: The estimate: a token per this many UTF-8 bytes (see the module docstring).
BYTES_PER_TOKEN = 3
#: A message's framing (role, separators) as providers count it, rounded up.
MESSAGE_OVERHEAD_TOKENS = 4
#: A tool call's or a tool declaration's framing.
ITEM_OVERHEAD_TOKENS = 8
#: The reply's room when the request does not set max_tokens (Anthropic's default too).
DEFAULT_REPLY_RESERVE = 4096
#: A summary's length at most (its call's max_tokens); less for small windows.
SUMMARY_MAX_TOKENS = 2048
#: After a compaction the kept turns fill at most this share of the room.
KEEP_SHARE = 0.5
#: A tool output is shown to the summariser up to this many tokens.
TRANSCRIPT_OUTPUT_TOKENS = 8000
#: A claim-checked output is sent to the model up to this many characters (the full
#: output stays in S3 behind the pointer the model is shown).
MAX_MODEL_CONTENT_CHARS = 100_000

SUMMARY_INSTRUCTIONS = (
    "You condense the earlier part of an AI agent's working conversation so that the "
    "agent can carry on with its task without it. Write a summary that keeps everything "
    "the agent still needs: what has been done towards the goal, the facts, figures, "
    "names, identifiers, paths and URLs it found, the tool results that matter, decisions "
    "taken and why, errors met, and what remains to do. Fold the summary so far (if any) "
    "into yours: yours replaces it. Be brief and factual; write only the summary."
)


# --- a request the provider refused as too long

#: How providers word a refused prompt too long for the model (lower case): OpenAI and
#: OpenRouter (`context_length_exceeded`, "maximum context length is N tokens"), Anthropic
#: ("prompt is too long", "exceed context limit"), Google ("input token count ... exceeds
#: the maximum number of tokens allowed"), OpenAI-compatible servers ("context window").
_OVERFLOW_WORDS = (
    "context_length_exceeded",
    "maximum context length",
    "context length exceeded",
    "prompt is too long",
    "exceed context limit",
    "exceeds the context window",
    "input token count",
    "exceeds the maximum number of tokens",
    "too many tokens",
)


def context_overflow(error: Exception) -> bool:
    """Whether a refused call was refused for a prompt longer than the model's context."""
    text = str(error).lower()
    return any(words in text for words in _OVERFLOW_WORDS)


#: The smallest window a harder fitting aims at.
MIN_HARDER_WINDOW = 2048


def harder_window(fitted: FittedContext) -> int:
    """The window to fit to after the provider refused `fitted` as too long: two thirds of
    what the refused request took (its prompt and the reply's reserve)."""
    return max(MIN_HARDER_WINDOW, min(fitted.window, fitted.tokens + fitted.reserve) * 2 // 3)


# --- counting


def estimate_text_tokens(text: str) -> int:
    """Tokens of `text` by the estimate (UTF-8 bytes / 3, rounded up)."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _content_bytes_sent(message: Message) -> int:
    """The UTF-8 size of the content the model is sent. A claim-checked output not loaded
    yet (`content_bytes` set) counts with its real size: sent whole when it is at most
    MAX_MODEL_CONTENT_CHARS bytes (so at most that many characters); a larger one is
    bounded by what that many characters can take (4 bytes each; `fit_context` loads
    those to count them)."""
    if message.content_ref and message.content_bytes is not None:
        if message.content_bytes <= MAX_MODEL_CONTENT_CHARS:
            return message.content_bytes
        return 4 * MAX_MODEL_CONTENT_CHARS + 200
    return len((message.content or "").encode("utf-8"))


def estimate_message_tokens(message: Message) -> int:
    """A message's tokens by the estimate: content, tool calls (name + JSON arguments) and
    framing. Errs high (see the module docstring)."""
    tokens = MESSAGE_OVERHEAD_TOKENS + math.ceil(_content_bytes_sent(message) / BYTES_PER_TOKEN)
    for call in message.tool_calls:
        arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)
        tokens += ITEM_OVERHEAD_TOKENS + estimate_text_tokens(call.name + call.id + arguments)
    return tokens


def estimate_tools_tokens(tools: Sequence[ToolSpec]) -> int:
    """The tool declarations' tokens by the estimate."""
    return sum(
        ITEM_OVERHEAD_TOKENS
        + estimate_text_tokens(spec.name + spec.description + json.dumps(spec.parameters))
        for spec in tools
    )


def estimate_request_tokens(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> int:
    """A request's prompt tokens by the estimate."""
    return estimate_tools_tokens(tools) + sum(estimate_message_tokens(m) for m in messages)


@dataclass(frozen=True)
class Turn:
    """Turn 0: the opening (system + goal). Turn k: the reply of model call k (first) and
    the messages that answer it (its tool results), which always travel together."""

    number: int
    messages: list[Message]


def split_turns(messages: Sequence[Message]) -> list[Turn]:
    """The stored conversation (in order) cut into turns: each assistant message opens one."""
    turns = [Turn(0, [])]
    for message in messages:
        if message.role == "assistant":
            turns.append(Turn(len(turns), [message]))
        else:
            turns[-1].messages.append(message)
    return turns


@dataclass(frozen=True)
class TurnCount:
    number: int
    tokens: int
    #: each message's share, in the turn's order (sums to `tokens`)
    messages: list[int]
    #: True when the provider's count (not only the estimate) decided it
    measured: bool


def count_turns(
    turns: Sequence[Turn],
    *,
    tools_tokens: int,
    new_summary_turns: frozenset[int] = frozenset(),
    window: int | None = None,
) -> list[TurnCount]:
    """Each turn's tokens: the larger of the estimate and the provider's count (turn 0
    includes the tool declarations). `new_summary_turns`: the turns whose request first
    carried a new summary (their input_tokens do not extend the request before). A count
    above `window` cannot be a provider's (such a request is refused): it is ignored."""
    counts = []
    for position, turn in enumerate(turns):
        estimates = [estimate_message_tokens(m) for m in turn.messages]
        if turn.number == 0:
            estimates.append(tools_tokens)
        estimate = sum(estimates)
        measured = _measured(turns, position, new_summary_turns)
        if measured is not None and window is not None and measured > window:
            measured = None
        total = max(estimate, measured or 0)
        shares = _spread(estimates, total)
        if turn.number == 0:
            shares = shares[:-1]
        counts.append(TurnCount(turn.number, total, shares,
                                measured is not None and measured > estimate))
    return counts


def _usage(turn: Turn) -> Usage | None:
    first = turn.messages[0] if turn.messages else None
    return first.usage if first is not None and first.role == "assistant" else None


def _measured(turns: Sequence[Turn], position: int, new_summary_turns: frozenset[int]
              ) -> int | None:
    turn = turns[position]
    following = turns[position + 1] if position + 1 < len(turns) else None
    next_usage = _usage(following) if following is not None else None
    if turn.number == 0:
        # Request 1 is exactly the tool declarations and the opening.
        return next_usage.input_tokens if next_usage is not None else None
    usage = _usage(turn)
    if usage is None:
        return None
    if following is None or next_usage is None:
        # The latest turn: only its reply is counted by the provider (with any hidden
        # reasoning, so it errs high).
        reply = turn.messages[0]
        return max(usage.output_tokens, estimate_message_tokens(reply)) + sum(
            estimate_message_tokens(m) for m in turn.messages[1:]
        )
    same_model = turn.messages[0].model == following.messages[0].model
    if not same_model or following.number in new_summary_turns:
        return None
    delta = next_usage.input_tokens - usage.input_tokens
    return delta if delta > 0 else None


def _spread(estimates: list[int], total: int) -> list[int]:
    """`total` spread over the parts in proportion to their estimates (sums to total)."""
    estimate = sum(estimates)
    if not estimates:
        return []
    if estimate <= 0:
        return [total] + [0] * (len(estimates) - 1)
    shares = [e * total // estimate for e in estimates]
    shares[-1] += total - sum(shares)
    return shares


# --- the plan


@dataclass(frozen=True)
class ContextPlan:
    """What to send: `fold` (turns to fold into a new summary, oldest first; empty: none),
    `keep` (the turns sent whole, in order) and `squeeze` (the tokens the kept turns must
    be cut to; None: they fit)."""

    fold: list[int]
    keep: list[int]
    squeeze: int | None
    #: the request's prompt tokens once the plan is carried out (at most)
    tokens: int


class ContextTooSmallError(ModelRequestError):
    """The opening (system prompt, goal, tool declarations) alone leaves no room in the
    model's window: no compaction can help."""


def plan_context(
    *,
    fixed: int,
    live: Sequence[TurnCount],
    summary_tokens: int,
    budget: int,
    summary_max: int,
    keep_share: float = KEEP_SHARE,
) -> ContextPlan:
    """Decide which turns to keep and which to fold. `fixed`: the opening and the tool
    declarations; `live`: the turns after the current summary, oldest first;
    `summary_tokens`: the current summary's message (0: none); `budget`: the window less
    the reply reserve; `summary_max`: the most a new summary's message takes."""
    total = fixed + summary_tokens + sum(turn.tokens for turn in live)
    if total <= budget:
        return ContextPlan(fold=[], keep=[t.number for t in live], squeeze=None, tokens=total)
    room = budget - fixed - summary_max
    if room <= 0:
        raise ContextTooSmallError(
            f"the system prompt, the goal and the tool declarations take {fixed} tokens: "
            f"with a summary ({summary_max}) they leave no room in the model's window "
            f"({budget} tokens for the prompt); shorten the goal or use fewer tools"
        )
    target = room * keep_share
    kept: list[TurnCount] = []
    size = 0
    for turn in reversed(live):
        if kept and size + turn.tokens > target:
            break
        kept.insert(0, turn)
        size += turn.tokens
    fold = [t.number for t in live[: len(live) - len(kept)]]
    # Nothing to fold: the latest turn alone is too large; it is cut beside the summary
    # there is.
    allowed = room if fold else budget - fixed - summary_tokens
    squeeze = allowed if size > allowed else None
    tokens = fixed + (summary_max if fold else summary_tokens) + min(size, allowed)
    return ContextPlan(fold=fold, keep=[t.number for t in kept], squeeze=squeeze, tokens=tokens)


def fill_shares(sizes: Sequence[int], limit: int) -> list[int]:
    """Allowances summing to at most `limit`: the small parts whole, the large ones cut to
    an equal share of what is left (water-filling)."""
    allowances = [0] * len(sizes)
    remaining = max(limit, 0)
    left = len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        share = remaining // left
        allowances[index] = min(sizes[index], share)
        remaining -= allowances[index]
        left -= 1
    return allowances


def cut_message(message: Message, tokens: int, *, why: str, whole: str | None = None
                ) -> Message:
    """The message with its content cut so that it counts at most `tokens`: its head and a
    note saying what was cut and where the whole is (`whole`; default: its claim check or
    the task's history)."""
    text = message.content or ""
    if estimate_message_tokens(message) <= tokens:
        return message
    if whole is None:
        whole = (f"the full output is stored at {message.content_ref}" if message.content_ref
                 else "the full output is kept in the task's history")
    note = f"\n[cut {why}: {len(text)} characters in all; {whole}]"
    calls = message.model_copy(update={"content": None, "content_ref": None})
    keep = (tokens - estimate_message_tokens(calls) - estimate_text_tokens(note)) * BYTES_PER_TOKEN
    head = text.encode("utf-8")[: max(keep, 0)].decode("utf-8", errors="ignore")
    return message.model_copy(update={"content": head + note, "content_bytes": None})


# --- summaries


class ContextSummary(BaseModel):
    """A summary of turns 1..through_turn, stored as its own item; it replaces them (and
    any earlier summary) in the requests from `for_turn` on."""

    through_turn: int = Field(ge=1)
    for_turn: int = Field(ge=1, description="The first model turn whose request carried it.")
    text: str
    model: str = Field(description="The `provider:model` that wrote it.")
    usage: Usage = Field(default_factory=Usage)
    created_at: str = Field(default_factory=utc_now)


def summary_message(summary: ContextSummary) -> Message:
    """How a summary travels in the request: a user message after the goal."""
    return Message(
        role="user",
        content=(
            f"[Summary of turns 1-{summary.through_turn} of this task, written when the "
            "conversation outgrew the model's context window; those turns are kept in the "
            f"task's history but no longer sent]\n{summary.text}"
        ),
    )


def render_turn(turn: Turn, output_tokens: int = TRANSCRIPT_OUTPUT_TOKENS) -> str:
    """A turn as the summariser reads it; each tool output shown up to `output_tokens`."""
    lines = []
    for message in turn.messages:
        head = f"[turn {turn.number}]"
        if message.role == "assistant":
            if message.content:
                lines.append(f"{head} assistant: {message.content}")
            for call in message.tool_calls:
                arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)
                lines.append(f"{head} assistant called {call.name} {arguments} (id {call.id})")
        else:
            shown = cut_message(message, output_tokens, why="for the summary")
            label = (f"result of {message.name or 'tool'} ({message.tool_call_id})"
                     + (", an error" if message.is_error else "")
                     if message.role == "tool" else message.role)
            lines.append(f"{head} {label}:\n{shown.content or ''}")
    return "\n".join(lines)


def summary_request(
    model: str, *, goal: str, previous: ContextSummary | None, transcript: str,
    first_turn: int, last_turn: int, max_tokens: int
) -> LLMRequest:
    """The call that folds `transcript` (turns first..last) into the previous summary."""
    parts = [f"The task's goal:\n{goal}"]
    if previous is not None:
        parts.append(f"Summary so far (turns 1-{previous.through_turn}):\n{previous.text}")
    parts.append(f"Conversation to fold in (turns {first_turn}-{last_turn}):\n{transcript}")
    parts.append(f"Write the new summary of turns 1-{last_turn} (at most "
                 f"{max_tokens * 3 // 5} words).")
    return LLMRequest(
        model=model,
        messages=[Message(role="system", content=SUMMARY_INSTRUCTIONS),
                  Message(role="user", content="\n\n".join(parts))],
        max_tokens=max_tokens,
        purpose="summary",
    )


def chunk_turns(turns: Sequence[Turn], limit: int) -> list[list[tuple[Turn, str]]]:
    """The turns to fold as (turn, transcript) chunks whose transcripts each take at most
    `limit` tokens; a turn too large alone shows its outputs cut to fit."""
    chunks: list[list[tuple[Turn, str]]] = [[]]
    size = 0
    for turn in turns:
        text = render_turn(turn)
        tokens = estimate_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS
        if tokens > limit:
            text = _render_within(turn, limit)
            tokens = estimate_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS
        if chunks[-1] and size + tokens > limit:
            chunks.append([])
            size = 0
        chunks[-1].append((turn, text))
        size += tokens
    return [chunk for chunk in chunks if chunk]


def _render_within(turn: Turn, limit: int) -> str:
    outputs = [m for m in turn.messages if m.role != "assistant"]
    base = render_turn(Turn(turn.number, [m for m in turn.messages if m.role == "assistant"]))
    room = limit - estimate_text_tokens(base) - MESSAGE_OVERHEAD_TOKENS - 16 * len(outputs)
    sizes = [estimate_message_tokens(m) for m in outputs]
    cap = max(fill_shares(sizes, room), default=0)
    while True:
        text = render_turn(turn, max(cap, MESSAGE_OVERHEAD_TOKENS + 40))
        if estimate_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS <= limit or cap <= 0:
            return text
        cap = cap * 9 // 10 - 1


# --- fitting a call


#: A routed call: the reply (usage priced) and the `provider:model` that answered.
Summarise = Callable[[LLMRequest], tuple[LLMResponse, str]]


@dataclass
class Compaction:
    """What one fitting folded (for the timeline)."""

    folded: list[int]
    summaries: list[ContextSummary]
    usage: Usage
    tokens_before: int


@dataclass
class FittedContext:
    messages: list[Message]
    #: the request's prompt tokens (at most; includes the tool declarations)
    tokens: int
    window: int
    reserve: int
    summary: ContextSummary | None
    compaction: Compaction | None = None
    #: the messages cut to fit ("turn 3 #1")
    cut: list[str] = field(default_factory=list)

    def detail(self) -> dict[str, object]:
        """For the model call's event."""
        detail: dict[str, object] = {"tokens": self.tokens, "window": self.window,
                                     "reserve": self.reserve}
        if self.summary is not None:
            detail["summary_through_turn"] = self.summary.through_turn
        if self.cut:
            detail["cut"] = self.cut
        return detail


def load_summaries(store: TaskStore, task_id: str) -> list[ContextSummary]:
    return [ContextSummary.model_validate_json(body) for body in store.list_summaries(task_id)]


def fit_context(
    task: Task,
    tools: Sequence[ToolSpec],
    *,
    store: TaskStore,
    window: int,
    turn: int,
    summarise: Summarise,
    reserve: int | None = None,
) -> FittedContext:
    """The messages of model call `turn`, fitted to `window` less the reply reserve;
    folds older turns into new stored summaries when needed (calling `summarise`)."""
    reserve = min(reserve or DEFAULT_REPLY_RESERVE, window // 4)
    budget = window - reserve
    # Outputs past what is ever sent are loaded to count what is sent of them.
    turns = split_turns([
        _for_model(store, m) if (m.content_bytes or 0) > MAX_MODEL_CONTENT_CHARS else m
        for m in store.list_messages(task.task_id)
    ])
    summaries = load_summaries(store, task.task_id)
    current = summaries[-1] if summaries else None
    tools_tokens = estimate_tools_tokens(tools)
    counts = count_turns(turns, tools_tokens=tools_tokens, window=window,
                         new_summary_turns=frozenset(s.for_turn for s in summaries))
    fixed = counts[0].tokens
    through = current.through_turn if current else 0
    live = [count for count in counts[1:] if count.number > through]
    summary_tokens = estimate_message_tokens(summary_message(current)) if current else 0
    summary_max = min(SUMMARY_MAX_TOKENS, max(256, (budget - fixed) // 4))
    plan = plan_context(fixed=fixed, live=live, summary_tokens=summary_tokens, budget=budget,
                        summary_max=summary_max)
    compaction = None
    if plan.fold:
        before = fixed + summary_tokens + sum(count.tokens for count in live)
        current, compaction = _fold(task, turns, plan.fold, current, store=store,
                                    window=window, turn=turn, summary_max=summary_max,
                                    summarise=summarise)
        compaction.tokens_before = before
        summary_tokens = estimate_message_tokens(summary_message(current))
    # The request: the opening, the summary, the kept turns (loaded from S3 where claim-
    # checked), the latest cut if it alone is too large.
    messages = [_for_model(store, m) for m in turns[0].messages]
    if current is not None:
        messages.append(summary_message(current))
    by_number = {count.number: count for count in counts}
    kept = [_for_model_turn(store, turns[number]) for number in plan.keep]
    tokens = fixed + summary_tokens + sum(by_number[t.number].tokens for t in kept[:-1])
    cut: list[str] = []
    if kept:
        latest = kept[-1]
        # The latest turn's reply as the provider counted it; its results by the estimate
        # (of what is sent now that they are loaded).
        sizes = [share if message.role == "assistant" else estimate_message_tokens(message)
                 for share, message in zip(by_number[latest.number].messages, latest.messages,
                                           strict=True)]
        kept[-1], sizes, cut = _squeeze(latest, sizes, budget - tokens)
        tokens += sum(sizes)
    for kept_turn in kept:
        messages.extend(kept_turn.messages)
    tokens = max(tokens, estimate_request_tokens(messages, tools))
    return FittedContext(messages=messages, tokens=tokens, window=window, reserve=reserve,
                         summary=current, compaction=compaction, cut=cut)


def _fold(
    task: Task,
    turns: Sequence[Turn],
    fold: Sequence[int],
    previous: ContextSummary | None,
    *,
    store: TaskStore,
    window: int,
    turn: int,
    summary_max: int,
    summarise: Summarise,
) -> tuple[ContextSummary, Compaction]:
    """Fold `fold` (turn numbers) into `previous`, a chunk per call, storing each summary."""
    goal_part = estimate_text_tokens(task.goal) + 64
    fixed = (estimate_text_tokens(SUMMARY_INSTRUCTIONS) + goal_part + 2 * MESSAGE_OVERHEAD_TOKENS
             + summary_max + 64)  # the previous summary, headers
    limit = window - summary_max - fixed
    if limit < 256:
        raise ContextTooSmallError(
            f"the model's window ({window} tokens) leaves no room to summarise the "
            "conversation beside the goal"
        )
    folding = [_for_model_turn(store, turns[number]) for number in fold]
    made: list[ContextSummary] = []
    usage = Usage()
    for chunk in chunk_turns(folding, limit):
        first, last = chunk[0][0].number, chunk[-1][0].number
        request = summary_request(
            task.model, goal=task.goal, previous=previous,
            transcript="\n".join(text for _, text in chunk),
            first_turn=first, last_turn=last, max_tokens=summary_max,
        )
        response, model = summarise(request)
        text = _fit_summary(response.message.content or "", last, summary_max)
        summary = ContextSummary(through_turn=last, for_turn=turn, text=text, model=model,
                                 usage=response.usage)
        if store.put_summary(task.task_id, last, summary.model_dump_json(), response.usage):
            usage = usage + response.usage
        else:
            # A twin step stored this summary first (with its usage): carry on from it.
            stored = store.get_summary(task.task_id, last)
            summary = ContextSummary.model_validate_json(stored or summary.model_dump_json())
        made.append(summary)
        previous = summary
    assert previous is not None
    return previous, Compaction(folded=list(fold), summaries=made, usage=usage, tokens_before=0)


def _fit_summary(text: str, through: int, summary_max: int) -> str:
    """The summary's text, cut if the model wrote more than its message may take."""
    text = text.strip() or "(the model returned an empty summary)"
    probe = ContextSummary(through_turn=through, for_turn=through + 1, text=text, model="-")
    message = summary_message(probe)
    if estimate_message_tokens(message) <= summary_max:
        return text
    overhead = estimate_message_tokens(summary_message(probe.model_copy(update={"text": ""})))
    return cut_message(Message(role="user", content=text),
                       summary_max - overhead + MESSAGE_OVERHEAD_TOKENS,
                       why="to the summary's length", whole="the rest was dropped").content or ""


def _for_model(store: TaskStore, message: Message) -> Message:
    """The message as the model is sent it: a claim-checked content loaded from S3, cut at
    MAX_MODEL_CONTENT_CHARS characters (once: a loaded message has no `content_bytes`)."""
    if not message.content_ref or message.content_bytes is None:
        return message
    full = store.load_content(message)
    if len(full) > MAX_MODEL_CONTENT_CHARS:
        full = (f"{full[:MAX_MODEL_CONTENT_CHARS]}\n[truncated for the model: {len(full)} "
                f"characters in all; the full output is stored at {message.content_ref}]")
    # Loaded: `content_bytes` cleared so that it counts by what it now holds.
    return message.model_copy(update={"content": full, "content_bytes": None})


def _for_model_turn(store: TaskStore, turn: Turn) -> Turn:
    return Turn(turn.number, [_for_model(store, m) for m in turn.messages])


def _squeeze(turn: Turn, sizes: list[int], room: int) -> tuple[Turn, list[int], list[str]]:
    """The turn cut to `room` tokens (`sizes`: its messages' counts): its reply whole, its
    other messages (tool results) sharing what is left (small ones whole, large ones cut
    to an equal share). Also the new sizes and which messages were cut."""
    if sum(sizes) <= room:
        return turn, sizes, []
    cuttable = [i for i, m in enumerate(turn.messages) if m.role != "assistant"]
    fixed = sum(size for i, size in enumerate(sizes) if i not in cuttable)
    if room - fixed < len(cuttable) * (MESSAGE_OVERHEAD_TOKENS + 40):
        raise ContextTooSmallError(
            f"turn {turn.number} does not fit the model's window even with its outputs cut "
            f"({fixed} tokens of reply and tool calls for {room} tokens of room)"
        )
    allowances = fill_shares([sizes[i] for i in cuttable], room - fixed)
    messages = list(turn.messages)
    sizes = list(sizes)
    cut = []
    for index, allowance in zip(cuttable, allowances, strict=True):
        if allowance < sizes[index]:
            messages[index] = cut_message(messages[index], allowance,
                                          why="to fit the model's context window")
            sizes[index] = estimate_message_tokens(messages[index])
            cut.append(f"turn {turn.number} #{index}")
    return Turn(turn.number, messages), sizes, cut
