"""Extraction at the end of a task (`memory: "auto"`): the task's model distils the durable
facts of its conversation into long-term memories of the task's tenant and scope.

Run by Finalize before the task is marked SUCCEEDED, so that when a caller sees it succeed
its memories are there (the next task finds them; memory services that extract
asynchronously leave users with memories missing on the next call). It never fails the
task: whatever goes wrong (the model, its answer, the embeddings, the time) becomes the
`memory_extracted` event's `error` and the task succeeds all the same.

* **The call**: the task's model and its fallbacks (routed like a turn), shown the goal,
  the latest summary of the conversation (if it was compacted) and the turns after it
  (tool outputs cut to `TRANSCRIPT_OUTPUT_TOKENS`; the oldest turns dropped when it would
  not fit the window), plus the memories recalled at plan time (known already). It answers
  with JSON, `{"facts": ["...", ...]}`: at most `MAX_FACTS` short, self-contained
  statements. (Asked in words and parsed leniently, so every provider can answer it.)
* **Deduplicated**: each fact is remembered through `LongTermMemory.remember`, which skips
  a fact at least `dedup_min_score` similar to a memory of the same tenant and scope (the
  deployment's MEMORY_DEDUP_MIN_SCORE), including one saved a moment earlier by this task.
* **Counted**: the call's usage and the facts' embeddings are added to the task's usage,
  and shown by the event.
* **Once**: a retried Finalize that finds the event does nothing again.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from agentkit.llm.base import LLMRequest, LLMResponse, ModelRequestError
from agentkit.memory.context import (
    DEFAULT_REPLY_RESERVE,
    MESSAGE_OVERHEAD_TOKENS,
    estimate_text_tokens,
    load_summaries,
    render_turn,
    split_turns,
)
from agentkit.memory.long_term import LongTermMemory
from agentkit.memory.models import MAX_MEMORY_CHARS
from agentkit.models.domain import Message, Task, TaskEvent, TaskStatus, Usage
from agentkit.store import TaskStore

logger = logging.getLogger(__name__)

#: Facts kept from one task at most (a task that learnt more keeps the first ones).
MAX_FACTS = 10
#: A fact is a sentence or two, not a document.
MAX_FACT_CHARS = 500
#: The reply's room (a list of short facts).
EXTRACTION_MAX_TOKENS = 1024
#: A tool output is shown to the extraction up to this many tokens.
TRANSCRIPT_OUTPUT_TOKENS = 2000
#: The tag every extracted memory carries (so they can be told from those written on purpose).
EXTRACTED_TAG = "auto"

EXTRACTION_INSTRUCTIONS = (
    "You maintain the long-term memory of an AI agent that works for one user or "
    "organisation. From the finished task below, write down the durable facts worth "
    "knowing in later, unrelated tasks: stable facts about the user, their organisation, "
    "customers, systems and preferences, decisions taken, and conventions to follow. Each "
    "fact is one short, self-contained statement that names who or what it is about "
    "(write 'The customer Acme pays in euros', not 'They pay in euros'). Leave out what "
    "only mattered for this task (steps taken, intermediate results, the answer's wording), "
    "what is already known (listed below), guesses, and secrets (keys, passwords, tokens). "
    "Few good facts beat many; none is a fine answer. Reply with JSON only, in the form "
    '{"facts": ["...", "..."]}, at most ' + str(MAX_FACTS) + " facts."
)

#: A routed model call: the reply (usage priced) and the `provider:model` that answered.
Complete = Callable[[LLMRequest], tuple[LLMResponse, str]]


class ExtractionError(ModelRequestError):
    """The model's answer is not the list of facts asked for."""


class ExtractedFacts(BaseModel):
    facts: list[str] = Field(default=[])

    @field_validator("facts", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("facts: must be a list of strings")
        if not all(isinstance(item, str) for item in value):
            raise ValueError("facts: every fact must be a string")
        return value


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def parse_facts(text: str) -> list[str]:
    """The facts of the model's answer: `{"facts": [...]}` (or a bare list), tolerating a
    code fence and words around the JSON. Blank facts dropped, repeats once, each cut to
    MAX_FACT_CHARS, at most MAX_FACTS. Anything else: ExtractionError saying what."""
    body = _FENCE.sub("", text.strip())
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    end = max(body.rfind("}"), body.rfind("]"))
    if start < 0 or end < start:
        raise ExtractionError(f"the model's answer holds no JSON: {text[:200]!r}")
    try:
        data = json.loads(body[start : end + 1])
    except ValueError as error:
        raise ExtractionError(f"the model's answer is not valid JSON: {error}") from None
    if isinstance(data, list):
        data = {"facts": data}
    try:
        parsed = ExtractedFacts.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise ExtractionError(f"the model's answer: {first['msg']}") from None
    facts: list[str] = []
    for fact in parsed.facts:
        cleaned = " ".join(fact.split())[:MAX_FACT_CHARS]
        if cleaned and cleaned not in facts:
            facts.append(cleaned)
    return facts[:MAX_FACTS]


def extraction_transcript(store: TaskStore, task: Task, *, limit: int) -> str:
    """The conversation as the extraction reads it, at most `limit` tokens: the latest
    summary (if the conversation was compacted), then the turns after it, the oldest
    dropped first when they would not fit."""
    turns = split_turns(store.list_messages(task.task_id))[1:]
    summaries = load_summaries(store, task.task_id)
    parts: list[str] = []
    through = 0
    if summaries:
        through = summaries[-1].through_turn
        parts.append(f"[summary of turns 1-{through}]\n{summaries[-1].text}")
    rendered = [render_turn(turn, TRANSCRIPT_OUTPUT_TOKENS) for turn in turns
                if turn.number > through]
    used = sum(estimate_text_tokens(part) + MESSAGE_OVERHEAD_TOKENS for part in parts)
    kept: list[str] = []
    for text in reversed(rendered):
        tokens = estimate_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS
        if used + tokens > limit:
            kept.insert(0, "[earlier turns left out]")
            break
        kept.insert(0, text)
        used += tokens
    return "\n".join(parts + kept)


def extraction_request(task: Task, transcript: str, known: Sequence[str]) -> LLMRequest:
    parts = [f"The task's goal:\n{task.goal}"]
    if known:
        parts.append("Already known (do not repeat):\n" + "\n".join(f"- {k}" for k in known))
    parts.append(f"The task's conversation:\n{transcript or '(no turns)'}")
    parts.append('Reply with {"facts": [...]} only.')
    return LLMRequest(
        model=task.model,
        messages=[Message(role="system", content=EXTRACTION_INSTRUCTIONS),
                  Message(role="user", content="\n\n".join(parts))],
        max_tokens=EXTRACTION_MAX_TOKENS,
        purpose="memory",
        # The scripted model plays the turn after the final answer (agentkit.llm.scripted).
        turn=task.turn + 1,
    )


@dataclass
class Extraction:
    """What one extraction did."""

    model: str | None = None
    facts: list[str] = field(default_factory=list)
    saved: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    model_usage: Usage = field(default_factory=Usage)
    embedding_usage: Usage = field(default_factory=Usage)

    @property
    def usage(self) -> Usage:
        return self.model_usage + self.embedding_usage


def _known_memories(store: TaskStore, memory: LongTermMemory, task: Task) -> list[str]:
    """The texts of the memories recalled at plan time (in the task's instructions)."""
    ids = [hit["memory_id"] for event in store.list_events(task.task_id)
           if event.kind == "memory_recalled" for hit in event.detail.get("memories", [])
           if isinstance(hit, dict) and "memory_id" in hit]
    if not ids:
        return []
    found = memory.store.get_many(task.tenant_id, task.memory_scope, ids)
    return [found[i].text for i in ids if i in found]


def extract_memories(
    task: Task,
    *,
    store: TaskStore,
    memory: LongTermMemory,
    complete: Complete,
    window: int,
    deadline: float | None = None,
) -> Extraction:
    """Distil the task's durable facts and remember each (see the module docstring).
    Raises on failure, with what was spent so far in `partial` (ExtractionFailed)."""
    done = Extraction()
    try:
        room = window - min(DEFAULT_REPLY_RESERVE, window // 4) - EXTRACTION_MAX_TOKENS
        known = _known_memories(store, memory, task)
        fixed = estimate_text_tokens(EXTRACTION_INSTRUCTIONS + task.goal + "\n".join(known))
        transcript = extraction_transcript(store, task, limit=max(room - fixed - 200, 512))
        response, model = complete(extraction_request(task, transcript, known))
        done.model, done.model_usage = model, response.usage
        done.facts = parse_facts(response.message.content or "")
        for fact in done.facts[:MAX_FACTS]:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"out of time after {len(done.saved)} fact(s) saved")
            if len(fact) > MAX_MEMORY_CHARS:  # cannot happen at MAX_FACT_CHARS; kept safe
                continue
            remembered = memory.remember(
                task.tenant_id, fact, scope=task.memory_scope, tags=[EXTRACTED_TAG],
                source=f"task:{task.task_id}",
            )
            done.embedding_usage += remembered.usage.as_task_usage()
            if remembered.created:
                done.saved.append({"memory_id": remembered.memory.memory_id, "text": fact})
            else:
                done.duplicates.append({"memory_id": remembered.memory.memory_id,
                                        "score": round(remembered.duplicate_score or 0.0, 6)})
    except Exception as error:
        raise ExtractionFailed(error, done) from error
    return done


class ExtractionFailed(Exception):
    """Extraction stopped on `error`; `partial` holds what it did and spent before."""

    def __init__(self, error: Exception, partial: Extraction) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.partial = partial


#: Makes a task's extraction call: (task, request) → the routed reply and its model.
CompleteFor = Callable[[Task, LLMRequest], tuple[LLMResponse, str]]


def extract_for_finalize(
    task_id: str,
    *,
    store: TaskStore,
    memory: Callable[[], LongTermMemory | None],
    complete_for: CompleteFor,
    window_for: Callable[[Task], int],
    deadline: float | None = None,
) -> TaskEvent | None:
    """Finalize's step for a task with `memory: "auto"` that is about to succeed: extract
    its memories, add what it cost to the task's usage, record a `memory_extracted` event.
    Nothing when the task does not ask for it, is no longer running, the deployment has no
    long-term memory, or a retried Finalize did it already. Never raises."""
    started = time.monotonic()
    try:
        task = store.require_task(task_id)
        if task.memory != "auto" or task.status != TaskStatus.RUNNING:
            return None
        if any(event.kind == "memory_extracted" for event in store.list_events(task_id)):
            return None
        over = _over_budget(task)
        long_term = None if over else memory()
    except Exception as error:  # the task succeeds whatever happens here
        logger.warning("task %s: memory extraction skipped", task_id, exc_info=True)
        return _record(store, task_id, Extraction(), started, scope=None,
                       error=f"skipped: {type(error).__name__}: {error}", name="memory")
    if over:
        return _record(store, task_id, Extraction(), started, scope=task.memory_scope,
                       error=f"skipped: {over}", name=task.model)
    if long_term is None:
        return None  # the deployment has no EmbeddingModel: `auto` behaves as `recall`
    try:
        done = extract_memories(
            task, store=store, memory=long_term, window=window_for(task),
            complete=lambda request: complete_for(task, request), deadline=deadline,
        )
        why = None
    except ExtractionFailed as failed:
        logger.warning("task %s: memory extraction failed", task_id, exc_info=True)
        done, why = failed.partial, f"failed: {failed}"
    return _record(store, task_id, done, started, scope=task.memory_scope, error=why,
                   name=done.model or task.model)


def _over_budget(task: Task) -> str | None:
    """Why the task's budgets leave nothing for an extraction call, or None."""
    if task.max_tokens is not None and task.usage.total_tokens >= task.max_tokens:
        return f"max_tokens ({task.max_tokens}) used up"
    if task.max_cost_usd is not None and task.usage.cost_usd >= task.max_cost_usd:
        return f"max_cost_usd ({task.max_cost_usd:g}) used up"
    return None


def _record(store: TaskStore, task_id: str, done: Extraction, started: float, *,
            scope: str | None, error: str | None, name: str) -> TaskEvent | None:
    """Add what the extraction spent to the task's usage and write its event."""
    usage = done.usage
    try:
        if usage != Usage():
            store.add_usage(task_id, usage)
        event = TaskEvent(
            kind="memory_extracted",
            name=name,
            duration_ms=int((time.monotonic() - started) * 1000),
            usage=usage,
            error=error[:500] if error else None,
            detail={
                "scope": scope,
                "facts": len(done.facts),
                "saved": done.saved,
                "duplicates": done.duplicates,
                "embedding_tokens": usage.embedding_tokens,
                "embedding_cost_usd": usage.embedding_cost_usd,
            },
        )
        store.add_event(task_id, event)
    except Exception:  # the record is a help too: the task still succeeds
        logger.warning("task %s: the extraction's record could not be written", task_id,
                       exc_info=True)
        return None
    return event
