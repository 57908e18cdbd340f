from __future__ import annotations

import json
import time

import pytest
from pydantic import BaseModel

from agentkit.models.domain import INVALID_ARGUMENTS_KEY, ToolCall
from agentkit.tools import Tool, ToolRegistry, default_registry
from agentkit.tools.registry import ToolError


def _call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(id="c1", name=name, arguments=arguments)


def test_specs_come_from_the_argument_models() -> None:
    specs = {spec.name: spec for spec in default_registry().specs()}
    assert set(specs) == {"calculator", "current_time", "http_fetch", "read_file", "delegate"}
    calc = specs["calculator"].parameters
    assert calc["type"] == "object"
    assert calc["required"] == ["expression"]
    assert calc["properties"]["expression"]["type"] == "string"
    assert "title" not in calc


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("17 * 23", "391"), ("2 ** 10 + 1", "1025"), ("sqrt(16) / 2", "2"), ("-(3 - 5) % 3", "2"),
     ("round(pi, 3)", "3.142"), ("max(1, 7, 3)", "7")],
)
def test_calculator(expression: str, expected: str) -> None:
    result = default_registry().run(_call("calculator", expression=expression))
    assert not result.is_error
    assert result.content == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "unsupported expression"),
        ("1 / 0", "ZeroDivisionError"),
        ("9 ** 99999", "too large"),
        ("1 +", "not an arithmetic expression"),
    ],
)
def test_calculator_refuses_or_reports(expression: str, message: str) -> None:
    result = default_registry().run(_call("calculator", expression=expression))
    assert result.is_error
    assert result.content.startswith("error:")
    assert message in result.content


def test_current_time_validates_zone() -> None:
    registry = default_registry()
    ok = registry.run(_call("current_time", timezone="Asia/Tokyo"))
    assert not ok.is_error
    assert json.loads(ok.content)["timezone"] == "Asia/Tokyo"
    bad = registry.run(_call("current_time", timezone="Mars/Olympus"))
    assert bad.is_error
    assert "field 'timezone'" in bad.content and "Mars/Olympus" in bad.content


def test_invalid_arguments_name_the_field() -> None:
    result = default_registry().run(_call("calculator", expresion="1+1"))
    assert result.is_error
    assert "field 'expression': Field required" in result.content


def test_undecodable_arguments_are_reported_not_run() -> None:
    call = ToolCall(id="c1", name="current_time",
                    arguments={INVALID_ARGUMENTS_KEY: "the tool arguments are not valid JSON: {ti"})
    result = default_registry().run(call)
    assert result.is_error
    assert result.content == "error: invalid arguments: the tool arguments are not valid JSON: {ti"


def test_unknown_and_disallowed_tools_never_run() -> None:
    ran: list[str] = []

    class Args(BaseModel):
        pass

    registry = ToolRegistry([Tool("probe", "records calls", Args, lambda _: ran.append("x"))])
    assert registry.run(_call("nope")).content == "error: unknown tool 'nope'"
    denied = registry.run(_call("probe"), allowed=["calculator"])
    assert denied.is_error and "not allowed" in denied.content
    assert ran == []


def test_a_hung_tool_times_out() -> None:
    class Args(BaseModel):
        pass

    sleepy = Tool("sleepy", "sleeps", Args, lambda _: time.sleep(5), timeout_s=0.2)
    registry = ToolRegistry([sleepy])
    started = time.monotonic()
    result = registry.run(_call("sleepy"))
    assert result.is_error and "timed out after 0.2 s" in result.content
    assert time.monotonic() - started < 2


def test_duplicate_registration_is_refused() -> None:
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("calculator"))  # type: ignore[arg-type]


def test_large_output_is_truncated_with_a_note() -> None:
    class Args(BaseModel):
        pass

    registry = ToolRegistry([
        Tool("big", "big", Args, lambda _: "a" * 5_050_000),
        Tool("large", "large", Args, lambda _: "b" * 1_000_000),
    ])
    result = registry.run(_call("big"))
    assert len(result.content) < 5_000_100
    assert result.content.endswith("[truncated: 50000 more characters]")
    assert registry.run(_call("large")).content == "b" * 1_000_000  # kept whole (S3 later)


def test_with_tools_replaces_registered_tools_in_a_copy() -> None:
    registry = default_registry(memory=True)
    assert {"remember", "recall"} <= set(registry.names)

    def answer(_: object) -> str:
        return "bound"

    def refuse(_: object) -> str:
        raise ToolError("no")

    original = registry.get("recall")
    assert original is not None
    bound = registry.with_tools([Tool(name="recall", description="d",
                                      args_model=original.args_model, func=answer)])
    assert bound.run(_call("recall", query="x")).content == "bound"
    # the deployment's registry is left as it was: unbound tools refuse to run
    assert registry.run(_call("recall", query="x")).content == (
        "error: long-term memory is not bound to a task here")
    assert bound.names == registry.names
    with pytest.raises(ValueError, match="not registered"):
        registry.with_tools([Tool(name="nope", description="d", args_model=None,
                                  func=refuse, input_schema={"type": "object"})])
    assert "remember" not in default_registry().names
