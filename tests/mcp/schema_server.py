"""A stdio MCP server for the tests: tools whose input schemas have the shapes real MCP
servers publish, a tool with an `outputSchema` that can break it, and a log of every
request method it receives.

Run as `python tests/mcp/schema_server.py` (stdio). Built on the SDK's low-level
`Server`, so each schema goes out exactly as written here (MCPServer would derive them
from Python signatures, and would refuse to send a result that breaks its own output
schema). With env `SCHEMA_SERVER_LOG=<path>`, the method of every request and
notification is appended to that file, one per line, as the server gets it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from pydantic import BaseModel, Field

# --- input schemas as real servers publish them


class Mode(StrEnum):
    train = "train"
    plane = "plane"
    car = "car"


class Leg(BaseModel):
    origin: str = Field(description="Where the leg starts.")
    destination: str
    depart: datetime
    mode: Mode = Mode.train


class Traveller(BaseModel):
    name: str
    age: int | None = Field(default=None, ge=0, description="Age in years, if known.")


class TripArgs(BaseModel):
    legs: list[Leg] = Field(min_length=1)
    travellers: list[Traveller]
    cabin: Literal["economy", "business"] = "economy"
    budget: dict[str, float] | None = Field(default=None, description="Per currency.")
    notes: str | None = None


class TreeNode(BaseModel):
    name: str
    children: list[TreeNode] = []


class TreeArgs(BaseModel):
    root: TreeNode


# What zod-to-json-schema (TypeScript SDK servers) gives for shared definitions.
ZOD_DRAFT07 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "pattern": "^[^\\s].*"},
        "source": {"$ref": "#/definitions/Source"},
        "extra": {"type": "array", "items": {"$ref": "#/definitions/Source"}, "maxItems": 3},
        "page": {"type": "integer", "exclusiveMinimum": 0, "default": 1},
        "filter": {
            "oneOf": [
                {"type": "object", "properties": {"tag": {"type": "string"}},
                 "required": ["tag"], "additionalProperties": False},
                {"type": "object", "properties": {"since": {"type": "string",
                                                            "format": "date"}},
                 "required": ["since"], "additionalProperties": False},
            ]
        },
        "mode": {"const": "fast"},
        "tuple": {"type": "array", "items": [{"type": "number"}, {"type": "number"}],
                  "minItems": 2, "maxItems": 2},
    },
    "required": ["query", "source"],
    "additionalProperties": False,
    "definitions": {
        "Source": {
            "type": "object",
            "properties": {"url": {"type": "string", "format": "uri"},
                           "weight": {"type": "number", "minimum": 0, "maximum": 1}},
            "required": ["url"],
            "additionalProperties": False,
        }
    },
}
# "One of id or path" at the top level, as several published servers write it.
TOP_LEVEL_ANY_OF = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "path": {"type": "string"},
                   "verbose": {"type": "boolean"}},
    "anyOf": [{"required": ["id"]}, {"required": ["path"]}],
}
# A tool without parameters, written the short way.
BARE_OBJECT = {"type": "object"}
# Composition with allOf, nullable type lists and an untyped array.
ALL_OF = {
    "type": "object",
    "allOf": [
        {"properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]},
        {"properties": {"b": {"allOf": [{"type": "integer"}, {"minimum": 2}]},
                        "c": {"type": "array"}}},
    ],
    "required": ["b"],
}
WEATHER_OUTPUT = {
    "type": "object",
    "properties": {
        "temperature": {"type": "number", "description": "Degrees Celsius."},
        "conditions": {"type": "string"},
    },
    "required": ["temperature", "conditions"],
}
WEATHER_INPUT = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "answer": {"type": "string", "enum": ["good", "wrong_type", "missing_field",
                                              "unstructured", "error"], "default": "good"},
    },
    "required": ["city"],
}

TOOLS = [
    types.Tool(name="plan_trip", description="Plan a trip (pydantic-made schema).",
               input_schema=TripArgs.model_json_schema()),
    types.Tool(name="walk_tree", description="Walk a tree (recursive schema).",
               input_schema=TreeArgs.model_json_schema()),
    types.Tool(name="search", description="Search (zod-made, draft-07 schema).",
               input_schema=ZOD_DRAFT07),
    types.Tool(name="lookup", description="Look up by id or path.", input_schema=TOP_LEVEL_ANY_OF),
    types.Tool(name="ping", description="Answer 'pong'.", input_schema=BARE_OBJECT),
    types.Tool(name="combine", description="Combine a, b and c.", input_schema=ALL_OF),
    types.Tool(name="weather", description="The weather in a city (structured).",
               input_schema=WEATHER_INPUT, output_schema=WEATHER_OUTPUT),
]


# --- the server


def _record(method: str) -> None:
    path = os.environ.get("SCHEMA_SERVER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(method + "\n")


async def record_methods(ctx: Any, call_next: Any) -> Any:
    _record(ctx.method)
    return await call_next(ctx)


async def list_tools(
    ctx: Any, params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


def _text(value: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=value)]


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    arguments = params.arguments or {}
    if params.name == "weather":
        answer = arguments.get("answer", "good")
        structured: dict[str, Any] = {"temperature": 21.5, "conditions": "sunny"}
        if answer == "wrong_type":
            structured["temperature"] = "warm"
        elif answer == "missing_field":
            del structured["conditions"]
        elif answer == "unstructured":
            return types.CallToolResult(content=_text("21.5 C and sunny"))
        elif answer == "error":
            return types.CallToolResult(content=_text("no weather today"), is_error=True)
        return types.CallToolResult(content=_text(json.dumps(structured)),
                                    structured_content=structured)
    if params.name == "ping":
        return types.CallToolResult(content=_text("pong"))
    return types.CallToolResult(content=_text(json.dumps({params.name: arguments},
                                                         sort_keys=True)))


server: Server[Any] = Server("opspawn-test-schemas", on_list_tools=list_tools,
                             on_call_tool=call_tool)
server.middleware.append(record_methods)


async def main() -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
