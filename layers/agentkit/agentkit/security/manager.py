"""The security manager: one decision per tool call — allow, deny, or needs approval.

An approval is bound to the exact call: `args_hash` is the SHA-256 of the canonical
JSON of `{"tool": name, "arguments": ...}`, and the approval id is derived from the
task, the turn, the call id and that hash, so a retried step finds the same approval
while any change to the call (another tool, any other argument) is another approval.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel

from agentkit.models.domain import Task, ToolCall
from agentkit.security.policy import DEFAULT_TENANT, Policy, SecurityConfig, matches

DENIED_PREFIX = "error: tool call denied: "


def args_hash(name: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"tool": name, "arguments": arguments},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def approval_id_for(task_id: str, turn: int, call_id: str, digest: str) -> str:
    seed = f"{task_id}\n{turn}\n{call_id}\n{digest}".encode()
    return "apv_" + hashlib.sha256(seed).hexdigest()[:32]


class Decision(BaseModel):
    outcome: Literal["allow", "deny", "needs_approval"]
    reason: str | None = None
    approval_id: str | None = None
    args_hash: str | None = None

    @property
    def denial_text(self) -> str:
        return DENIED_PREFIX + (self.reason or "not allowed")


class SecurityManager:
    def __init__(self, config: SecurityConfig | None = None) -> None:
        self.config = config or SecurityConfig()

    def policy(self, tenant_id: str | None = None) -> Policy:
        return self.config.for_tenant(tenant_id or DEFAULT_TENANT)

    def disallowed(self, names: list[str], tenant_id: str | None = None) -> list[str]:
        policy = self.policy(tenant_id)
        return [name for name in names if not policy.allows(name)]

    def explain(self, name: str, tenant_id: str | None = None) -> str:
        """Why the policy refuses `name` (for error messages)."""
        policy = self.policy(tenant_id)
        listed = policy.allowed_tools is None or matches(name, policy.allowed_tools)
        missing = policy.missing_constraint(name)
        if listed and missing:
            return f"'{name}' needs a {missing} allow-list in the security policy"
        return f"'{name}' is not allowed by the security policy"

    def check(self, task: Task, call: ToolCall, *, turn: int = 0) -> Decision:
        """allow | deny(reason) | needs_approval(approval_id, args_hash), deterministically."""
        policy = self.policy(task.tenant_id)
        if call.name not in task.tools:
            reason = f"tool '{call.name}' is not allowed for this task"
            return Decision(outcome="deny", reason=reason)
        if not policy.allows(call.name):
            reason = f"tool {self.explain(call.name, task.tenant_id)}"
            return Decision(outcome="deny", reason=reason)
        violation = policy.violation(call.name, call.arguments)
        if violation:
            return Decision(outcome="deny", reason=violation)
        if policy.needs_approval(call.name):
            digest = args_hash(call.name, call.arguments)
            return Decision(
                outcome="needs_approval",
                approval_id=approval_id_for(task.task_id, turn, call.id, digest),
                args_hash=digest,
            )
        return Decision(outcome="allow")
