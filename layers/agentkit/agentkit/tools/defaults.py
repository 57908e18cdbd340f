"""The deployment's tool surface: the built-in tools and the MCP servers it configures.

Apart from the registry so that the registry, the built-ins and the MCP source each
depend only on what is below them (no import cycle).
"""

from __future__ import annotations

from agentkit.tools.builtin import BUILTIN_TOOLS
from agentkit.tools.mcp import load_mcp_config, mcp_sources
from agentkit.tools.registry import ToolRegistry


def default_registry() -> ToolRegistry:
    """The built-in tools, plus one lazy source per MCP server in env `MCP_SERVERS`.

    Reading `MCP_SERVERS` is a JSON parse and a pydantic validation (a bad value
    raises `McpConfigError` naming the field, at cold start, where a deployment
    mistake belongs); no server is contacted and `mcp` is not imported until a
    `<server>__*` tool is looked up, spec'd or called.
    """
    registry = ToolRegistry(BUILTIN_TOOLS)
    for source in mcp_sources(load_mcp_config()):
        registry.add_source(source)
    return registry
