"""The one codec between Python values and DynamoDB items, and DynamoDB's size of an item.

Every repository in this package writes and reads items through these functions, so a float
is always a Decimal on the way in and a number never comes back as a Decimal.

The conversion to and from DynamoDB's attribute values is written here (the rules of
boto3's `TypeSerializer` / `TypeDeserializer`: numbers checked against DynamoDB's 38-digit
context, sets by element type) rather than imported: `boto3.dynamodb.types` imports the
whole `boto3` package (s3transfer and its thread pools included), which no function needs
otherwise; it is a tenth of a cold start. One difference: binary comes back as `bytes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

from botocore.exceptions import ClientError

#: An item (or key) in DynamoDB's wire shape: attribute name → {"S": ...} / {"N": ...} / ...
Item = dict[str, Any]

#: DynamoDB refuses an item larger than 400 KB; it counts 1 KB as 1,024 bytes.
ITEM_LIMIT_BYTES = 400 * 1024

#: The store keeps every item at most this large, as `item_size` counts; what would make an
#: item larger goes to S3 (the claim-check bucket). Half of DynamoDB's limit, on purpose:
#: the task record copies the last assistant message as its `answer`, next to a goal of up
#: to 64 KB (16,000 characters of up to 4 bytes), so a message at this size still leaves the
#: record room; an approval gains a decision, a reason and a new task token after it is
#: written; and the conversation, which every turn reads again, stays cheap to read.
INLINE_ITEM_BYTES = ITEM_LIMIT_BYTES // 2

#: DynamoDB's numbers: 38 significant digits, exponents -128..126; anything that would be
#: rounded or clamped is refused rather than stored altered.
_NUMBERS = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


def to_attr(value: Any) -> dict[str, Any]:
    return _serialize(_decimalize(value))


def to_item(values: Mapping[str, Any]) -> Item:
    """Python values → an item; None values are left out (DynamoDB has no 'unset')."""
    return {key: to_attr(value) for key, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserialize(value)) for key, value in item.items()}


def _is_number(value: Any) -> bool:
    if isinstance(value, float):  # _decimalize turns floats into Decimals first
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, int | Decimal)  # a lone bool is BOOL: checked before this


def _number(value: int | Decimal) -> str:
    text = str(_NUMBERS.create_decimal(value))
    if text in {"Infinity", "-Infinity", "NaN", "sNaN"}:
        raise TypeError("Infinity and NaN not supported")
    return text


def _serialize(value: Any) -> dict[str, Any]:
    """A Python value → a DynamoDB attribute value (boto3's TypeSerializer rules)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": value}
    if isinstance(value, AbstractSet):
        if all(_is_number(v) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, str) for v in value):
            return {"SS": list(value)}
        if all(isinstance(v, bytes | bytearray) for v in value):
            return {"BS": list(value)}
    if isinstance(value, Mapping):
        return {"M": {key: _serialize(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_serialize(item) for item in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def _deserialize(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value → a Python value (numbers as Decimal, sets as sets)."""
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    [(kind, inner)] = value.items()
    if kind == "NULL":
        return None
    if kind in {"S", "BOOL"}:
        return inner
    if kind == "N":
        return _NUMBERS.create_decimal(inner)
    if kind == "B":
        return bytes(inner)
    if kind == "SS":
        return set(inner)
    if kind == "NS":
        return {_NUMBERS.create_decimal(v) for v in inner}
    if kind == "BS":
        return {bytes(v) for v in inner}
    if kind == "L":
        return [_deserialize(item) for item in inner]
    if kind == "M":
        return {key: _deserialize(item) for key, item in inner.items()}
    raise TypeError(f"Dynamodb type {kind} is not supported")


def _decimalize(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimalize(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def is_condition_failure(error: ClientError) -> bool:
    """A conditional write (or a transaction holding one) whose condition did not hold."""
    code = error.response.get("Error", {}).get("Code", "")
    return code in {"ConditionalCheckFailedException", "TransactionCanceledException"}


# --- DynamoDB's size of an item (its "Item sizes and formats" rules), never less than it


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def _number_size(text: str) -> int:
    """About 1 byte per two significant digits plus 1 (DynamoDB's own wording); counted
    here as one more byte than that, at most 21 (38 digits), so never below the real size."""
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return min(21, (len(digits) + 1) // 2 + 2)


def attribute_size(value: Mapping[str, Any]) -> int:
    """Size of one attribute value (without its name), in bytes."""
    [(kind, inner)] = value.items()
    if kind == "S":
        return _utf8(inner)
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind == "SS":
        return sum(_utf8(v) for v in inner)
    if kind == "NS":
        return sum(_number_size(v) for v in inner)
    if kind == "BS":
        return sum(len(v) for v in inner)
    # A list or map: 3 bytes, plus 1 byte per element besides the elements (and, in a map,
    # their names).
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + attribute_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """What DynamoDB counts against its 400 KB item limit: every attribute's name (UTF-8)
    plus its value as `attribute_size` counts it."""
    return sum(_utf8(name) + attribute_size(value) for name, value in item.items())
