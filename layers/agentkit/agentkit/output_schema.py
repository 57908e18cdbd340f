"""`output_schema`: a JSON Schema a task's final answer must validate against.

Checked at submit (`check_output_schema`: JSON at most MAX_OUTPUT_SCHEMA_BYTES, a valid
draft-07 schema by the draft-07 meta-schema, its `$ref`s within itself (the validator
never fetches a URI: submit must not be a way to make requests), and one the validator
can compile), and at
the end of a task (`check_answer`): the final answer's text is parsed as JSON (a Markdown
code fence around it is tolerated) and validated. Providers with native structured output
are asked for it too (agentkit.llm: `ResponseFormat`), but their answer is validated all
the same: not every provider guarantees it, and the scripted model never does.

The validator is `fastjsonschema` (shipped in the layer with Powertools' validation
extra, and already what checks MCP tools' arguments); imported here only when a schema is
checked, so a task without one never loads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

MAX_OUTPUT_SCHEMA_BYTES = 16_000
#: The validated answer is kept on the task record: beyond this it would crowd the item.
MAX_ANSWER_JSON_BYTES = 100_000
_MAX_DEPTH = 20

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


class AnswerShapeError(ValueError):
    """The final answer is not JSON or does not match the schema; the message says where."""


def check_output_schema(schema: Any) -> None:
    """ValueError naming what is wrong when `schema` cannot be an output schema."""
    if not isinstance(schema, dict):
        raise ValueError(f"must be a JSON Schema object, got a JSON {type(schema).__name__}")
    size = len(json.dumps(schema, ensure_ascii=False).encode())
    if size > MAX_OUTPUT_SCHEMA_BYTES:
        raise ValueError(f"at most {MAX_OUTPUT_SCHEMA_BYTES} bytes of JSON, got {size}")
    if _depth(schema) > _MAX_DEPTH:
        raise ValueError(f"nested more than {_MAX_DEPTH} levels deep")
    remote = _remote_ref(schema)
    if remote is not None:
        raise ValueError(
            f"$ref {remote!r}: only references within the schema ('#...') are allowed"
        )
    import fastjsonschema

    try:
        _meta_validator()(schema)
    except fastjsonschema.JsonSchemaValueException as error:
        raise ValueError(
            f"not a valid JSON Schema (draft-07): {_where(error, 'schema', schema)}"
        ) from None
    try:
        _compile(json.dumps(schema, sort_keys=True))
    except Exception as error:  # JsonSchemaDefinitionException and what a schema breaks
        raise ValueError(f"not a usable JSON Schema: {error}") from None


def check_answer(schema: dict[str, Any], text: str | None) -> Any:
    """The answer's JSON value when it validates; AnswerShapeError saying why not."""
    import fastjsonschema

    body = (text or "").strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as error:
        raise AnswerShapeError(f"the answer is not JSON ({error})") from None
    try:
        _compile(json.dumps(schema, sort_keys=True))(value)
    except fastjsonschema.JsonSchemaValueException as error:
        raise AnswerShapeError(_where(error, "answer", value)) from None
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_ANSWER_JSON_BYTES or _depth(value) > _MAX_DEPTH:
        raise AnswerShapeError(
            f"the answer is over {MAX_ANSWER_JSON_BYTES} bytes of JSON or {_MAX_DEPTH} levels "
            "deep"
        )
    return value


def _where(error: Any, root: str, value: Any = None) -> str:
    """`field 'answer.city': must be string` from fastjsonschema's `data.city must be string`;
    a missing property is named as the field: `field 'answer.population': required`."""
    path = [str(part) for part in getattr(error, "path", None) or [] if part != "data"]
    definition = getattr(error, "rule_definition", None)
    if getattr(error, "rule", None) == "required" and isinstance(definition, list):
        target = value
        for part in (getattr(error, "path", None) or [])[1:]:
            if isinstance(target, list) and isinstance(part, str) and part.isdigit():
                part = int(part)
            try:
                target = target[part]
            except (KeyError, IndexError, TypeError):
                target = None
                break
        if isinstance(target, dict):
            missing = [str(key) for key in definition if key not in target]
            if missing:
                return "; ".join(f"field '{'.'.join([root, *path, key])}': required"
                                 for key in missing)
    message = str(getattr(error, "message", error))
    name = str(getattr(error, "name", ""))
    if name and message.startswith(name + " "):
        message = message[len(name) + 1 :]
    return f"field '{'.'.join([root, *path])}': {message}"


def _remote_ref(node: Any) -> str | None:
    """The first `$ref` that points outside the schema: the validator would fetch it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return ref
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = _remote_ref(item)
            if found is not None:
                return found
    return None


class _NoRemote(dict[str, Callable[[str], Any]]):
    """fastjsonschema's `handlers`: a URI of any scheme is refused, never fetched (it would
    otherwise open it with urllib)."""

    def __contains__(self, scheme: object) -> bool:
        return True

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        def refuse(uri: str) -> Any:
            raise ValueError(f"$ref {uri!r} is not fetched: only references within the schema")

        return refuse


def _depth(value: Any, level: int = 1) -> int:
    if level > _MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level)
    return level


@cache
def _meta_validator() -> Callable[[Any], Any]:
    import fastjsonschema

    meta = json.loads((Path(__file__).parent / "json_schema_draft7.json").read_text())
    validator: Callable[[Any], Any] = fastjsonschema.compile(
        meta, handlers=_NoRemote(), use_default=False
    )
    return validator


@cache
def _compile(schema_json: str) -> Callable[[Any], Any]:
    import fastjsonschema

    # use_default=False: validation never fills defaults into the answer it checks.
    validator: Callable[[Any], Any] = fastjsonschema.compile(
        json.loads(schema_json), handlers=_NoRemote(), use_default=False
    )
    return validator
