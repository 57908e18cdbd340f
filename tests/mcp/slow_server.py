"""A tiny stdio MCP server for the tests: a tool that hangs, one that fails, one that
answers with a large output.

Run as `python tests/mcp/slow_server.py` (stdio); `SLOW_SERVER_START_DELAY_S` makes it
wait that long before it reads stdin (a server slow to start). Built with the SDK's MCPServer
(FastMCP's name in mcp 2.x).
"""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("opspawn-test-slow")


@server.tool(description="Sleep for `seconds`, then answer 'slept'.")
async def sleep(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "slept"


@server.tool(description="Always fails with `message` (an is_error result).")
def fail(message: str) -> str:
    raise ToolError(message)


@server.tool(description="Answer with `size` bytes of numbered lines.")
def dump(size: int) -> str:
    line_count = size // 13 + 1
    return "".join(f"line {i:07d}\n" for i in range(line_count))[:size]


if __name__ == "__main__":
    import os
    import time

    time.sleep(float(os.environ.get("SLOW_SERVER_START_DELAY_S") or 0))
    server.run("stdio")
