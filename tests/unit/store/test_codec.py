"""The codec: values round-trip, and item_size counts as DynamoDB's item-size rules do
(attribute names and strings in UTF-8 bytes, numbers by significant digits, 1 byte for a
boolean or null, 3 bytes per list or map plus 1 per element), never below them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentkit.store.codec import attribute_size, from_item, item_size, to_attr, to_item


def test_values_round_trip_without_decimals() -> None:
    values = {"s": "é", "i": 3, "f": 0.25, "b": True, "l": [1, 2.5, "x"], "m": {"k": 1.0}}
    back = from_item(to_item(values))
    assert back == {**values, "m": {"k": 1}}
    assert not any(isinstance(v, Decimal) for v in back.values())


def test_none_is_left_out() -> None:
    assert to_item({"a": None, "b": 1}) == {"b": {"N": "1"}}


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("", 0),
        ("abc", 3),
        ("é", 2),
        ("€", 3),
        ("😀", 4),
        ('"\n', 2),  # a string attribute is stored as it is: nothing is escaped
        (True, 1),
        (b"\x00\x01", 2),
        ([], 3),
        (["ab", 1], 3 + (1 + 2) + (1 + 3)),
        ({}, 3),
        ({"ké": "v"}, 3 + 1 + 3 + 1),
        ({"a": {"b": []}}, 3 + 1 + 1 + (3 + 1 + 1 + 3)),
    ],
)
def test_attribute_sizes(value: object, size: int) -> None:
    assert attribute_size(to_attr(value)) == size


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 2), ("7", 3), ("12", 3), ("123", 4), ("1500", 3), ("0.25", 3), ("-1e5", 3),
     ("1" * 38, 21), ("12345678901234567890123456789012345678", 21)],
)
def test_numbers_count_their_significant_digits_and_never_less(number: str, size: int) -> None:
    assert attribute_size({"N": number}) == size


def test_null_and_sets() -> None:
    assert attribute_size({"NULL": True}) == 1
    assert attribute_size({"SS": ["a", "bé"]}) == 4
    assert attribute_size({"NS": ["1", "22"]}) == 3 + 3
    assert attribute_size({"BS": [b"ab"]}) == 2


def test_an_item_counts_its_attribute_names_in_utf8() -> None:
    assert item_size({"pk": {"S": "x"}, "ñ": {"BOOL": True}}) == (2 + 1) + (2 + 1)


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type 'Q'"):
        attribute_size({"Q": "x"})
