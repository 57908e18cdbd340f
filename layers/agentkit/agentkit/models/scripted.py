"""The replies model `scripted` plays (tests and the offline demo; a deployment enables it
with SCRIPTED_MODEL_ENABLED). Not part of the task: submit stores them beside it (the
task's SCRIPT item, agentkit.store.tasks) and only the scripted client reads them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentkit.models.domain import MAX_PLAN_STEP_CHARS, MAX_PLAN_STEPS, ModelText, Usage


class ScriptedToolCall(BaseModel):
    # defer_build: built only where the scripted model runs (tests, demos), not at cold start.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default={})
    #: A `delegate` call only: the replies each of its sub-tasks plays, in the order of
    #: its `tasks` (a child without one has no script, and fails as the scripted model
    #: does when it runs out of turns).
    #: (Plain objects here, checked as ScriptedTurn: a recursive model would split the
    #: OpenAPI schemas of the bodies that carry a script.)
    child_scripts: list[list[dict[str, Any]]] | None = Field(default=None, max_length=50)

    @field_validator("child_scripts")
    @classmethod
    def _scripts(
        cls, value: list[list[dict[str, Any]]] | None
    ) -> list[list[dict[str, Any]]] | None:
        if value is None:
            return None
        return [[ScriptedTurn.model_validate(turn).model_dump(mode="json", exclude_none=True)
                 for turn in script] for script in value]

    def child_script(self, position: int) -> list[ScriptedTurn] | None:
        """The replies the sub-task at `position` of this `delegate` call plays."""
        if not self.child_scripts or position >= len(self.child_scripts):
            return None
        return [ScriptedTurn.model_validate(turn) for turn in self.child_scripts[position]]


class ScriptedError(BaseModel):
    """A provider failure the scripted model plays instead of a reply."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

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


PlanTitle = Annotated[ModelText, Field(min_length=1, max_length=MAX_PLAN_STEP_CHARS)]


class ScriptedTurn(BaseModel):
    """One model reply played by the scripted client (tests and the offline demo). A script
    may open with a `plan` turn: it answers the planning call, and the loop's turns follow."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    content: ModelText | None = None
    tool_calls: list[ScriptedToolCall] = Field(default=[])
    plan: list[PlanTitle] | None = Field(
        default=None,
        max_length=MAX_PLAN_STEPS,
        description="Only in the first turn: the steps the planning call answers ([]: no "
        "plan needed).",
    )
    usage: Usage | None = None
    error: ScriptedError | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptedTurn:
        if self.error is None and self.content is None and not self.tool_calls and (
            self.plan is None
        ):
            raise ValueError("a scripted turn needs content, tool_calls, plan or error")
        if self.plan is not None and (self.content is not None or self.tool_calls):
            raise ValueError("a plan turn answers the planning call: no content or tool_calls")
        return self


def check_script(turns: list[ScriptedTurn]) -> None:
    """Only the first turn may be a plan turn (it answers the planning call)."""
    for index, turn in enumerate(turns[1:], start=1):
        if turn.plan is not None:
            raise ValueError(f"turn {index}: only the first scripted turn may be a plan")
