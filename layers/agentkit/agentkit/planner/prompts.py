"""Plan-and-act framing: the model is told its goal, its tools and its turn budget."""

from __future__ import annotations

import json

from agentkit.models.domain import Task, ToolSpec

_SYSTEM_PROMPT = """You are an autonomous agent running a task for a user.
Work in steps: think about what is needed, call tools when they help, read their results,
and give the final answer when you have it.

Rules:
- Use only the tools listed below, with arguments that match their schemas.
- A tool result that starts with "error:" means the call failed; fix the call or work around it.
- You have at most {max_turns} model turns; answer before running out.
- The final answer is your last message without tool calls: make it complete and self-contained.

Tools available: {tool_names}
"""


_OUTPUT_SCHEMA = """
The final answer must be a JSON value, and nothing else, matching this JSON Schema:
{schema}
"""


def build_system_prompt(task: Task, tools: list[ToolSpec]) -> str:
    names = ", ".join(spec.name for spec in tools) or "(none)"
    prompt = _SYSTEM_PROMPT.format(max_turns=task.max_turns, tool_names=names)
    if task.output_schema is not None:
        schema = json.dumps(task.output_schema, ensure_ascii=False)
        prompt += _OUTPUT_SCHEMA.format(schema=schema)
    return prompt
