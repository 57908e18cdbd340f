"""Domain models shared by every function and by the user-side client.

One normalized shape for messages, tool calls and usage, whatever the provider.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


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

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 10),
            model_calls=self.model_calls + other.model_calls,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# The single key of a tool call's `arguments` when a provider could not decode the
# model's argument text; its value says what was wrong. The registry answers such a
# call with an error result instead of running the tool.
INVALID_ARGUMENTS_KEY = "__invalid_arguments__"


class ToolCall(BaseModel):
    """A model's request to run one tool. `arguments` is what the model sent, unvalidated."""

    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict)


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
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # Set on role="tool": which call this answers, and the tool's name.
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


class ScriptedToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptedError(BaseModel):
    """A provider failure the scripted model plays instead of a reply."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rate_limited", "overloaded", "outage", "fatal", "retryable"] = Field(
        default="fatal",
        description=(
            "rate_limited: a 429 (the provider is held for `retry_after_s`); overloaded: a "
            "503/529; outage: a 5xx or timeout (feeds the circuit breaker); fatal: a bad "
            "request or credentials; retryable: transient, kind unknown."
        ),
    )
    message: ModelText = Field(min_length=1, max_length=2000)
    retry_after_s: float | None = Field(
        default=None,
        ge=0,
        le=86_400,
        description="The wait the provider asks for (not with kind fatal).",
    )

    @model_validator(mode="after")
    def _no_wait_when_fatal(self) -> ScriptedError:
        if self.kind == "fatal" and self.retry_after_s is not None:
            raise ValueError("retry_after_s is for retryable kinds, not 'fatal'")
        return self


class ScriptedTurn(BaseModel):
    """One model reply played by the scripted client (tests and the offline demo)."""

    model_config = ConfigDict(extra="forbid")

    content: ModelText | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    usage: Usage | None = None
    error: ScriptedError | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptedTurn:
        if self.error is None and self.content is None and not self.tool_calls:
            raise ValueError("a scripted turn needs content, tool_calls or error")
        return self


MODEL_PATTERN = re.compile(r"^(scripted|[a-z][a-z0-9-]*:[A-Za-z0-9][\w.:/@+-]*)$")
TOOL_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"

MAX_GOAL_CHARS = 16_000


def _check_model(value: str) -> None:
    if not MODEL_PATTERN.match(value):
        raise ValueError(
            f"'{value[:80]}' must look like 'provider:model' (e.g. 'openai:gpt-4o-mini') "
            "or 'scripted'"
        )


#: A week: a task may wait this long in all for its providers.
MAX_WAIT_SECONDS_LIMIT = 7 * 24 * 3600


class SubmitTaskRequest(BaseModel):
    """Body of POST /tasks."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    goal: ModelText = Field(
        min_length=1, max_length=MAX_GOAL_CHARS, description="What the agent should do."
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="`provider:model`, e.g. `openai:gpt-4o-mini`; `scripted` plays scripted_turns.",
    )
    fallback_models: list[str] | None = Field(
        default=None,
        max_length=4,
        description="Models tried in order when `model` keeps failing with retryable errors.",
    )
    tools: list[Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]] | None = Field(
        default=None, max_length=64, description="Tools the task may use; default: all built-ins."
    )
    max_turns: int | None = Field(default=None, ge=1, le=50, description="Model calls at most.")
    max_tokens: int | None = Field(
        default=None, ge=1, le=100_000_000, description="Input + output tokens at most."
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, le=10_000, description="USD spent on model calls at most."
    )
    max_wait_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_WAIT_SECONDS_LIMIT,
        description="Patience: how long in all the task may wait for its providers (rate "
        "limits, overload, outages) before it fails; default from the deployment.",
    )
    scripted_turns: list[ScriptedTurn] | None = Field(
        default=None,
        max_length=50,
        validate_default=True,
        description="Replies for model `scripted` (only where the deployment enables it).",
    )

    @field_validator("model")
    @classmethod
    def _model_format(cls, value: str | None) -> str | None:
        if value is not None:
            _check_model(value)
        return value

    @field_validator("fallback_models")
    @classmethod
    def _fallbacks_format(cls, value: list[str] | None) -> list[str] | None:
        for model in value or []:
            _check_model(model)
        return value

    # A field validator (not a model validator) so the error names `scripted_turns`.
    @field_validator("scripted_turns")
    @classmethod
    def _script_matches_model(
        cls, value: list[ScriptedTurn] | None, info: ValidationInfo
    ) -> list[ScriptedTurn] | None:
        model = info.data.get("model")
        if model == "scripted" and not value:
            raise ValueError("model 'scripted' needs scripted_turns")
        if value and model != "scripted":
            raise ValueError("scripted_turns are only accepted with model 'scripted'")
        return value


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
    fallback_models: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    max_turns: int
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wait_seconds: int | None = None
    waited_seconds: int = 0
    waiting: WaitInfo | None = None
    turn: int = 0
    usage: Usage = Field(default_factory=Usage)
    answer: str | None = None
    error: str | None = None
    execution_arn: str | None = None
    scripted_turns: list[ScriptedTurn] | None = None
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)


class TaskSummary(BaseModel):
    """What POST /tasks answers and what lists show."""

    task_id: str
    status: TaskStatus
    goal: str
    model: str
    turn: int
    usage: Usage
    answer: str | None = None
    error: str | None = None
    waiting: WaitInfo | None = Field(
        default=None, description="Set while the task waits for its provider: why, until when."
    )
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, task: Task) -> TaskSummary:
        return cls.model_validate(task.model_dump(include=set(cls.model_fields)))


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


class ApprovalDecisionRequest(BaseModel):
    """Body of POST /tasks/{task_id}/approvals/{approval_id}."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["approve", "deny"]
    # A denial's reason reaches the model in the tool result.
    reason: ModelText | None = Field(default=None, max_length=2000)
    args_hash: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Optional: the args_hash the approver saw; a mismatch is refused (409).",
    )


class TaskView(TaskSummary):
    """GET /tasks/{id}: the task with its conversation."""

    tools: list[str]
    max_turns: int
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wait_seconds: int | None = None
    waited_seconds: int = Field(default=0, description="Seconds waited for providers so far.")
    messages: list[Message]
    approvals: list[ApprovalView] = Field(default_factory=list)


EventKind = Literal["model_call", "tool_call", "approval", "status", "wait", "compaction"]


class TaskEvent(BaseModel):
    """One entry of a task's timeline (GET /tasks/{id}/events): a model call, a tool call,
    an approval decision, a status change, a wait for a provider or a compaction of the
    conversation (older turns summarised to fit the model's window), with timing, tokens,
    cost and error."""

    kind: EventKind
    turn: int = 0
    name: str = Field(description="The model (`provider:model`), the tool, or the new status.")
    call_id: str | None = None
    at: str = Field(default_factory=utc_now, description="When it ended (UTC).")
    duration_ms: int = 0
    usage: Usage | None = None
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class TaskPage(BaseModel):
    """GET /tasks: one page of the tenant's tasks, newest first."""

    items: list[TaskSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last one."
    )


class TaskEventList(BaseModel):
    """GET /tasks/{id}/events: the task's timeline, oldest first."""

    items: list[TaskEvent]


# --- Small payloads passed between Step Functions states (ids and small values only).


class TaskRef(BaseModel):
    task_id: str = Field(min_length=1, max_length=64)


class TurnRef(TaskRef):
    turn: int = Field(ge=0)


class ToolCallRef(TurnRef):
    """One Map iteration: which stored tool call to run. Arguments stay in DynamoDB."""

    call_id: str = Field(min_length=1, max_length=128)
    index: int = Field(ge=0)


StepAction = Literal["tool_calls", "final", "stop", "wait"]


class ModelStepOutput(BaseModel):
    """What CallModel hands the state machine."""

    task_id: str
    turn: int  # the turn just completed
    action: StepAction
    #: action "tool_calls": the calls RunTools runs (the gate stored the denied ones'
    #: results), those of them that wait for approval first, and where the loop goes next.
    tool_calls: list[ToolCallRef] = Field(default_factory=list)
    approvals: list[ToolCallRef] = Field(default_factory=list)
    route: Literal["run_tools", "await_approvals", "call_model"] | None = None
    #: action "wait": seconds the state machine waits (a Wait state) before calling again
    wait_seconds: int | None = None
