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


# --- the conversion rules (boto3's TypeSerializer / TypeDeserializer, written here so the
# functions need not import boto3)


@pytest.mark.parametrize(
    ("value", "attr"),
    [
        (None, {"NULL": True}),
        (True, {"BOOL": True}),
        (0, {"N": "0"}),
        (-12, {"N": "-12"}),
        (2.5, {"N": "2.5"}),
        (0.1, {"N": "0.1"}),  # from repr: no binary noise
        (Decimal("1E+5"), {"N": "1E+5"}),
        ("", {"S": ""}),
        (b"\x00\x01", {"B": b"\x00\x01"}),
        (frozenset({"a"}), {"SS": ["a"]}),
        ({7}, {"NS": ["7"]}),
        ({b"x"}, {"BS": [b"x"]}),
        ((1, "a"), {"L": [{"N": "1"}, {"S": "a"}]}),
        ({"k": [None, {"n": False}]},
         {"M": {"k": {"L": [{"NULL": True}, {"M": {"n": {"BOOL": False}}}]}}}),
    ],
)
def test_values_become_dynamodb_attributes(value: object, attr: dict[str, object]) -> None:
    assert to_attr(value) == attr


def test_attributes_come_back_as_plain_values() -> None:
    item = {"n": {"N": "3"}, "f": {"N": "0.5"}, "b": {"B": b"\x01"}, "ss": {"SS": ["x"]},
            "ns": {"NS": ["1", "2"]}, "bs": {"BS": [b"y"]}, "z": {"NULL": True},
            "l": {"L": [{"N": "1E+2"}, {"BOOL": True}]}}
    assert from_item(item) == {"n": 3, "f": 0.5, "b": b"\x01", "ss": {"x"},
                               "ns": {Decimal(1), Decimal(2)}, "bs": {b"y"}, "z": None,
                               "l": [100, True]}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (10**38 + 1, "Inexact"),  # 39 significant digits: DynamoDB keeps 38
        (Decimal("NaN"), "Infinity and NaN not supported"),
        (float("inf"), "Infinity and NaN not supported"),
        ({1, "a"}, "Unsupported type"),
        (object(), "Unsupported type"),
    ],
)
def test_values_dynamodb_cannot_hold_are_refused(value: object, problem: str) -> None:
    with pytest.raises(Exception, match=problem):
        to_attr(value)


def test_an_unknown_attribute_type_is_refused_on_read() -> None:
    with pytest.raises(TypeError, match="Q is not supported"):
        from_item({"x": {"Q": "1"}})
