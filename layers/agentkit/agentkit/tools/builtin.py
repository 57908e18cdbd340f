"""Built-in tools: a safe calculator, the current time, and the policy-bound http_fetch and
read_file."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit.security.policy import SecurityConfig
from agentkit.tools.files import read_file_tool
from agentkit.tools.http_fetch import http_fetch_tool
from agentkit.tools.registry import Tool


class CalculatorArgs(BaseModel):
    # defer_build: built when the tool is first run or shown (not at cold start).
    model_config = ConfigDict(defer_build=True)

    expression: str = Field(
        min_length=1,
        max_length=500,
        description="Arithmetic expression, e.g. '17 * 23 + 2 ** 10'. Supports + - * / // % ** "
        "and sqrt, abs, round, min, max, pi, e.",
    )


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPONENT = 10_000


def _evaluate(node: ast.AST) -> Any:
    # Walk the AST ourselves: eval() on model output would be remote code execution.
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large (limit {_MAX_EXPONENT})")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    raise ValueError(f"unsupported expression element: {ast.dump(node)[:80]}")


def calculator(args: CalculatorArgs) -> str:
    try:
        tree = ast.parse(args.expression, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not an arithmetic expression: {error.msg}") from None
    value = _evaluate(tree)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


class CurrentTimeArgs(BaseModel):
    model_config = ConfigDict(defer_build=True)

    timezone: str = Field(
        default="UTC", max_length=64, description="IANA zone, e.g. 'Europe/Paris'."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value


def current_time(args: CurrentTimeArgs) -> dict[str, str]:
    now = datetime.now(ZoneInfo(args.timezone))
    return {
        "timezone": args.timezone,
        "iso": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
    }


def builtin_tools(policy: SecurityConfig | None = None) -> list[Tool]:
    """The built-ins; http_fetch and read_file bound to what `policy` allow-lists for them
    (None: nothing, they refuse every call)."""
    return [*_PLAIN_TOOLS, http_fetch_tool(policy), read_file_tool(policy)]


_PLAIN_TOOLS = [
    Tool(
        name="calculator",
        description="Evaluate an arithmetic expression exactly and return the result.",
        args_model=CalculatorArgs,
        func=calculator,
        timeout_s=5,
    ),
    Tool(
        name="current_time",
        description="The current date and time in a given IANA time zone.",
        args_model=CurrentTimeArgs,
        func=current_time,
        timeout_s=5,
    ),
]

#: The built-ins with no allow-lists (http_fetch and read_file refuse every call).
BUILTIN_TOOLS = builtin_tools()
