"""A sub-task's end, told to its parent (the sub-task's Finalize / MarkFailed /
ReleaseSlot, and a cancel): record its outcome and add its usage to the parent's, once;
the last sub-task to report writes each `delegate` call's result (the answers, or the
errors) and resumes the parent with its token. A sub-task that fails is an error result
for the parent's model, never the parent's failure.

Apart from agentkit.loop.children (the WaitForChildren state) because Finalize reports
for every sub-task but never starts one: it does not load the delegation machinery (the
tools, the approval gate).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from agentkit.loop.task_tokens import StepFunctionsCallbacks, answer
from agentkit.models.domain import Task, TaskEvent, TaskStatus, ToolResult, utc_now
from agentkit.store import TaskStore
from agentkit.store.children import ChildrenRecord, ChildrenStore

#: A token answer: SendTaskSuccess with the wait's token (agentkit.loop.task_tokens.answer).
Resume = Callable[[str], None]
MAX_ANSWER_CHARS = 50_000


def sfn_resumer(sfn: StepFunctionsCallbacks) -> Resume:
    def resume(task_token: str) -> None:
        answer(sfn.send_task_success, taskToken=task_token, output=json.dumps({"resumed": True}))

    return resume


def report_to_parent(child: Task, *, store: TaskStore, resume: Resume | None) -> bool:
    """A sub-task that ended tells its parent (see the module doc); False when it is no
    sub-task, has not ended, or reported already."""
    if child.parent_id is None or not child.status.is_terminal:
        return False
    children = ChildrenStore(store)
    turn = children.find_turn(child.parent_id, child.task_id)
    if turn is None:
        return False
    record = children.report(child.parent_id, turn, child.task_id, child.status.value,
                             child.usage)
    if record is None:
        return False
    store.add_event(child.parent_id, TaskEvent(
        kind="delegation", turn=turn, name=child.status.value, usage=child.usage,
        error=child.error if child.status != TaskStatus.SUCCEEDED else None,
        detail={"child_id": child.task_id, "pending": max(record.pending, 0)}))
    if record.done:
        write_results(store, record)
        if record.task_token and resume is not None:
            resume(record.task_token)
    return True


def write_results(store: TaskStore, record: ChildrenRecord) -> None:
    """Each `delegate` call's result, once: its sub-tasks in order, with their answers (or
    why not). An error result when any of them did not succeed."""
    calls = dict.fromkeys(slot.call_id for slot in record.children.values())
    for call_id in calls:
        ids = record.of_call(call_id)
        index = record.children[ids[0]].index
        if store.get_message(record.parent_id, record.turn, index + 1) is not None:
            continue
        results: list[dict[str, object]] = []
        for child_id in ids:
            child = store.get_task(child_id)
            if child is None:
                results.append({"task_id": child_id, "status": "NOT_STARTED"})
                continue
            entry: dict[str, object] = {"task_id": child_id, "goal": child.goal,
                                        "status": child.status.value}
            if child.status == TaskStatus.SUCCEEDED:
                entry["answer"] = (child.answer or "")[:MAX_ANSWER_CHARS]
            else:
                entry["error"] = child.error or f"the sub-task ended {child.status.value}"
            results.append(entry)
        failed = [r for r in results if r["status"] != TaskStatus.SUCCEEDED.value]
        content = json.dumps({"results": results}, ensure_ascii=False)
        if failed:
            content = (f"error: {len(failed)} of {len(results)} sub-task(s) did not "
                       f"succeed\n{content}")
        result = ToolResult(call_id=call_id, name="delegate", content=content,
                            is_error=bool(failed))
        if store.put_message(record.parent_id, record.turn, index + 1, result.to_message()):
            store.add_event(record.parent_id, TaskEvent(
                kind="tool_call", turn=record.turn, name="delegate", call_id=call_id,
                duration_ms=_ms_between(record.created_at, utc_now()),
                error=content[:500] if failed else None,
                detail={"children": ids}))


def _ms_between(start: str, end: str) -> int:
    """The call's duration on the timeline: from its sub-tasks' record to its result."""
    try:
        began = datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return max(0, int((ended - began).total_seconds() * 1000))
