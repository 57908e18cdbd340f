"""DynamoDB data access: tasks and their conversations; shared provider state; tenant slots."""

from agentkit.store.dynamo import (
    ConflictError,
    TaskNotFoundError,
    TaskStore,
)
from agentkit.store.provider_state import ProviderStateStore
from agentkit.store.tenant_slots import TenantSlots

__all__ = [
    "ConflictError",
    "ProviderStateStore",
    "TaskNotFoundError",
    "TaskStore",
    "TenantSlots",
]
