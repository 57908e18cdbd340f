"""agentkit.output_schema: what may be an output schema, and how an answer is checked."""

from __future__ import annotations

import re

import pytest

from agentkit.output_schema import (
    MAX_OUTPUT_SCHEMA_BYTES,
    AnswerShapeError,
    check_answer,
    check_output_schema,
)

ITEMS = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"},
                                             "qty": {"type": "integer", "minimum": 1}},
            "required": ["name", "qty"]}},
        "note": {"type": "string", "default": "none"},
    },
    "required": ["items"],
}


def test_a_valid_answer_is_its_json_value():
    text = '{"items": [{"name": "apple", "qty": 2}]}'
    assert check_answer(ITEMS, text) == {"items": [{"name": "apple", "qty": 2}]}
    # No default is filled in: the value is what the model answered.
    assert "note" not in check_answer(ITEMS, text)
    assert check_answer({"type": "array"}, "```json\n[1, 2]\n```") == [1, 2]
    assert check_answer({"type": "string"}, ' "x" ') == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apples", "the answer is not JSON"),
        ('{"items": [{"name": "apple", "qty": 0}]}',
         "field 'answer.items.0.qty': must be bigger than or equal to 1"),
        ('{"items": [{"qty": 1}]}', "field 'answer.items.0.name': required"),
        ("{}", "field 'answer.items': required"),
        (None, "the answer is not JSON"),
    ],
)
def test_an_answer_that_does_not_validate_says_where(text, message):
    with pytest.raises(AnswerShapeError) as caught:
        check_answer(ITEMS, text)
    assert str(caught.value).startswith(message)


def test_schemas_are_checked_as_schemas():
    check_output_schema(ITEMS)
    check_output_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "array"})
    with pytest.raises(ValueError, match=re.escape("field 'schema.properties.items.type'")):
        check_output_schema({"properties": {"items": {"type": 7}}})
    with pytest.raises(ValueError, match="must be a JSON Schema object"):
        check_output_schema(["type"])
    with pytest.raises(ValueError, match=f"at most {MAX_OUTPUT_SCHEMA_BYTES} bytes"):
        check_output_schema({"enum": ["x" * 100] * 200})
    deep: dict = {"type": "object"}
    for _ in range(25):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(ValueError, match="nested more than 20 levels"):
        check_output_schema(deep)


@pytest.mark.parametrize("ref", ["http://169.254.169.254/latest/meta-data", "file:///etc/passwd",
                                 "other.json#/a"])
def test_a_reference_outside_the_schema_is_refused_and_never_fetched(ref, monkeypatch):
    import urllib.request

    def no_fetch(*args, **kwargs):
        raise AssertionError("a $ref was fetched")

    monkeypatch.setattr(urllib.request, "urlopen", no_fetch)
    with pytest.raises(ValueError, match="only references within the schema"):
        check_output_schema({"type": "object", "properties": {"a": {"$ref": ref}}})
    # A local reference is fine.
    check_output_schema({"definitions": {"a": {"type": "string"}},
                         "properties": {"a": {"$ref": "#/definitions/a"}}})
    assert check_answer({"definitions": {"a": {"type": "string"}},
                         "properties": {"a": {"$ref": "#/definitions/a"}}}, '{"a": "x"}') == {
        "a": "x"}


def test_the_validator_itself_fetches_nothing(monkeypatch):
    import urllib.request

    from agentkit.output_schema import _compile

    def no_fetch(*args, **kwargs):
        raise AssertionError("a $ref was fetched")

    monkeypatch.setattr(urllib.request, "urlopen", no_fetch)
    with pytest.raises(ValueError, match="is not fetched"):
        _compile('{"$ref": "http://example.test/schema.json"}')
