from __future__ import annotations

import pytest

from agentkit.models.domain import Message, Task, TaskStatus, ToolCall, Usage
from agentkit.store import ConflictError, TaskStore


def _task(task_id: str = "tsk_A", **extra: object) -> Task:
    fields: dict[str, object] = {"goal": "g", "model": "scripted", "max_turns": 5, **extra}
    return Task(task_id=task_id, **fields)  # type: ignore[arg-type]


def test_create_and_read_round_trip(store: TaskStore) -> None:
    task = _task(usage=Usage(input_tokens=3, cost_usd=0.0125))
    store.create_task(task)
    loaded = store.get_task("tsk_A")
    assert loaded == task
    assert store.get_task("tsk_missing") is None


def test_create_is_conditional(store: TaskStore) -> None:
    store.create_task(_task())
    with pytest.raises(ConflictError, match="already exists"):
        store.create_task(_task(goal="other"))
    assert store.require_task("tsk_A").goal == "g"


def test_messages_are_write_once_and_ordered(store: TaskStore) -> None:
    store.create_task(_task())
    call = ToolCall(id="c1", name="calculator", arguments={"expression": "1.5*2", "n": [1, 2.5]})
    assert store.put_message("tsk_A", 1, 0, Message(role="assistant", tool_calls=[call]))
    assert store.put_message("tsk_A", 0, 1, Message(role="user", content="goal"))
    assert store.put_message("tsk_A", 0, 0, Message(role="system", content="sys"))
    assert store.put_message("tsk_A", 1, 1, Message(role="tool", content="3", tool_call_id="c1"))
    assert not store.put_message("tsk_A", 0, 1, Message(role="user", content="overwrite?"))
    roles = [m.role for m in store.list_messages("tsk_A")]
    assert roles == ["system", "user", "assistant", "tool"]
    assert store.list_messages("tsk_A")[1].content == "goal"
    assert store.list_messages("tsk_A", 1)[0].tool_calls[0].arguments == call.arguments


def test_conversation_paginates(store: TaskStore) -> None:
    store.create_task(_task())
    big = "x" * 190_000  # ~190 KB each (inline): a 1 MB query page holds five at most
    for seq in range(8):
        store.put_message("tsk_A", 1, seq, Message(role="user", content=big + str(seq)))
    contents = [m.content for m in store.list_messages("tsk_A")]
    assert [c[-1] for c in contents if c] == [str(n) for n in range(8)]


def test_commit_model_turn_is_atomic_and_guarded(store: TaskStore) -> None:
    store.create_task(_task(status=TaskStatus.RUNNING))
    reply = Message(role="assistant", content="hi")
    store.commit_model_turn("tsk_A", 1, reply, Usage(input_tokens=5, model_calls=1))
    task = store.require_task("tsk_A")
    assert task.turn == 1 and task.usage.input_tokens == 5
    # The same turn again (a duplicate step) changes nothing.
    with pytest.raises(ConflictError):
        store.commit_model_turn("tsk_A", 1, reply, Usage(input_tokens=99))
    assert store.require_task("tsk_A").usage.input_tokens == 5


def test_a_cancelled_task_cannot_be_advanced_or_finished(store: TaskStore) -> None:
    store.create_task(_task(status=TaskStatus.RUNNING))
    assert store.finish_task("tsk_A", TaskStatus.CANCELLED, error="cancelled by caller")
    with pytest.raises(ConflictError):
        store.commit_model_turn("tsk_A", 1, Message(role="assistant", content="late"), Usage())
    assert store.get_message("tsk_A", 1, 0) is None  # the transaction wrote nothing
    assert not store.finish_task("tsk_A", TaskStatus.SUCCEEDED, answer="late answer")
    task = store.require_task("tsk_A")
    assert task.status == TaskStatus.CANCELLED and task.answer is None


def test_finish_requires_a_terminal_status(store: TaskStore) -> None:
    store.create_task(_task())
    with pytest.raises(ValueError, match="not a terminal"):
        store.finish_task("tsk_A", TaskStatus.RUNNING)


def test_list_tasks_newest_first_with_cursor_and_status(store: TaskStore) -> None:
    from agentkit.store.errors import InvalidCursorError

    for index in range(5):
        status = TaskStatus.SUCCEEDED if index % 2 else TaskStatus.RUNNING
        store.create_task(_task(f"tsk_{index}", tenant_id="acme", status=status,
                                created_at=f"2026-11-23T10:00:0{index}.000Z"))
    store.create_task(_task("tsk_other", tenant_id="other"))
    first, cursor = store.list_tasks("acme", limit=2)
    assert [t.task_id for t in first] == ["tsk_4", "tsk_3"] and cursor
    second, cursor = store.list_tasks("acme", limit=2, cursor=cursor)
    assert [t.task_id for t in second] == ["tsk_2", "tsk_1"]
    third, cursor = store.list_tasks("acme", limit=2, cursor=cursor)
    assert [t.task_id for t in third] == ["tsk_0"]
    done, _ = store.list_tasks("acme", status=TaskStatus.SUCCEEDED, limit=10)
    assert [t.task_id for t in done] == ["tsk_3", "tsk_1"]
    _, acme_cursor = store.list_tasks("acme", limit=1)
    with pytest.raises(InvalidCursorError):
        store.list_tasks("other", cursor=acme_cursor)  # a cursor never crosses tenants
    with pytest.raises(InvalidCursorError):
        store.list_tasks("acme", cursor="bm9wZQ==")
