"""Extraction's pure parts: the model's answer parsed into facts, the request it is sent,
the scripted model's part in it; and embeddings in a task's usage."""

from __future__ import annotations

import json

import pytest

from agentkit.llm.base import LLMRequest
from agentkit.llm.embeddings import EmbeddingUsage
from agentkit.llm.scripted import ScriptedClient
from agentkit.memory.extraction import (
    MAX_FACT_CHARS,
    MAX_FACTS,
    ExtractionError,
    extraction_request,
    parse_facts,
)
from agentkit.models.domain import Message, Task, Usage
from agentkit.models.scripted import ScriptedTurn


@pytest.mark.parametrize("answer", [
    '{"facts": ["Acme pays in euros.", "Deploys are on Tuesdays."]}',
    '```json\n{"facts": ["Acme pays in euros.", "Deploys are on Tuesdays."]}\n```',
    'Here you are: {"facts": ["Acme pays in euros.", "Deploys are on Tuesdays."]} Done.',
    '["Acme pays in euros.", "Deploys are on Tuesdays."]',
    '{"facts": ["Acme pays in euros.", "  Acme   pays in euros. ", "", '
    '"Deploys are on Tuesdays."]}',
])
def test_the_facts_of_an_answer(answer: str) -> None:
    assert parse_facts(answer) == ["Acme pays in euros.", "Deploys are on Tuesdays."]


def test_facts_are_bounded() -> None:
    many = json.dumps({"facts": [f"Fact number {n}." for n in range(MAX_FACTS + 5)]})
    assert len(parse_facts(many)) == MAX_FACTS
    long = parse_facts(json.dumps({"facts": ["x" * (MAX_FACT_CHARS + 100)]}))
    assert long == ["x" * MAX_FACT_CHARS]
    assert parse_facts('{"facts": []}') == []


@pytest.mark.parametrize(("answer", "why"), [
    ("I found nothing worth keeping.", "holds no JSON"),
    ('{"facts": ["a", }', "not valid JSON"),
    ('{"facts": "Acme pays in euros."}', "must be a list of strings"),
    ('{"facts": ["ok", 3]}', "every fact must be a string"),
])
def test_an_answer_that_is_not_facts_says_why(answer: str, why: str) -> None:
    with pytest.raises(ExtractionError, match=why):
        parse_facts(answer)


def _task(**extra: object) -> Task:
    return Task.model_validate({"task_id": "tsk_x", "goal": "Invoice Acme.",
                                "model": "scripted", "max_turns": 5, "turn": 3, **extra})


def test_the_request_shows_goal_known_memories_and_conversation() -> None:
    request = extraction_request(_task(), "[turn 1] assistant: done", ["Acme pays in euros."])
    assert request.purpose == "memory" and request.turn == 4 and request.max_tokens
    assert request.messages[0].role == "system" and "JSON" in (request.messages[0].content or "")
    prompt = request.messages[1].content or ""
    assert "The task's goal:\nInvoice Acme." in prompt
    assert "Already known (do not repeat):\n- Acme pays in euros." in prompt
    assert "[turn 1] assistant: done" in prompt
    assert "Already known" not in (extraction_request(_task(), "t", []).messages[1].content or "")


def test_the_scripted_model_plays_the_turn_after_the_answer_or_no_facts() -> None:
    client = ScriptedClient([ScriptedTurn(content="done"),
                             ScriptedTurn(content='{"facts": ["Acme pays in euros."]}')])
    ask = LLMRequest(model="scripted", messages=[Message(role="user", content="x")],
                     purpose="memory", turn=2)
    assert client.complete(ask).message.content == '{"facts": ["Acme pays in euros."]}'
    unscripted = client.complete(ask.model_copy(update={"turn": 3}))
    assert parse_facts(unscripted.message.content or "") == []
    assert unscripted.usage.model_calls == 1


def test_embeddings_count_apart_in_a_tasks_usage() -> None:
    embedded = EmbeddingUsage(input_tokens=12, cost_usd=0.00024, requests=1).as_task_usage()
    assert embedded == Usage(embedding_tokens=12, embedding_cost_usd=0.00024, cost_usd=0.00024)
    total = Usage(input_tokens=100, output_tokens=10, cost_usd=0.001, model_calls=1) + embedded
    assert total.total_tokens == 110  # max_tokens budgets the model's tokens only
    assert total.embedding_tokens == 12 and total.cost_usd == pytest.approx(0.00124)
    # A usage stored before embeddings counted loads with none.
    assert Usage.model_validate({"input_tokens": 1}).embedding_tokens == 0
