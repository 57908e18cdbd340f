"""Tool input schemas, shaped per provider: one small pure function each.

MCP servers publish input schemas the way their SDK writes them: zod gives draft-07
(`$schema`, `definitions`, `additionalProperties: false`), pydantic gives `$defs`/`$ref`,
`anyOf` with a `null` branch, `title` and `default`; hand-written ones have
`{"type": "object"}` with no properties or a top-level `anyOf` ("one of id or path").
Each provider accepts a different part of JSON Schema and rejects a whole request (every
tool, not just the odd one) over a keyword it does not take, so each client passes its
tool schemas through its provider's function here where it builds the wire tool:

* `anthropic_input_schema`: the Messages API takes JSON Schema (2020-12) as
  `input_schema` (anthropic SDK, `ToolParam.input_schema`) with `type: "object"` at the
  top; its 400 "input_schema does not support oneOf, allOf, or anyOf at the top level"
  names the one other rule. Only the top level is changed (`object_root`).
* `openai_parameters`: Chat Completions takes "a JSON Schema object" (openai SDK,
  `FunctionDefinition.parameters`; no `strict`, so not the Structured Outputs subset). Its
  400 `invalid_function_parameters` names the rules beyond that: "schema must have type
  'object' and not have 'oneOf'/'anyOf'/'allOf'/'enum'/'not' at the top level", "object
  schema missing properties", "array schema missing items". Those three are fixed.
* `openrouter_parameters`: OpenRouter documents OpenAI's tool format as its input
  ("passed down as-is for providers implementing OpenAI's interface", transformed for the
  others: openrouter.ai/docs/api-reference/overview), so it gets OpenAI's form.
* `gemini_parameters`: `FunctionDeclaration.parameters_json_schema` (google-genai; v1beta)
  takes JSON Schema describing an object, but the Gemini API documents a subset of it
  (ai.google.dev/gemini-api/docs/structured-output, "JSON Schema support": `type` incl.
  `null` and type lists, `title`, `description`, `enum`, `format`, `minimum`/`maximum`,
  `items`, `prefixItems`, `minItems`/`maxItems`, `properties`, `required`,
  `propertyOrdering`, `additionalProperties`, `anyOf`; `$defs` only at the root). Every
  node is reduced to that subset: `oneOf` becomes `anyOf`, `allOf` is merged, `const`
  becomes a one-value `enum`, `default` moves into the description, and `required` keeps
  only declared properties. A tool without parameters declares none (None): "for function
  with no parameters, this can be left unset" (SDK, `FunctionDeclaration.parameters`).

Every provider first gets the schema self-contained (`inline_refs`): local `$ref`s are
replaced by what they point to, and `$schema`, `$id`, `$comment`, `$defs` and `definitions`
are dropped. Google takes `$defs` at the root only, OpenAI documents `$defs` but not
draft-07's `definitions`, and the fixes above need a tree without references; the model
sees each argument's shape in place. A recursive reference is cut at its second visit
(`{"type": ...}` of the target).

What is dropped only changes what the model is told: arguments are still validated against
the tool's ORIGINAL schema before the tool runs (`agentkit.tools.registry`), and an
argument that breaks a dropped rule comes back as an error result naming the field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

Schema = dict[str, Any]

# Keywords whose value holds subschemas (by name, in a list, or one), per JSON Schema
# 2020-12 and draft-07. Every other keyword's value is data (enum, const, default...).
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_SINGLE = (
    "items", "additionalProperties", "additionalItems", "not", "if", "then", "else",
    "contains", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
)
# Tell the model nothing; references into the definitions are inlined.
_META = frozenset({"$schema", "$id", "$comment", "$defs", "definitions"})
_GEMINI_KEYWORDS = frozenset({
    "type", "title", "description", "enum", "format", "minimum", "maximum", "items",
    "prefixItems", "minItems", "maxItems", "properties", "required", "propertyOrdering",
    "additionalProperties", "anyOf",
})


def _map_subschemas(node: Schema, func: Callable[[Any], Any]) -> Schema:
    """`node` with `func` applied to each direct subschema; data keywords deep-copied."""
    out: Schema = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: func(sub) for name, sub in value.items()}
        elif (key in _SCHEMA_LISTS or key == "items") and isinstance(value, list):
            out[key] = [func(sub) for sub in value]
        elif key in _SCHEMA_SINGLE and isinstance(value, dict):
            out[key] = func(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _pointer(document: Schema, ref: str) -> Any:
    """What a local `$ref` ("#", "#/$defs/A", "#/definitions/A/properties/b") points to."""
    if not ref.startswith("#"):
        return None
    node: Any = document
    path = unquote(ref[1:])
    for part in path.split("/")[1:] if path else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def inline_refs(schema: Schema) -> Schema:
    """A self-contained copy: local `$ref`s replaced by their target (keywords beside the
    `$ref` kept, and they win), the meta keywords and definitions dropped. A reference that
    does not resolve becomes `{}` (any value); a recursive one is cut to the target's type."""

    def walk(node: Any, trail: frozenset[str]) -> Any:
        if node is True:
            return {}
        if not isinstance(node, dict):
            return node
        here = {key: value for key, value in node.items() if key not in _META}
        ref = here.pop("$ref", None)
        result = _map_subschemas(here, lambda sub: walk(sub, trail))
        if not isinstance(ref, str):
            return result
        target = _pointer(schema, ref)
        if isinstance(target, bool):
            target = {} if target else None
        if not isinstance(target, dict):
            resolved: Schema = {}
        elif ref in trail:
            resolved = {key: target[key] for key in ("type", "description") if key in target}
        else:
            resolved = walk(target, trail | {ref})
        return {**resolved, **result}

    root = walk(schema, frozenset())
    return root if isinstance(root, dict) else {}


def _is(node: Schema, type_name: str) -> bool:
    kind = node.get("type")
    return kind == type_name or (isinstance(kind, list) and type_name in kind)


def object_root(schema: Schema) -> Schema:
    """The top level as OpenAI and Anthropic require it: `type: "object"` with `properties`
    and no `anyOf`/`oneOf`/`allOf`/`not`/`enum`/`const` beside them. Alternatives are merged
    into one object: a property is required when every alternative requires it; each part
    of an `allOf` adds its properties and required names."""
    root = dict(schema)
    properties = dict(root.get("properties") or {})
    required = [name for name in root.get("required") or [] if isinstance(name, str)]

    def add(part: Schema) -> list[str]:
        flat = object_root(part)
        for name, sub in flat["properties"].items():
            properties.setdefault(name, sub)
        return list(flat.get("required", []))

    for part in root.pop("allOf", None) or []:
        if isinstance(part, dict):
            required += add(part)
    for key in ("anyOf", "oneOf"):
        variants = [add(part) for part in root.pop(key, None) or [] if isinstance(part, dict)]
        if variants:
            required += [name for name in variants[0] if all(name in v for v in variants[1:])]
    for key in ("not", "enum", "const"):
        root.pop(key, None)
    root["type"] = "object"
    root["properties"] = properties
    root.pop("required", None)
    if required:
        root["required"] = list(dict.fromkeys(required))
    return root


# --- the providers


def anthropic_input_schema(schema: Schema) -> Schema:
    """Anthropic `input_schema`: JSON Schema, an object at the top (see the module doc)."""
    return object_root(inline_refs(schema))


def openai_parameters(schema: Schema) -> Schema:
    """OpenAI Chat Completions `parameters` (non-strict): an object at the top, every object
    with `properties`, every array with `items` (see the module doc)."""

    def fix(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = _map_subschemas(node, fix)
        if _is(node, "object") and not isinstance(node.get("properties"), dict):
            node["properties"] = {}
        if _is(node, "array") and "items" not in node:
            prefix = [part for part in node.get("prefixItems") or [] if isinstance(part, dict)]
            if prefix and all(part == prefix[0] for part in prefix):
                node["items"] = prefix[0]
            else:
                node["items"] = {"anyOf": prefix} if prefix else {}
        return node

    fixed: Schema = fix(object_root(inline_refs(schema)))
    return fixed


def openrouter_parameters(schema: Schema) -> Schema:
    """OpenRouter `parameters`: OpenAI's form, which OpenRouter documents as its input."""
    return openai_parameters(schema)


def gemini_parameters(schema: Schema) -> Schema | None:
    """Gemini `parameters_json_schema`: the documented JSON Schema subset, or None for a
    tool without parameters (see the module doc)."""
    reduced: Schema = _gemini_subset(object_root(inline_refs(schema)))
    return reduced if reduced.get("properties") else None


# --- structured output (a reply's JSON, not a tool's arguments): any type at the top


def anthropic_output_schema(schema: Schema) -> Schema:
    """Anthropic `output_config.format.schema`: self-contained, and every object without
    an `additionalProperties` rule closed (`false`), as structured outputs require. The
    answer is still validated against the caller's own schema."""

    def close(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = _map_subschemas(node, close)
        if _is(node, "object") and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node

    closed: Schema = close(inline_refs(schema))
    return closed


def gemini_response_schema(schema: Schema) -> Schema:
    """Gemini `response_json_schema`: the documented subset, whatever type is at the top."""
    reduced: Schema = _gemini_subset(inline_refs(schema))
    return reduced


def _gemini_subset(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if isinstance(node.get("items"), list):  # draft-07 tuple form
        node["prefixItems"] = node.pop("items")
    for part in node.pop("allOf", None) or []:
        if isinstance(part, dict):
            _merge_into(node, part)
    alternatives = [*(node.pop("anyOf", None) or []), *(node.pop("oneOf", None) or [])]
    if alternatives:
        node["anyOf"] = alternatives
    if "const" in node and "enum" not in node:
        node["enum"] = [node["const"]]
    if "default" in node:
        default = json.dumps(node["default"], ensure_ascii=False, default=str)
        text = str(node.get("description") or "").rstrip()
        node["description"] = f"{text} (default: {default})" if text else f"Default: {default}."
    node = {key: value for key, value in node.items() if key in _GEMINI_KEYWORDS}
    node = _map_subschemas(node, _gemini_subset)
    if isinstance(node.get("required"), list):
        declared = node.get("properties") or {}
        kept = [name for name in node["required"] if name in declared]
        if kept:
            node["required"] = kept
        else:
            del node["required"]
    return node


def _merge_into(node: Schema, part: Schema) -> None:
    """Fold one `allOf` part into `node`: properties and required names add up, any other
    keyword is taken when `node` does not have it."""
    for key, value in part.items():
        if key == "properties" and isinstance(value, dict):
            node["properties"] = {**value, **(node.get("properties") or {})}
        elif key == "required" and isinstance(value, list):
            node["required"] = list(dict.fromkeys([*(node.get("required") or []), *value]))
        else:
            node.setdefault(key, value)
