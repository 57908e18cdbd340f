"""Built-in `read_file`: read a text file under an allow-listed path prefix.

Like `http_fetch`, it is fail-closed: the security manager checks the (normalized) path
against the tenant's `path_prefixes` before the call is queued, and the tool checks the
*resolved* path (symlinks followed) against every prefix the deployment allow-lists for it
(given when the tool is made, `read_file_tool`),
so neither `..` nor a symlink can lead it out of the allowed directories.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.security.policy import SecurityConfig, path_allowed, path_problem
from agentkit.tools.registry import Tool

TOOL_NAME = "read_file"


class ReadFileArgs(BaseModel):
    # defer_build: built when the tool is first run or shown (not at cold start).
    model_config = ConfigDict(defer_build=True)

    path: str = Field(min_length=1, max_length=1024, description="Absolute path of the file.")
    max_bytes: int = Field(default=100_000, ge=1, le=1_000_000,
                           description="Read at most this many bytes.")


def read_file(args: ReadFileArgs, prefixes: list[str]) -> dict[str, Any]:
    """Read `args.path` if it (and what it resolves to) is under one of `prefixes`."""
    problem = path_problem(args.path, prefixes)
    resolved = os.path.realpath(args.path)
    if problem is None and not path_allowed(resolved, prefixes):
        problem = f"path '{args.path}' resolves outside the allowed prefixes"
    if problem:
        raise PermissionError(f"refusing to read: {problem}")
    with open(resolved, "rb") as handle:
        data = handle.read(args.max_bytes + 1)
    return {
        "path": args.path,
        "truncated": len(data) > args.max_bytes,
        "text": data[: args.max_bytes].decode("utf-8", errors="replace"),
    }


def read_file_tool(policy: SecurityConfig | None = None) -> Tool:
    """The tool, reading only under the prefixes `policy` allow-lists for it (None: none)."""
    prefixes = (policy or SecurityConfig()).prefixes_for(TOOL_NAME)
    return Tool(
        name=TOOL_NAME,
        description="Read a UTF-8 text file (at most max_bytes). Only paths under the "
        "deployment's allowed prefixes can be read.",
        args_model=ReadFileArgs,
        func=lambda args: read_file(args, prefixes),
        timeout_s=5,
    )
