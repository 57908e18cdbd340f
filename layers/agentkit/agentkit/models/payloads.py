"""What the state machine passes between its states: ids and small values only.

The payload limit is 256 KB and every byte is carried through each transition, so a state
gets pointers (task, turn, call) and reads the rest from the store.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
