"""The one codec between Python values and DynamoDB items, and DynamoDB's size of an item.

Every repository in this package writes and reads items through these functions, so a float
is always a Decimal on the way in and a number never comes back as a Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
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

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attr(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], _serializer.serialize(_decimalize(value)))


def to_item(values: Mapping[str, Any]) -> Item:
    """Python values → an item; None values are left out (DynamoDB has no 'unset')."""
    return {key: to_attr(value) for key, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


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
