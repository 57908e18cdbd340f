"""Tool registry and built-in tools."""

from agentkit.tools.registry import Tool, ToolRegistry, default_registry

__all__ = ["Tool", "ToolRegistry", "default_registry"]
