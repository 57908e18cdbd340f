"""Tool registry and built-in tools."""

from agentkit.tools.defaults import default_registry
from agentkit.tools.registry import Tool, ToolRegistry

__all__ = ["Tool", "ToolRegistry", "default_registry"]
