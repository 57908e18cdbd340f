"""What the state machine passes between its states: ids and small values only.

The payload limit is 256 KB and every byte is carried through each transition, so a state
gets pointers (task, turn, call) and reads the rest from the store. One model per payload
a state receives or returns: TaskRef (Plan), TurnRef (CallModel) → ModelStepOutput,
RunToolsMessage (the SQS body RunTools sends), ApprovalWait / ApprovalSettle
(WaitForApproval / ApprovalNotGranted), ChildrenWait / ChildrenSettle (WaitForChildren /
ChildrenNotFinished), FinalizeEvent (Finalize, MarkFailed, ReleaseSlot),
StepError (what a Catch puts at `$.error`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    #: action "tool_calls": the turn's number within its run (the hard turn limit is per
    #: run; a follow-up run continues the task's turn numbers)
    run_turn: int = 0
    #: action "tool_calls": the calls RunTools runs (the gate stored the denied ones'
    #: results), those of them that wait for approval first, and where the loop goes next.
    tool_calls: list[ToolCallRef] = Field(default=[])
    approvals: list[ToolCallRef] = Field(default=[])
    route: Literal["run_tools", "await_approvals", "call_model", "delegate",
                   "await_approvals_then_delegate"] | None = None
    #: The `delegate` calls among `tool_calls`: WaitForChildren starts their sub-tasks and
    #: waits for them before RunTools (route "delegate").
    delegations: list[ToolCallRef] = Field(default=[])
    #: action "wait": seconds the state machine waits (a Wait state) before calling again
    wait_seconds: int | None = None


class StepError(BaseModel):
    """What a Step Functions Catch puts at ResultPath: `{"Error": ..., "Cause": ...}`."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(default="States.Unknown", alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class RunToolsMessage(TurnRef):
    """The SQS message body RunTools sends: the turn's calls and the wait's task token."""

    tool_calls: list[ToolCallRef] = Field(min_length=1)
    task_token: str = Field(min_length=1)


class ApprovalWait(ToolCallRef):
    """WaitForApproval's payload: one call of AwaitApprovals and the wait's task token."""

    action: Literal["wait"]
    task_token: str = Field(min_length=1)


class ApprovalSettle(ToolCallRef):
    """ApprovalNotGranted's payload: the call, and why its wait ended (denied, timed out)."""

    action: Literal["settle"]
    error: StepError = Field(default_factory=StepError)


WaitForApprovalEvent = Annotated[ApprovalWait | ApprovalSettle, Field(discriminator="action")]


class ChildrenWait(TurnRef):
    """WaitForChildren's payload: start the sub-tasks of the turn's `delegate` calls and
    park the task on the wait's task token until the last of them ends."""

    action: Literal["start"]
    delegations: list[ToolCallRef] = Field(min_length=1)
    task_token: str = Field(min_length=1)
    #: `$$.StateMachine.Id`: where the sub-tasks are started (see FinalizeEvent).
    state_machine_arn: str | None = None


class ChildrenSettle(TurnRef):
    """ChildrenNotFinished's payload: the wait ended without every sub-task (timed out,
    failed): cancel those still running and give their calls their results."""

    action: Literal["settle"]
    error: StepError = Field(default_factory=StepError)


WaitForChildrenEvent = Annotated[ChildrenWait | ChildrenSettle, Field(discriminator="action")]


class FinalizeEvent(TaskRef):
    """The payload of Finalize, MarkFailed and ReleaseSlot (one function)."""

    #: "stopped": the task already ended (cancelled, budget, patience); only its slot is freed.
    outcome: Literal["succeeded", "failed", "stopped"]
    error: StepError = Field(default_factory=StepError)
    #: `$$.StateMachine.Id`: where the next queued task is started (the function cannot
    #: name its own state machine in the template: that would be a dependency cycle).
    state_machine_arn: str | None = None
