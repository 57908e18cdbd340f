"""The security manager: which tools a task may call, argument constraints, and which
calls need a human's approval (bound to a hash of the exact arguments)."""

from agentkit.security.manager import (
    DENIED_PREFIX,
    Decision,
    SecurityManager,
    approval_id_for,
    args_hash,
)
from agentkit.security.policy import Policy, PolicyError, SecurityConfig, ToolConstraints

__all__ = [
    "DENIED_PREFIX",
    "Decision",
    "Policy",
    "PolicyError",
    "SecurityConfig",
    "SecurityManager",
    "ToolConstraints",
    "approval_id_for",
    "args_hash",
]
