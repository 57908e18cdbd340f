"""The store's fixtures: a task store whose claim-check bucket exists."""

from __future__ import annotations

import boto3
import pytest

from agentkit.store import TaskStore

BUCKET = "opspawn-test-artifacts"


@pytest.fixture
def big_store(store: TaskStore) -> TaskStore:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return TaskStore(store.table_name, artifacts_bucket=BUCKET)
