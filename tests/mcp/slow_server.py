"""A tiny stdio MCP server for the tests: a tool that hangs and a tool that fails.

Run as `python tests/mcp/slow_server.py` (stdio). Built with the SDK's MCPServer
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


if __name__ == "__main__":
    server.run("stdio")
