"""agentkit.llm.tool_schema: the input schemas real MCP servers publish, shaped per
provider into what that provider's API documents as accepted.

The schemas come from tests/mcp/published_schemas.json (captured from the real test
servers; the integration tests check the live listings the same way), the acceptance
rules from tests/support/providers.py. The client tests check the same on the wire.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import fastjsonschema
import pytest

from agentkit.llm.tool_schema import (
    anthropic_input_schema,
    gemini_parameters,
    inline_refs,
    object_root,
    openai_parameters,
    openrouter_parameters,
)
from tests.support.providers import (
    anthropic_problems,
    gemini_problems,
    openai_problems,
    published_schemas,
    published_tools,
    subschemas,
)

Shaper = Callable[[dict[str, Any]], Any]
PROVIDERS: dict[str, tuple[Shaper, Callable[[Any], list[str]]]] = {
    "openai": (openai_parameters, openai_problems),
    "openrouter": (openrouter_parameters, openai_problems),
    "anthropic": (anthropic_input_schema, anthropic_problems),
    "google": (gemini_parameters, gemini_problems),
}
SCHEMAS = published_schemas()


def schema_of(server: str, tool: str) -> dict[str, Any]:
    return copy.deepcopy(SCHEMAS[server][tool])


# --- every published schema, every provider


def test_the_captured_schemas_need_shaping() -> None:
    # The point of the module: as published, real schemas break the documented rules.
    for provider, (_, problems) in PROVIDERS.items():
        broken = [spec.name for spec in published_tools() if problems(spec.parameters)]
        assert broken, provider
    assert len(published_tools()) >= 40


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_published_schema_is_shaped_into_what_the_provider_accepts(provider: str) -> None:
    shape, problems = PROVIDERS[provider]
    found = {}
    for spec in published_tools():
        original = copy.deepcopy(spec.parameters)
        shaped = shape(spec.parameters)
        assert spec.parameters == original, f"{spec.name}: the input was changed"
        if problems(shaped):
            found[spec.name] = problems(shaped)
        assert shaped is None or shape(shaped) == shaped, f"{spec.name}: not idempotent"
        assert json.loads(json.dumps(shaped)) == shaped  # plain JSON, ready for the wire
    assert found == {}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_arguments_valid_for_the_original_schema_stay_valid(provider: str) -> None:
    # Shaping may drop rules (the registry still checks the original), never add one.
    examples = {
        ("schema", "plan_trip"): {
            "legs": [{"origin": "Paris", "destination": "Lyon",
                      "depart": "2026-05-01T08:00:00Z", "mode": "plane"}],
            "travellers": [{"name": "Ada", "age": None}], "budget": {"EUR": 300.0},
        },
        ("schema", "walk_tree"): {"root": {"name": "a", "children": [{"name": "b"}]}},
        ("schema", "search"): {"query": "x", "source": {"url": "https://e.example"},
                               "filter": {"tag": "t"}, "tuple": [1, 2]},
        ("schema", "lookup"): {"path": "/tmp/x"},
        ("schema", "combine"): {"a": None, "b": 3, "c": [1, "two"]},
        ("schema", "ping"): {},
        ("fs", "edit_file"): {"path": "a", "edits": [{"oldText": "x", "newText": "y"}]},
        ("memory", "create_entities"): {
            "entities": [{"name": "n", "entityType": "t", "observations": ["o"]}]},
        ("time", "get_current_time"): {"timezone": "UTC"},
    }
    shape = PROVIDERS[provider][0]
    for (server, tool), arguments in examples.items():
        original = schema_of(server, tool)
        fastjsonschema.compile(original)(arguments)  # the example itself is valid
        shaped = shape(original) or {"type": "object", "properties": {}}
        fastjsonschema.compile(shaped)(arguments)


# --- shared steps


def test_refs_are_inlined_from_defs_and_definitions_and_siblings_win() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/A", "description": "the a"},
            "b": {"$ref": "#/$defs/B"},
            "c": {"$ref": "#/$defs/B/properties/x"},
            "d": {"$ref": "https://example.com/elsewhere.json"},
            "definitions": {"type": "string"},  # an argument with that name stays
        },
        "definitions": {"A": {"type": "integer", "description": "an A"}},
        "$defs": {"B": {"type": "object", "properties": {"x": {"type": "boolean"}}}},
    }
    assert inline_refs(schema) == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "the a"},
            "b": {"type": "object", "properties": {"x": {"type": "boolean"}}},
            "c": {"type": "boolean"},
            "d": {},
            "definitions": {"type": "string"},
        },
    }


def test_a_recursive_ref_is_cut_at_its_second_visit() -> None:
    shaped = inline_refs(schema_of("schema", "walk_tree"))
    node = shaped["properties"]["root"]
    assert node["properties"]["name"] == {"title": "Name", "type": "string"}
    assert node["properties"]["children"]["items"] == {"type": "object"}
    assert not any("$ref" in sub for _, sub in subschemas(shaped))


def test_object_root_merges_top_level_alternatives() -> None:
    lookup = object_root(schema_of("schema", "lookup"))
    assert lookup == {
        "type": "object",
        "properties": {"id": {"type": "string"}, "path": {"type": "string"},
                       "verbose": {"type": "boolean"}},
    }  # "one of id or path": neither is required on its own
    combined = object_root(schema_of("schema", "combine"))
    assert set(combined["properties"]) == {"a", "b", "c"}
    assert combined["required"] == ["b", "a"]  # allOf parts add up
    both = object_root({"oneOf": [
        {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
         "required": ["q", "n"]},
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    ]})
    assert both == {"type": "object", "properties": {"q": {"type": "string"},
                                                     "n": {"type": "integer"}},
                    "required": ["q"]}
    assert object_root({"enum": [1]}) == {"type": "object", "properties": {}}


# --- per provider


def test_anthropic_keeps_everything_below_the_top_level() -> None:
    search = anthropic_input_schema(schema_of("schema", "search"))
    original = schema_of("schema", "search")
    assert search["properties"]["filter"] == original["properties"]["filter"]  # oneOf kept
    assert search["additionalProperties"] is False
    assert search["properties"]["page"] == {"type": "integer", "exclusiveMinimum": 0,
                                            "default": 1}
    assert search["properties"]["source"]["required"] == ["url"]
    time = anthropic_input_schema(schema_of("time", "get_current_time"))
    assert time["title"] == "get_current_timeArguments"
    assert "$schema" not in anthropic_input_schema(schema_of("everything", "echo"))


def test_openai_gets_properties_on_objects_and_items_on_arrays() -> None:
    assert openai_parameters({"type": "object"}) == {"type": "object", "properties": {}}
    combine = openai_parameters(schema_of("schema", "combine"))
    assert combine["properties"]["c"] == {"type": "array", "items": {}}
    search = openai_parameters(schema_of("schema", "search"))
    # draft-07 tuple `items` is an `items` already; 2020-12 prefixItems gets one
    assert search["properties"]["tuple"]["items"] == [{"type": "number"}, {"type": "number"}]
    pair = openai_parameters({"type": "object", "properties": {"p": {
        "type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}]}}})
    assert pair["properties"]["p"]["items"] == {"anyOf": [{"type": "number"},
                                                          {"type": "string"}]}
    trip = openai_parameters(schema_of("schema", "plan_trip"))
    budget = trip["properties"]["budget"]["anyOf"][0]
    assert budget == {"additionalProperties": {"type": "number"}, "type": "object",
                      "properties": {}}


def test_openrouter_gets_the_openai_form() -> None:
    for spec in published_tools():
        assert openrouter_parameters(spec.parameters) == openai_parameters(spec.parameters)


def test_gemini_gets_the_documented_subset() -> None:
    search = gemini_parameters(schema_of("schema", "search"))
    assert search is not None
    properties = search["properties"]
    assert [set(branch["properties"]) for branch in properties["filter"]["anyOf"]] == [
        {"tag"}, {"since"}]  # oneOf -> anyOf
    assert properties["mode"] == {"enum": ["fast"]}  # const -> enum
    assert properties["page"] == {"type": "integer", "description": "Default: 1."}
    assert properties["query"] == {"type": "string"}  # minLength, pattern dropped
    assert properties["tuple"]["prefixItems"] == [{"type": "number"}, {"type": "number"}]
    assert properties["source"]["properties"]["url"] == {"type": "string", "format": "uri"}
    assert search["additionalProperties"] is False
    combine = gemini_parameters(schema_of("schema", "combine"))
    assert combine is not None
    assert combine["properties"]["b"] == {"type": "integer", "minimum": 2}  # allOf merged
    assert combine["properties"]["a"] == {"type": ["string", "null"]}
    trip = gemini_parameters(schema_of("schema", "plan_trip"))
    assert trip is not None
    notes = trip["properties"]["notes"]
    assert notes["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert notes["description"] == "Default: null."
    leg = trip["properties"]["legs"]["items"]
    assert leg["properties"]["mode"]["enum"] == ["train", "plane", "car"]
    assert leg["properties"]["depart"]["format"] == "date-time"
    # `required` names only declared properties
    assert gemini_parameters({"type": "object", "properties": {"a": {"type": "string"}},
                              "required": ["a", "ghost"]}) == {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


@pytest.mark.parametrize("schema", [
    {"type": "object"},
    {"type": "object", "properties": {}},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {}},
    {},
])
def test_gemini_declares_no_parameters_for_a_tool_without_any(schema: dict[str, Any]) -> None:
    assert gemini_parameters(schema) is None
