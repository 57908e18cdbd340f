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

The package exports the task store (every function uses it) and the errors; the other
repositories are imported from their modules, so a function loads only those it uses.
"""

from agentkit.store.errors import ConflictError, InvalidCursorError, TaskNotFoundError
from agentkit.store.tasks import TaskStore

__all__ = [
    "ConflictError",
    "InvalidCursorError",
    "TaskNotFoundError",
    "TaskStore",
]
