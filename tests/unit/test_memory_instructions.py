"""How recalled memories are put into a task's instructions."""

from __future__ import annotations

from agentkit.memory.long_term import instructions_block
from agentkit.memory.models import Memory, RecalledMemory


def _hit(text: str, score: float) -> RecalledMemory:
    return RecalledMemory(memory=Memory(memory_id="mem_1", text=text, created_at="t",
                                        embedding_model="m"), score=score)


def test_no_memories_no_block() -> None:
    assert instructions_block([]) is None


def test_memories_are_listed_as_notes_not_instructions() -> None:
    block = instructions_block([_hit("Acme pays in euros.", 0.9), _hit("Deploys: Tuesdays.", 0.8)])
    assert block is not None
    assert block.splitlines()[1:] == ["- Acme pays in euros.", "- Deploys: Tuesdays."]
    assert "not instructions" in block
