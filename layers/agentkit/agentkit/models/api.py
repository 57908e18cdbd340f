"""Bodies of the HTTP API: the requests it accepts (checked strictly, naming the field) and
the views it answers. Only the API functions and the user-side client need these; the
state-machine functions never import this module (building these models costs cold start).

The models that only one function serves (the task views and follow-ups: Tasks; an approval
decision: Approvals) are `defer_build`: the others that import this module (Submit,
Schedules) never build them, and the function that serves them builds them at its cold start
(`startup.ready(...)` in its app.py), not at its first request.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agentkit.models.domain import (
    ApprovalView,
    FollowUpState,
    MemoryMode,
    MemoryScope,
    Message,
    ModelText,
    PlanMode,
    PlanStep,
    Task,
    TaskEvent,
    TaskRun,
    TaskStatus,
    Usage,
    WaitInfo,
)
from agentkit.models.scripted import ScriptedTurn, check_script

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
    memory_scope: MemoryScope | None = Field(
        default=None,
        description="The scope of the tenant's long-term memories the task recalls and "
        "writes (e.g. an end user's id); null: the tenant's unscoped memories.",
    )
    memory: MemoryMode = Field(
        default="recall",
        description="Long-term memory: `recall` (default) puts the memories nearest the goal "
        "into the task's instructions and offers the remember/recall tools; `auto` also "
        "has the task's model distil the durable facts it learnt into memories when it "
        "succeeds (deduplicated against what the scope holds; a `memory_extracted` event; "
        "its cost in the task's usage), before it is shown SUCCEEDED; `off` neither. "
        "Ignored where the deployment has no EmbeddingModel.",
    )
    plan: PlanMode | None = Field(
        default=None,
        description="Plan before the first turn: `always`, `never`, or `auto` (the model "
        "may answer that a one-step goal needs no plan); default from the deployment "
        "(DefaultPlan). The plan is shown on the task (`plan_steps`) and kept current by the "
        "model with the built-in `update_plan` tool; the planning call counts in usage and "
        "budgets.",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema (draft-07, at most 16,000 bytes of JSON) the final answer "
        "must validate against; the validated value is the task's `answer_json`. The model "
        "gets one repair turn; an answer that still does not validate fails the task.",
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
        if value:
            check_script(value)
        if model == "scripted" and not value:
            raise ValueError("model 'scripted' needs scripted_turns")
        if value and model != "scripted":
            raise ValueError("scripted_turns are only accepted with model 'scripted'")
        return value


class TaskSummary(BaseModel):
    """What POST /tasks answers and what lists show."""

    task_id: str
    status: TaskStatus
    goal: str
    model: str
    turn: int
    usage: Usage
    answer: str | None = None
    answer_json: Any = Field(
        default=None,
        description="With an `output_schema`: the final answer as the JSON value it "
        "validated as.",
    )
    error: str | None = None
    waiting: WaitInfo | None = Field(
        default=None, description="Set while the task waits for its provider: why, until when."
    )
    parent_id: str | None = Field(
        default=None,
        description="Set on a sub-task: the task whose `delegate` call started it.",
    )
    depth: int = Field(
        default=0, description="0 for a task a caller submitted; a sub-task's parent's + 1."
    )
    created_at: str
    updated_at: str
    run: int = Field(
        default=1, description="The task's current (or last) run: 1, then one more per "
        "follow-up message (POST /tasks/{task_id}/messages)."
    )

    @classmethod
    def of(cls, task: Task) -> TaskSummary:
        return cls.model_validate(task.model_dump(include=set(cls.model_fields)))


class ApprovalDecisionRequest(BaseModel):
    """Body of POST /tasks/{task_id}/approvals/{approval_id}."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

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

    model_config = ConfigDict(defer_build=True)

    tools: list[str]
    memory_scope: str | None = None
    memory: MemoryMode = "recall"
    plan: PlanMode = "never"
    plan_steps: list[PlanStep] | None = Field(
        default=None,
        description="The plan, its steps in order with their status (the model ticks them "
        "off with `update_plan`); null: not planned, []: the model found no plan needed.",
    )
    output_schema: dict[str, Any] | None = None
    max_turns: int
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wait_seconds: int | None = None
    waited_seconds: int = Field(default=0, description="Seconds waited for providers so far.")
    messages: list[Message]
    approvals: list[ApprovalView] = Field(default=[])
    children: list[TaskSummary] = Field(
        default=[],
        description="The sub-tasks its `delegate` calls started, oldest first (their usage "
        "is part of this task's `usage`).",
    )
    runs: list[TaskRun] = Field(
        default=[],
        description="Every run of the task, oldest first; the last is the current one. Its "
        "budgets (max_turns, max_tokens, max_cost_usd) apply to each run; `usage` is the sum.",
    )
    queued_follow_ups: int = Field(
        default=0, description="Follow-up messages waiting for the current run to end."
    )


OnBusy = Literal["reject", "enqueue"]


class FollowUpRequest(BaseModel):
    """Body of POST /tasks/{task_id}/messages: continue an ended task."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

    content: ModelText = Field(
        min_length=1, max_length=MAX_GOAL_CHARS,
        description="The user's next message; the task's model sees the whole conversation.",
    )
    on_busy: OnBusy = Field(
        default="reject",
        description="While a run is active (or follow-ups wait): `reject` answers 409, "
        "`enqueue` queues the message; it starts its own run when the ones before it end.",
    )


class FollowUpAccepted(BaseModel):
    """What POST /tasks/{task_id}/messages answers."""

    model_config = ConfigDict(defer_build=True)

    task_id: str
    follow_up: int = Field(description="The message's number among the task's follow-ups.")
    state: FollowUpState = Field(
        description="`started`: its run began; `queued`: it waits for the active run to end; "
        "`discarded`: the task was cancelled before it started."
    )
    run: int | None = Field(default=None, description="The run answering it, once started.")
    task: TaskSummary


class TaskPage(BaseModel):
    """GET /tasks: one page of the tenant's tasks, newest first."""

    model_config = ConfigDict(defer_build=True)

    items: list[TaskSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last one."
    )


class TaskEventList(BaseModel):
    """GET /tasks/{id}/events: the task's timeline, oldest first."""

    model_config = ConfigDict(defer_build=True)

    items: list[TaskEvent]
