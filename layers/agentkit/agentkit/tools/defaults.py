"""The deployment's tool surface: the built-in tools and the MCP servers it configures.

Apart from the registry so that the registry, the built-ins and the MCP source each
depend only on what is below them (no import cycle).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agentkit.security.policy import SecurityConfig
from agentkit.tools.builtin import builtin_tools
from agentkit.tools.delegate import delegate_tool
from agentkit.tools.mcp import McpServerConfig, mcp_sources
from agentkit.tools.memory import unbound_memory_tools
from agentkit.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from agentkit.config import SecretSources


def default_registry(
    mcp_servers: Iterable[McpServerConfig] = (),
    *,
    policy: SecurityConfig | None = None,
    secret_sources: SecretSources | None = None,
    memory: bool = False,
) -> ToolRegistry:
    """The built-in tools (http_fetch and read_file bound to `policy`'s allow-lists), plus
    one lazy source per MCP server (the function's `MCP_SERVERS`, parsed at cold start by
    agentkit.config.ToolSettings). No server is contacted and `mcp` is not imported until a
    `<server>__*` tool is looked up, spec'd or called; a server's auth secret is looked up
    then, in the environment and `secret_sources`. `memory` (the deployment has long-term
    memory: an EmbeddingModel): the `remember` and `recall` built-ins too, unbound (RunTools
    binds them to the task whose calls it runs). `delegate` (sub-tasks) is always there;
    a task has it only when its request names it (agentkit.tools.delegate).
    """
    registry = ToolRegistry([*builtin_tools(policy), delegate_tool()])
    if memory:
        for tool in unbound_memory_tools():
            registry.register(tool)

    def resolver(name: str) -> str:
        from agentkit.secrets import provider_key  # when a server connects, not at import

        return provider_key(name, secret_sources)

    for source in mcp_sources(mcp_servers, secret_resolver=resolver):
        registry.add_source(source)
    return registry
