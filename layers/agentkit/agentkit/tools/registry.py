"""Tools: a name, a description, a pydantic argument model, a function.

The argument model is the single source of the JSON schema the providers see and
of the validation applied to what the model sends back. Validation and execution
errors become error tool results for the model to read, never exceptions that
fail the task.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agentkit.models import INVALID_ARGUMENTS_KEY, ToolCall, ToolResult, ToolSpec

DEFAULT_TOOL_TIMEOUT_S = 20.0
MAX_TOOL_OUTPUT_CHARS = 100_000


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    func: Callable[[Any], Any]
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    def spec(self) -> ToolSpec:
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)


def describe_validation_error(error: ValidationError) -> str:
    """`field 'a.b': message; field 'c': message` — names every bad field."""
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(arguments)"
        parts.append(f"field '{location}': {item['msg']}")
    return "; ".join(parts)


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool '{tool.name}' is already registered")
        self._tools[tool.name] = tool

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def unknown(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name not in self._tools]

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        chosen = self.names if names is None else [n for n in names if n in self._tools]
        return [self._tools[name].spec() for name in chosen]

    def run(self, call: ToolCall, *, allowed: Iterable[str] | None = None) -> ToolResult:
        """Validate and run one call; every failure comes back as an error result."""
        started = time.monotonic()

        def result(content: str, is_error: bool) -> ToolResult:
            return ToolResult(
                call_id=call.id,
                name=call.name,
                content=_truncate(content),
                is_error=is_error,
                duration_ms=int((time.monotonic() - started) * 1000),
            )

        tool = self._tools.get(call.name)
        if tool is None:
            return result(f"error: unknown tool '{call.name}'", True)
        if allowed is not None and call.name not in set(allowed):
            return result(f"error: tool '{call.name}' is not allowed for this task", True)
        if INVALID_ARGUMENTS_KEY in call.arguments:
            problem = call.arguments[INVALID_ARGUMENTS_KEY]
            return result(f"error: invalid arguments: {problem}", True)
        try:
            arguments = tool.args_model.model_validate(call.arguments)
        except ValidationError as error:
            return result(f"error: invalid arguments: {describe_validation_error(error)}", True)
        try:
            output = _call_with_timeout(tool.func, arguments, tool.timeout_s)
        except TimeoutError:
            return result(f"error: tool '{tool.name}' timed out after {tool.timeout_s:g} s", True)
        except Exception as error:  # a tool's own failure is information for the model
            return result(f"error: {type(error).__name__}: {error}", True)
        return result(_as_text(output), False)


_executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")


def _call_with_timeout(func: Callable[[Any], Any], arguments: BaseModel, timeout_s: float) -> Any:
    # A thread cannot be killed; a hung tool is abandoned and the call answered as a timeout.
    future = _executor.submit(func, arguments)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError as error:
        future.cancel()
        raise TimeoutError from error


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    return json.dumps(output, default=str, ensure_ascii=False)


def _truncate(text: str) -> str:
    if len(text) <= MAX_TOOL_OUTPUT_CHARS:
        return text
    dropped = len(text) - MAX_TOOL_OUTPUT_CHARS
    return text[:MAX_TOOL_OUTPUT_CHARS] + f"\n[truncated: {dropped} more characters]"


def default_registry() -> ToolRegistry:
    from agentkit.tools.builtin import BUILTIN_TOOLS

    return ToolRegistry(BUILTIN_TOOLS)
