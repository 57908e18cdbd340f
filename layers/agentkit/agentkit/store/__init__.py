"""The only code that touches DynamoDB or S3: one repository per aggregate, one codec.

  codec.py           Python values ⇄ items; DynamoDB's size of an item; the inline budget
  blobs.py           the claim-check bucket (what is too large for an item)
  errors.py          errors every repository may raise
  tasks.py           TaskStore: a task, its tool surface, timeline and conversation
  approvals.py       ApprovalStore: tool calls waiting for a human decision
  schedules.py       ScheduleStore: recurring task templates
  api_keys.py        ApiKeyStore: API keys (hashes only)
  provider_state.py  ProviderStateStore: provider holds, breaker, rate-limit windows
  tenant_slots.py    TenantSlots: running slots and the queue per tenant
"""

from agentkit.store.errors import ConflictError, InvalidCursorError, TaskNotFoundError
from agentkit.store.provider_state import ProviderStateStore
from agentkit.store.tasks import TaskStore
from agentkit.store.tenant_slots import TenantSlots

__all__ = [
    "ConflictError",
    "InvalidCursorError",
    "ProviderStateStore",
    "TaskNotFoundError",
    "TaskStore",
    "TenantSlots",
]
