"""The planning step: the system prompt that frames a task for the model."""

from agentkit.planner.prompts import build_system_prompt

__all__ = ["build_system_prompt"]
