"""Test data the provider client tests share (test_openai_client, test_anthropic_client,
test_google_client, test_openrouter_client, test_tool_schemas): the tool declarations they
send, the input schemas real MCP servers publish, and per provider a check of what its
API accepts as a tool schema (the documented rules; each names its source). Wire-format
builders stay in each test module: every provider's wire format is its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentkit.models.domain import ToolSpec

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. '2 + 2'"}},
        "required": ["expression"],
    },
)
# A plain hand-written schema (test_google_client declares a pydantic-shaped one).
CURRENT_TIME = ToolSpec(
    name="current_time",
    description="The current time in a time zone.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "default": "UTC"}},
    },
)


# --- tool schemas as real MCP servers publish them, and what each provider accepts

PUBLISHED_SCHEMAS_FILE = Path(__file__).resolve().parents[1] / "mcp" / "published_schemas.json"


def published_schemas() -> dict[str, dict[str, dict[str, Any]]]:
    """{server: {tool: input schema}} captured from the test servers (tests/mcp/
    capture_schemas.py): server-everything, -filesystem, -memory, mcp-server-time and
    tests/mcp/schema_server.py (pydantic, zod draft-07, top-level anyOf, bare object...)."""
    loaded: dict[str, dict[str, dict[str, Any]]] = json.loads(PUBLISHED_SCHEMAS_FILE.read_text())
    return loaded


def published_tools() -> list[ToolSpec]:
    """Every captured schema as the agent sees the tool (`<server>__<tool>`)."""
    return [
        ToolSpec(name=f"{server}__{tool}", description=f"{tool} of {server}", parameters=schema)
        for server, tools in sorted(published_schemas().items())
        for tool, schema in sorted(tools.items())
    ]


_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SINGLE = ("items", "additionalProperties", "additionalItems", "not", "if", "then", "else",
           "contains", "propertyNames", "unevaluatedProperties", "unevaluatedItems")


def subschemas(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, node) for the schema and every schema inside it, e.g. ".properties.a.items"."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for key, value in schema.items():
        if key in _MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from subschemas(sub, f"{path}.{key}.{name}")
        elif (key in _LISTS or key == "items") and isinstance(value, list):
            for index, sub in enumerate(value):
                yield from subschemas(sub, f"{path}.{key}[{index}]")
        elif key in _SINGLE:
            yield from subschemas(value, f"{path}.{key}")


def _types(node: dict[str, Any]) -> list[Any]:
    kind = node.get("type")
    return kind if isinstance(kind, list) else [kind]


def _unresolved_refs(schema: dict[str, Any], prefixes: tuple[str, ...]) -> list[str]:
    problems = []
    for path, node in subschemas(schema):
        ref = node.get("$ref")
        if ref is None:
            continue
        target: Any = schema
        for part in str(ref).removeprefix("#/").split("/") if ref != "#" else []:
            target = target.get(part) if isinstance(target, dict) else None
        if not str(ref).startswith(prefixes) or not isinstance(target, dict):
            problems.append(f"{path or '(root)'}: $ref {ref} does not resolve")
    return problems


def anthropic_problems(schema: dict[str, Any]) -> list[str]:
    """Why the Messages API would refuse `input_schema`: JSON Schema with `type: "object"`
    at the top (SDK `ToolParam`), no `oneOf`/`allOf`/`anyOf` at the top (its 400 says so)."""
    problems = []
    if schema.get("type") != "object":
        problems.append(f"(root): type is {schema.get('type')!r}, not 'object'")
    problems += [f"(root): {key} at the top level" for key in ("oneOf", "allOf", "anyOf")
                 if key in schema]
    return problems + _unresolved_refs(schema, ("#/",))


def openai_problems(schema: dict[str, Any]) -> list[str]:
    """Why Chat Completions would refuse `parameters` (non-strict) with
    `invalid_function_parameters`: top level not an object or with a combinator, an
    object without `properties`, an array without `items`; refs only into `$defs`."""
    problems = []
    if schema.get("type") != "object":
        problems.append(f"(root): type is {schema.get('type')!r}, not 'object'")
    problems += [f"(root): {key} at the top level"
                 for key in ("oneOf", "anyOf", "allOf", "enum", "not", "const") if key in schema]
    for path, node in subschemas(schema):
        if "object" in _types(node) and not isinstance(node.get("properties"), dict):
            problems.append(f"{path or '(root)'}: object schema missing properties")
        if "array" in _types(node) and "items" not in node:
            problems.append(f"{path or '(root)'}: array schema missing items")
    return problems + _unresolved_refs(schema, ("#/$defs/",))


# ai.google.dev/gemini-api/docs/structured-output ("JSON Schema support"), which is what
# `parameters_json_schema` takes; `$defs` only at the root.
GEMINI_KEYWORDS = frozenset({
    "type", "title", "description", "enum", "format", "minimum", "maximum", "items",
    "prefixItems", "minItems", "maxItems", "properties", "required", "propertyOrdering",
    "additionalProperties", "anyOf", "$ref",
})
GEMINI_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})


def gemini_problems(schema: dict[str, Any] | None) -> list[str]:
    """Why the Gemini API would refuse `parameters_json_schema` (None: not declared, fine):
    an object of parameters at the top, only the documented keywords and types, `items`
    a schema, `required` naming declared properties, `$defs` only at the root."""
    if schema is None:
        return []
    problems = []
    if schema.get("type") != "object" or not schema.get("properties"):
        problems.append("(root): not an object with properties (leave it unset instead)")
    for path, node in subschemas(schema):
        where = path or "(root)"
        allowed = GEMINI_KEYWORDS | ({"$defs"} if node is schema else set())
        problems += [f"{where}: keyword {key!r} not supported" for key in node
                     if key not in allowed]
        problems += [f"{where}: type {kind!r} not supported" for kind in _types(node)
                     if kind is not None and kind not in GEMINI_TYPES]
        if "items" in node and not isinstance(node["items"], dict):
            problems.append(f"{where}: items is not a schema")
        declared = node.get("properties") or {}
        problems += [f"{where}: required {name!r} is not a property"
                     for name in node.get("required") or [] if name not in declared]
    return problems + _unresolved_refs(schema, ("#/$defs/",))


# --- the real clients, pointed at a provider (the loopback fakes, or nowhere)

FAKE_KEYS = {"openai": "sk-proj-unitTESTkey", "openrouter": "sk-or-v1-unitTESTkey",
             "anthropic": "sk-ant-api03-unitTESTkey", "google": "AIzaSyUnitTESTkey0000"}


def client_for(provider: str, base_url: str, *, timeout_s: float = 10.0) -> Any:
    """`provider`'s client (its real SDK inside; Anthropic's speaks HTTP itself) talking
    to `base_url`."""
    if provider == "openai":
        from agentkit.llm.openai_client import OpenAIClient

        return OpenAIClient(FAKE_KEYS[provider], base_url=base_url, timeout_s=timeout_s)
    if provider == "openrouter":
        from agentkit.llm.openrouter_client import OpenRouterClient

        return OpenRouterClient(FAKE_KEYS[provider], base_url=base_url, timeout_s=timeout_s)
    if provider == "anthropic":
        from agentkit.llm.anthropic_client import AnthropicClient

        return AnthropicClient(FAKE_KEYS[provider], base_url=base_url, timeout_s=timeout_s)
    from agentkit.llm.google_client import GoogleClient

    return GoogleClient(FAKE_KEYS[provider], base_url=base_url, timeout_s=timeout_s)
