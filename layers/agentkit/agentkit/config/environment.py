"""The one place of the layer that reads the process environment.

Settings models (agentkit.config) read it once per cold start through `environ()`; secrets
(agentkit.secrets) read one variable by name when they are used, through `variable()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def environ() -> Mapping[str, str]:
    """The process environment, read-only."""
    return os.environ


def variable(name: str) -> str | None:
    """The variable `name`, stripped; unset or blank: None. Read when asked: for a secret
    (or where to find it), looked up by a name only known when it is used (a provider's
    key, an MCP server's `auth_secret`), and never kept in a settings model."""
    return (os.environ.get(name) or "").strip() or None
