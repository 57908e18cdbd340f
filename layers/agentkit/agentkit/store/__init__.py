"""DynamoDB data access: tasks and their conversations."""

from agentkit.store.dynamo import (
    ConflictError,
    TaskNotFoundError,
    TaskStore,
)

__all__ = ["ConflictError", "TaskNotFoundError", "TaskStore"]
