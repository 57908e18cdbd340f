"""The domain: a task, its conversation (messages, tool calls and their results), usage and
budgets, approvals and timeline events, as the loop and the store know them.

One normalized shape for messages, tool calls and usage, whatever the provider. The task
and its approvals, messages and events are stored as these shapes (the repositories in
agentkit.store encode them); the API shows several of them as they are (Message, Usage,
WaitInfo, TaskEvent, ApprovalView), so their names are also schema names in
docs/openapi.json.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator


def utc_now() -> str:
    """ISO-8601 UTC timestamp with milliseconds; sorts lexically."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TaskStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.BUDGET_EXCEEDED}
)
ACTIVE_STATUSES = frozenset(set(TaskStatus) - TERMINAL_STATUSES)


class Usage(BaseModel):
    """Tokens and money spent; additive across model calls."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    model_calls: int = Field(default=0, ge=0)
    # Long-term memory's embeddings (remember, recall, plan-time recall, extraction): kept
    # apart from the model's tokens (max_tokens budgets those), their cost also in cost_usd.
    embedding_tokens: int = Field(default=0, ge=0)
    embedding_cost_usd: float = Field(default=0.0, ge=0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 10),
            model_calls=self.model_calls + other.model_calls,
            embedding_tokens=self.embedding_tokens + other.embedding_tokens,
            embedding_cost_usd=round(self.embedding_cost_usd + other.embedding_cost_usd, 10),
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def since(self, start: Usage) -> Usage:
        """What was spent after `start` was read (a run's share of the task's usage)."""
        return Usage(
            input_tokens=max(self.input_tokens - start.input_tokens, 0),
            output_tokens=max(self.output_tokens - start.output_tokens, 0),
            cached_tokens=max(self.cached_tokens - start.cached_tokens, 0),
            cost_usd=max(round(self.cost_usd - start.cost_usd, 10), 0.0),
            model_calls=max(self.model_calls - start.model_calls, 0),
        )


# The single key of a tool call's `arguments` when a provider could not decode the
# model's argument text; its value says what was wrong. The registry answers such a
# call with an error result instead of running the tool.
INVALID_ARGUMENTS_KEY = "__invalid_arguments__"


class ToolCall(BaseModel):
    """A model's request to run one tool. `arguments` is what the model sent, unvalidated."""

    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default={})


class ToolResult(BaseModel):
    call_id: str
    name: str
    content: str
    is_error: bool = False
    duration_ms: int = 0

    def to_message(self) -> Message:
        return Message(
            role="tool",
            content=self.content,
            tool_call_id=self.call_id,
            name=self.name,
            is_error=self.is_error,
        )


Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One conversation entry in the provider-neutral shape."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default=[])
    # Set on role="tool": which call this answers, and the tool's name. `name` is also
    # "output_schema" on the user message that asks for a repaired answer (loop.call_model).
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False
    # Set on role="assistant" by the loop: which `provider:model` answered (failover).
    model: str | None = None
    # Claim check: content too large for the table lives in S3; `content` then holds a
    # preview, `content_ref` the object (s3://bucket/key) and `content_bytes` its size.
    content_ref: str | None = None
    content_bytes: int | None = None
    # Set on role="assistant" by the loop: the usage of the call that wrote it (its
    # input_tokens: the whole request as the provider counted it); agentkit.memory.context
    # measures each message's tokens from it.
    usage: Usage | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self


class ToolSpec(BaseModel):
    """A tool as the model sees it: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "other"]


# Text that reaches a model: providers refuse NUL and the other C0 control characters (tab,
# newline and carriage return aside), and text that is not Unicode (a lone surrogate, which
# JSON's \ud800 escapes can carry). Checked on the raw value, before whitespace is stripped.
_NOT_MODEL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def check_model_text(value: Any) -> Any:
    """Refuse text a model provider would reject, saying which character and where."""
    if isinstance(value, str) and (bad := _NOT_MODEL_TEXT.search(value)):
        char = bad.group()
        if "\ud800" <= char <= "\udfff":
            raise ValueError(
                f"contains a lone surrogate (U+{ord(char):04X}) at position {bad.start()}: "
                "not valid Unicode text"
            )
        raise ValueError(
            f"contains the control character U+{ord(char):04X} at position {bad.start()}; "
            "model providers refuse control characters other than tab, newline and "
            "carriage return"
        )
    return value


#: a string that may be sent to a model (see check_model_text)
ModelText = Annotated[str, BeforeValidator(check_model_text)]


MAX_SCOPE_CHARS = 128
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@=+-]{0,127}$")


def check_scope(value: str | None) -> str | None:
    """A memory scope: 1-128 of letters, digits and `_ . : @ = + -`, starting with a letter
    or digit (no `/`, `#`, `|`: they separate the parts of a namespace and of a key)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SCOPE.match(value):
        raise ValueError(
            f"memory scope {value!r}: 1-{MAX_SCOPE_CHARS} of letters, digits and '_.:@=+-', "
            "starting with a letter or digit"
        )
    return value


#: The scope of a tenant's long-term memories a task or a memory belongs to (agentkit.memory)
MemoryScope = Annotated[str, AfterValidator(check_scope)]

#: Whether a task is planned before its first turn: `always`, `never`, or `auto` (the model
#: may answer that a one-step goal needs no plan).
PlanMode = Literal["auto", "always", "never"]

#: A plan step's progress, kept current by the model with the `update_plan` tool.
PlanStepStatus = Literal["pending", "in_progress", "completed", "skipped"]

MAX_PLAN_STEPS = 10
MAX_PLAN_STEP_CHARS = 200


class PlanStep(BaseModel):
    """One step of a task's plan (ordered; the model ticks them off with `update_plan`)."""

    title: str = Field(min_length=1, max_length=MAX_PLAN_STEP_CHARS)
    status: PlanStepStatus = "pending"


#: A task's use of long-term memory: `off` none, `recall` (the default) its goal's memories
#: recalled at plan time, `auto` that and durable facts distilled at its end.
MemoryMode = Literal["off", "recall", "auto"]


class WaitInfo(BaseModel):
    """Why a task is waiting for its provider, and until when (no compute runs meanwhile)."""

    provider: str
    reason: str = Field(
        description="`rate_limited` (the provider answered 429), `limiter` (the deployment's "
        "own limit for it is used up), `breaker_open`, `overloaded` or `outage`."
    )
    message: str = ""
    until: str = Field(description="When the model is called again (UTC).")
    since: str


class Task(BaseModel):
    """The task record (DynamoDB item `TASK#<id>` / `META`)."""

    task_id: str
    tenant_id: str = "default"
    goal: str
    status: TaskStatus = TaskStatus.QUEUED
    model: str
    fallback_models: list[str] = Field(default=[])
    tools: list[str] = Field(default=[])
    # Defaults: a task stored before long-term memory existed loads as unscoped, `recall`.
    memory_scope: MemoryScope | None = None
    memory: MemoryMode = "recall"
    # Defaults: a task stored before planning existed loads as never planned, no schema.
    plan: PlanMode = "never"
    #: The plan once made: None before planning (or with plan `never`), [] when the model
    #: answered that the goal needs none. At most MAX_PLAN_STEPS short steps, inline.
    plan_steps: list[PlanStep] | None = None
    #: A JSON Schema the final answer must validate against (agentkit.output_schema).
    output_schema: dict[str, Any] | None = None
    max_turns: int
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wait_seconds: int | None = None
    waited_seconds: int = 0
    waiting: WaitInfo | None = None
    turn: int = 0
    usage: Usage = Field(default_factory=Usage)
    answer: str | None = None
    #: The final answer parsed and validated against `output_schema` (set only with one).
    answer_json: Any = None
    error: str | None = None
    execution_arn: str | None = None
    # Sub-agents (agentkit.tools.delegate): the task whose `delegate` call made this one,
    # and how deep it is (0: submitted by a caller). Defaults: a task stored before
    # sub-agents existed loads as a top-level task.
    parent_id: str | None = None
    depth: int = Field(default=0, ge=0)
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)
    # Runs (follow-ups, agentkit.loop.runs): the record describes the task's current (or
    # last) run; earlier runs are kept as TaskRun items. Defaults: a task stored before
    # follow-ups existed is on its first run with nothing queued.
    run: int = 1
    #: the turn this run continues from (0 for the first run): its turns and its budgets
    #: are counted from here and from `run_usage_start`
    run_first_turn: int = 0
    run_usage_start: Usage = Field(default_factory=Usage)
    #: the follow-up message the current run answers (None: the first run, the goal)
    run_follow_up: int | None = None
    #: where the current run's follow-up message goes: MSG#<run_first_turn>#<this seq>
    run_message_seq: int | None = None
    #: follow-up messages accepted, and those taken off the queue (started or discarded)
    follow_ups: int = 0
    follow_ups_taken: int = 0
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def run_usage(self) -> Usage:
        """What the current run has spent (max_tokens / max_cost_usd apply to it)."""
        return self.usage.since(self.run_usage_start)

    @property
    def queued_follow_ups(self) -> int:
        return max(self.follow_ups - self.follow_ups_taken, 0)


#: A follow-up message's state: waiting for the active run, answered by its own run, or
#: dropped unrun (the task was cancelled while it waited).
FollowUpState = Literal["queued", "started", "discarded"]


class TaskRun(BaseModel):
    """One run of a task: the first answers its goal, each later one a follow-up message
    (POST /tasks/{id}/messages), continuing the same conversation in its own execution
    with its own budget."""

    run: int = Field(description="1 for the task's first run, then 2, 3, ...")
    follow_up: int | None = Field(
        default=None, description="The follow-up message this run answers (null: the goal)."
    )
    status: TaskStatus
    execution_arn: str | None = None
    first_turn: int = Field(description="The turn the run continued from (0 for run 1).")
    last_turn: int = Field(description="The last turn the run made.")
    usage: Usage = Field(description="What this run spent (the task's usage adds them up).")
    answer: str | None = None
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"


class ApprovalView(BaseModel):
    """A tool call that waits (or waited) for a human decision. The task token the state
    machine waits on is never part of it."""

    approval_id: str
    turn: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    args_hash: str = Field(description="SHA-256 of the canonical JSON {tool, arguments}.")
    status: ApprovalStatus
    reason: str | None = None
    created_at: str
    decided_at: str | None = None


EventKind = Literal[
    "model_call", "tool_call", "approval", "status", "wait", "compaction", "memory_recalled",
    "memory_extracted",
    "plan",
    "delegation",
    "admission",
]


class TaskEvent(BaseModel):
    """One entry of a task's timeline (GET /tasks/{id}/events): a model call, a tool call,
    an approval decision, a status change, a wait for a provider, a compaction of the
    conversation (older turns summarised to fit the model's window) or the long-term
    memories recalled at plan time, or the durable facts a task with `memory: auto` left
    as memories at its end (`error` set on these two: skipped, and why), the task's plan as
    made or updated (`plan`: its steps in `detail.steps`), or a delegation (sub-tasks
    started, `name` "started"; or one ended, `name` its status, `detail.child_id`, `usage`
    its usage, now part of this task's), or the task's admission (its execution started;
    `duration_ms` since it was submitted), with timing, tokens, cost and error."""

    kind: EventKind
    turn: int = 0
    name: str = Field(description="The model (`provider:model`), the tool, or the new status.")
    call_id: str | None = None
    at: str = Field(default_factory=utc_now, description="When it ended (UTC).")
    duration_ms: int = 0
    usage: Usage | None = None
    error: str | None = None
    detail: dict[str, Any] = Field(default={})
    started_at: str | None = Field(
        default=None,
        description=(
            "When it began (UTC): `at` less `duration_ms` (a timeline waterfall's bar is "
            "`started_at` to `at`; a wait's length is `detail.wait_seconds`)."
        ),
    )

    @model_validator(mode="after")
    def _fill_started_at(self) -> TaskEvent:
        """Events stored before the field existed get it from `at` and `duration_ms`."""
        if self.started_at is None:
            try:
                ended = datetime.fromisoformat(self.at)
            except ValueError:
                return self
            begun = ended - timedelta(milliseconds=self.duration_ms)
            self.started_at = begun.astimezone(UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
        return self
