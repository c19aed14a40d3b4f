"""DynamoDB attribute values and items in their wire-JSON form.

An attribute value is the wire dict with exactly one type key: {"S": str}, {"N": canonical str},
{"B": base64 str}, {"BOOL": bool}, {"NULL": True}, {"M": {name: AV}}, {"L": [AV]}, {"SS": [str]},
{"NS": [canonical str]}, {"BS": [base64 str]}. An item is dict[str, AV].

`parse_value` / `parse_item` are the only doors in: what they return is canonical (numbers in
`dynalab.numbers` form, base64 in its one canonical spelling), so the rest of the code may compare
N and B values as strings and never converts on the hot path.

Errors follow DynamoDB: a JSON value of the wrong shape is a SerializationException (DynamoDB
fails while deserializing, before any validation, so such an error wins over a validation error
anywhere else in the value); everything else is a ValidationException with DynamoDB's wording.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator

from dynalab import numbers
from dynalab.errors import SerializationException, ValidationException

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

TYPES = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
KEY_TYPES = ("S", "N", "B")
MAX_ITEM_SIZE_BYTES = 400 * 1024
MAX_DEPTH = 32
MAX_HASH_KEY_BYTES = 2048
MAX_RANGE_KEY_BYTES = 1024

__all__ = [
    "AttributeValue", "Item", "TYPES", "KEY_TYPES", "MAX_ITEM_SIZE_BYTES", "MAX_DEPTH",
    "MAX_HASH_KEY_BYTES", "MAX_RANGE_KEY_BYTES",
    "parse_value", "parse_item", "parse_attribute_map", "value_size", "item_size", "type_of",
    "b_bytes", "equal", "compare", "KeySchema", "key_of", "validate_key",
    "EMPTY_VALUE", "MANY_TYPES", "NULL_NOT_TRUE", "NESTING", "ITEM_TOO_BIG", "KEY_MISMATCH",
]

_INVALID = "One or more parameter values were invalid: "
_NOT_VALID = "One or more parameter values are not valid. "
EMPTY_VALUE = "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
MANY_TYPES = ("Supplied AttributeValue has more than one datatypes set, must contain exactly one "
              "of the supported datatypes")
NULL_NOT_TRUE = _INVALID + "Null attribute value types must have the value of true"
NESTING = ("Nesting Levels have exceeded supported limits: Attributes in the item have nested "
           "levels beyond supported limit")
ITEM_TOO_BIG = "Item size has exceeded the maximum allowed size"
KEY_MISMATCH = "The provided key element does not match the schema"
_EMPTY_SET = {
    "SS": _INVALID + "An string set  may not be empty",  # sic: DynamoDB's two spaces
    "NS": _INVALID + "An number set  may not be empty",
    "BS": _INVALID + "Binary sets should not be empty",
}
# Not verified against DynamoDB (a JSON null inside a set); worded in its style.
_NULL_IN_SET = {
    "SS": _INVALID + "String sets may not contain null values",
    "BS": _INVALID + "Binary sets may not contain null values",
}

# SerializationException messages, by the Java type DynamoDB's deserializer was building.
_START_OF_MAP = "Start of structure or map found where not expected"
_AV_CLASS = "com.amazonaws.dynamodb.v20120810.AttributeValue"
_STRING_ERRORS = {
    "true": "TRUE_VALUE cannot be converted to String",
    "false": "FALSE_VALUE cannot be converted to String",
    "int": "NUMBER_VALUE cannot be converted to String",
    "float": "DECIMAL_VALUE cannot be converted to String",
    "list": "Unrecognized collection type class java.lang.String",
    "dict": _START_OF_MAP,
}
_BOOL_ERRORS = {
    "str": "Unexpected token received from parser",
    "int": "NUMBER_VALUE cannot be converted to Boolean",
    "float": "DECIMAL_VALUE cannot be converted to Boolean",
    "list": "Unrecognized collection type class java.lang.Boolean",
    "dict": _START_OF_MAP,
}
_NOT_BASE64 = "only base-64-encoded strings are convertible to bytes"
_BLOB_ERRORS = {
    "true": _NOT_BASE64, "false": _NOT_BASE64, "int": _NOT_BASE64, "float": _NOT_BASE64,
    "list": "Unrecognized collection type class java.nio.ByteBuffer",
    "dict": _START_OF_MAP,
}
_FIELD = "Unexpected field type"
_LIST_ERRORS = {"str": _FIELD, "true": _FIELD, "false": _FIELD, "int": _FIELD, "float": _FIELD,
                "dict": _START_OF_MAP}
_MAP_ERRORS = {"str": _FIELD, "true": _FIELD, "false": _FIELD, "int": _FIELD, "float": _FIELD,
               "list": f"Unrecognized collection type java.util.Map<java.lang.String, {_AV_CLASS}>"}
_PAYLOAD = "Unexpected value type in payload"
_VALUE_ERRORS = {"str": _PAYLOAD, "true": _PAYLOAD, "false": _PAYLOAD, "int": _PAYLOAD,
                 "float": _PAYLOAD, "list": f"Unrecognized collection type class {_AV_CLASS}"}
_SCALAR_FIELD_ERRORS = {"S": _STRING_ERRORS, "N": _STRING_ERRORS, "B": _BLOB_ERRORS,
                        "BOOL": _BOOL_ERRORS, "NULL": _BOOL_ERRORS}
_SET_MEMBER_ERRORS = {"SS": _STRING_ERRORS, "NS": _STRING_ERRORS, "BS": _BLOB_ERRORS}

_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_LAST_NON_PAD = "Invalid last non-pad Base64 character dectected"  # sic: DynamoDB's spelling


# ---------------------------------------------------------------------------------------- parsing

def parse_value(raw: object) -> AttributeValue:
    """Validate and canonicalize one wire attribute value (N canonical, sets checked, depth <= 32).

    The value counts as nesting level 1 (an attribute of an item)."""
    try:
        return _parse_av(raw, 1)[0]
    except ValidationException:
        _raise_shape_error(raw, _VALUE_ERRORS)
        raise


def parse_item(raw: object) -> Item:
    """Validate an item map: every value parsed, item size <= 400 KB."""
    try:
        item, size = _parse_map(raw, 1)
        if size > MAX_ITEM_SIZE_BYTES:
            raise ValidationException(ITEM_TOO_BIG)
        return item
    except ValidationException:
        _raise_shape_error(raw, _MAP_ERRORS)
        raise


def parse_attribute_map(raw: object) -> Item:
    """Validate a map of attribute values that is not a stored item (a `Key`, an
    `ExclusiveStartKey`, `ExpressionAttributeValues`): like `parse_item` without the size limit."""
    try:
        return _parse_map(raw, 1)[0]
    except ValidationException:
        _raise_shape_error(raw, _MAP_ERRORS)
        raise


def _kind(raw: object) -> str:
    """The JSON kind of a decoded value, in the terms of the error tables above."""
    if raw is True:
        return "true"
    if raw is False:
        return "false"
    if isinstance(raw, str):
        return "str"
    if isinstance(raw, int):
        return "int"
    if isinstance(raw, (float, Decimal)):
        return "float"
    if isinstance(raw, (list, tuple)):
        return "list"
    if isinstance(raw, dict):
        return "dict"
    return "other"


def _shape_error(raw: object, errors: dict[str, str]) -> SerializationException:
    return SerializationException(errors.get(_kind(raw), _PAYLOAD))


def _parse_map(raw: object, depth: int) -> tuple[Item, int]:
    """Parse {name: AV}; the size counts each name plus its value, as an item's size does."""
    if not isinstance(raw, dict):
        raise _shape_error(raw, _MAP_ERRORS)
    out: Item = {}
    size = 0
    for name, child in raw.items():
        if not isinstance(name, str):  # cannot come from JSON; guards direct callers
            raise SerializationException(_PAYLOAD)
        av, child_size = _parse_av(child, depth)
        out[name] = av
        size += _utf8_len(name) + child_size
    return out, size


def _parse_av(raw: object, depth: int) -> tuple[AttributeValue, int]:
    """Parse one AttributeValue at nesting level `depth`; returns it with its size in bytes."""
    if raw is None:
        raise ValidationException(EMPTY_VALUE)
    if not isinstance(raw, dict):
        raise _shape_error(raw, _VALUE_ERRORS)
    if depth > MAX_DEPTH:
        raise ValidationException(NESTING)
    found: list[tuple[AttributeValue, int]] = []
    # Unknown members and JSON nulls are ignored, as DynamoDB's deserializer does; each member
    # is validated in order before the count is checked ({"S": "a", "N": "b"} is a number error).
    for type_name, field in raw.items():
        if field is not None and type_name in _FIELD_PARSERS:
            found.append(_FIELD_PARSERS[type_name](field, depth))
    if not found:
        raise ValidationException(EMPTY_VALUE)
    if len(found) > 1:
        raise ValidationException(MANY_TYPES)
    return found[0]


def _parse_s(field: object, depth: int) -> tuple[AttributeValue, int]:
    if not isinstance(field, str):
        raise _shape_error(field, _STRING_ERRORS)
    return {"S": field}, _utf8_len(field)


def _parse_n(field: object, depth: int) -> tuple[AttributeValue, int]:
    if not isinstance(field, str):
        raise _shape_error(field, _STRING_ERRORS)
    text = numbers.canonical(field)
    return {"N": text}, _number_size(text)


def _parse_b(field: object, depth: int) -> tuple[AttributeValue, int]:
    return {"B": field}, _check_base64(field)


def _parse_bool(field: object, depth: int) -> tuple[AttributeValue, int]:
    if not isinstance(field, bool):
        raise _shape_error(field, _BOOL_ERRORS)
    return {"BOOL": field}, 1


def _parse_null(field: object, depth: int) -> tuple[AttributeValue, int]:
    if not isinstance(field, bool):
        raise _shape_error(field, _BOOL_ERRORS)
    if not field:
        raise ValidationException(NULL_NOT_TRUE)
    return {"NULL": True}, 1


def _parse_m(field: object, depth: int) -> tuple[AttributeValue, int]:
    members, size = _parse_map(field, depth + 1)
    # A map costs 3 bytes plus 1 byte per element on top of its elements (names included).
    return {"M": members}, 3 + len(members) + size


def _parse_l(field: object, depth: int) -> tuple[AttributeValue, int]:
    if not isinstance(field, list):
        raise _shape_error(field, _LIST_ERRORS)
    elements: list[AttributeValue] = []
    size = 3
    for child in field:
        av, child_size = _parse_av(child, depth + 1)
        elements.append(av)
        size += 1 + child_size
    return {"L": elements}, size


def _set_members(field: object, type_name: str) -> list[Any]:
    if not isinstance(field, list):
        raise _shape_error(field, _LIST_ERRORS)
    for member in field:
        if member is not None and not isinstance(member, str):
            raise _shape_error(member, _SET_MEMBER_ERRORS[type_name])
    if not field:
        raise ValidationException(_EMPTY_SET[type_name])
    return field


def _parse_ss(field: object, depth: int) -> tuple[AttributeValue, int]:
    members = _set_members(field, "SS")
    if None in members:
        raise ValidationException(_NULL_IN_SET["SS"])
    if len(set(members)) != len(members):
        raise ValidationException(
            f"{_INVALID}Input collection [{', '.join(members)}] contains duplicates.")
    return {"SS": list(members)}, sum(_utf8_len(member) for member in members)


def _parse_ns(field: object, depth: int) -> tuple[AttributeValue, int]:
    members = _set_members(field, "NS")
    canon = [numbers.canonical(member if member is not None else "") for member in members]
    # Canonical text is equal exactly when the numbers are ("1" and "1.0" are duplicates).
    if len(set(canon)) != len(canon):
        raise ValidationException("Input collection contains duplicates")
    return {"NS": canon}, sum(_number_size(member) for member in canon)


def _parse_bs(field: object, depth: int) -> tuple[AttributeValue, int]:
    members = _set_members(field, "BS")
    if None in members:
        raise ValidationException(_NULL_IN_SET["BS"])
    size = sum(_check_base64(member) for member in members)
    # Canonical base64 (checked above) is equal exactly when the bytes are.
    if len(set(members)) != len(members):
        raise ValidationException(
            f"{_INVALID}Input collection [{', '.join(members)}]of type BS contains duplicates.")
    return {"BS": list(members)}, size


_FIELD_PARSERS = {
    "S": _parse_s, "N": _parse_n, "B": _parse_b, "BOOL": _parse_bool, "NULL": _parse_null,
    "M": _parse_m, "L": _parse_l, "SS": _parse_ss, "NS": _parse_ns, "BS": _parse_bs,
}


def _check_base64(field: object) -> int:
    """Check that `field` is canonical base64 as DynamoDB's decoder demands; return the decoded
    length in bytes (without decoding)."""
    if not isinstance(field, str):
        raise _shape_error(field, _BLOB_ERRORS)
    if len(field) % 4:
        raise SerializationException(
            f"Base64 encoded length is expected a multiple of 4 bytes but found: {len(field)}")
    if _BASE64_RE.fullmatch(field) is None:
        bad = next((c for c in field if c not in _BASE64_ALPHABET and c != "="), None)
        if bad is not None:
            raise SerializationException(f"Invalid Base64 character: '{bad}'")
        raise SerializationException(_LAST_NON_PAD)
    padding = len(field) - len(field.rstrip("="))
    if padding and _BASE64_ALPHABET.index(field[-padding - 1]) & (0b1111 if padding == 2 else 0b11):
        # Bits that the padding says are unused are set: not the canonical spelling.
        raise SerializationException(_LAST_NON_PAD)
    return len(field) // 4 * 3 - padding


def _utf8_len(text: str) -> int:
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate (JSON "\ud800") has no UTF-8 form. Wording is ours, not DynamoDB's.
        raise SerializationException("Invalid UTF-8: unpaired surrogate in string") from None


def _raise_shape_error(raw: object, errors: dict[str, str]) -> None:
    """Raise the SerializationException DynamoDB would give for `raw`, if any part of it has the
    wrong JSON shape. Iterative, so hostile nesting cannot exhaust the stack."""
    stack: list[tuple[object, dict[str, str]]] = [(raw, errors)]
    while stack:
        value, table = stack.pop()
        if value is None:
            continue
        if table is _MAP_ERRORS:
            if not isinstance(value, dict):
                raise _shape_error(value, table)
            stack.extend((child, _VALUE_ERRORS) for child in reversed(list(value.values())))
            continue
        if not isinstance(value, dict):
            raise _shape_error(value, table)
        stack.extend(reversed(list(_av_fields(value))))


def _av_fields(value: dict[str, Any]) -> Iterator[tuple[object, dict[str, str]]]:
    """The (part, expected-shape table) pairs of one AttributeValue dict, for the shape walk."""
    for type_name, field in value.items():
        if field is None or type_name not in _FIELD_PARSERS:
            continue
        if type_name in _SCALAR_FIELD_ERRORS:
            _check_scalar_shape(type_name, field)
        elif type_name == "M":
            yield field, _MAP_ERRORS
        elif not isinstance(field, list):
            raise _shape_error(field, _LIST_ERRORS)
        elif type_name == "L":
            yield from ((child, _VALUE_ERRORS) for child in field)
        else:
            for member in field:
                if member is not None:
                    _check_scalar_shape(type_name, member)


def _check_scalar_shape(type_name: str, field: object) -> None:
    if type_name in ("B", "BS"):
        _check_base64(field)
    elif type_name in ("BOOL", "NULL"):
        if not isinstance(field, bool):
            raise _shape_error(field, _BOOL_ERRORS)
    elif not isinstance(field, str):
        raise _shape_error(field, _STRING_ERRORS)
    else:
        _utf8_len(field)


# ------------------------------------------------------------------------------------------ sizes

def value_size(av: AttributeValue) -> int:
    """Bytes of one value as AWS documents for item size: S by UTF-8 bytes, N ~1 byte per two
    significant digits plus 1, B raw bytes, BOOL/NULL 1, sets the sum of their members, M and L
    3 bytes plus 1 per element plus the elements (map element names included)."""
    type_name = type_of(av)
    field = av[type_name]
    if type_name == "S":
        return _utf8_len(field)
    if type_name == "N":
        return _number_size(field)
    if type_name == "B":
        return _b64_len(field)
    if type_name in ("BOOL", "NULL"):
        return 1
    if type_name == "SS":
        return sum(_utf8_len(member) for member in field)
    if type_name == "NS":
        return sum(_number_size(member) for member in field)
    if type_name == "BS":
        return sum(_b64_len(member) for member in field)
    if type_name == "L":
        return 3 + sum(1 + value_size(child) for child in field)
    return 3 + len(field) + item_size(field)


def item_size(item: Item) -> int:
    """Bytes of an item as AWS counts them: attribute-name lengths plus value sizes."""
    return sum(_utf8_len(name) + value_size(av) for name, av in item.items())


def _number_size(text: str) -> int:
    significant = text.lstrip("-").replace(".", "").strip("0")
    return (max(1, len(significant)) + 1) // 2 + 1


def _b64_len(text: str) -> int:
    return len(text) // 4 * 3 - (len(text) - len(text.rstrip("=")))


# ------------------------------------------------------------------------------------ inspection

def type_of(av: AttributeValue) -> str:
    """The type key of a value ("S", "N", ...)."""
    for type_name in av:
        return type_name
    raise ValidationException(EMPTY_VALUE)


def b_bytes(av: AttributeValue) -> bytes:
    """The decoded bytes of a B value."""
    try:
        return base64.b64decode(av["B"], validate=True)
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValidationException("The provided value is not a valid binary value") from None


def equal(a: AttributeValue, b: AttributeValue) -> bool:
    """DynamoDB equality: N numerically, sets unordered, M and L deep. Values come from
    `parse_value` (B in canonical base64)."""
    type_name = type_of(a)
    if type_name != type_of(b):
        return False
    x, y = a[type_name], b[type_name]
    if type_name == "N":
        return x == y or numbers.compare(x, y) == 0
    if type_name in ("SS", "BS"):
        return set(x) == set(y)
    if type_name == "NS":
        return x == y or set(map(numbers.parse, x)) == set(map(numbers.parse, y))
    if type_name == "L":
        return len(x) == len(y) and all(map(equal, x, y))
    if type_name == "M":
        return x.keys() == y.keys() and all(equal(x[name], y[name]) for name in x)
    return bool(x == y)


def compare(a: AttributeValue, b: AttributeValue) -> int | None:
    """Order of two scalars of one type (S by UTF-8 bytes, N numeric, B unsigned bytes): -1/0/1;
    None when not comparable (different types or not S/N/B)."""
    type_name = type_of(a)
    if type_name != type_of(b) or type_name not in KEY_TYPES:
        return None
    if type_name == "N":
        return numbers.compare(a["N"], b["N"])
    # Code-point order of str is UTF-8 byte order, so S needs no encoding.
    x, y = (a["S"], b["S"]) if type_name == "S" else (b_bytes(a), b_bytes(b))
    return -1 if x < y else (1 if x > y else 0)


# ------------------------------------------------------------------------------------------- keys

@dataclass(frozen=True)
class KeySchema:
    """A table's (or index's) primary key: hash attribute and optional range attribute, with types."""

    hash_name: str
    hash_type: str
    range_name: str | None = None
    range_type: str | None = None

    def __post_init__(self) -> None:
        for type_name in (self.hash_type, self.range_type):
            if type_name is not None and type_name not in KEY_TYPES:
                raise ValidationException(
                    f"{_INVALID}Key attribute type must be one of S, N, B; got: {type_name}")
        if (self.range_name is None) != (self.range_type is None):
            raise ValidationException(f"{_INVALID}A range key needs both a name and a type")

    @property
    def names(self) -> tuple[str, ...]:
        """The key attribute names, hash first."""
        if self.range_name is None:
            return (self.hash_name,)
        return (self.hash_name, self.range_name)

    def parts(self) -> tuple[tuple[str, str, bool], ...]:
        """(name, type, is_hash) of each key attribute, hash first."""
        if self.range_name is None or self.range_type is None:
            return ((self.hash_name, self.hash_type, True),)
        return ((self.hash_name, self.hash_type, True), (self.range_name, self.range_type, False))


def key_of(item: Item, schema: KeySchema) -> Item:
    """Extract and validate the key attributes of an item being written (parsed by parse_item)."""
    key: Item = {}
    for name, type_name, is_hash in schema.parts():
        av = item.get(name)
        if av is None:
            raise ValidationException(f"{_INVALID}Missing the key {name} in the item")
        actual = type_of(av)
        if actual != type_name:
            raise ValidationException(
                f"{_INVALID}Type mismatch for key {name} expected: {type_name} actual: {actual}")
        _check_key_value(name, type_name, av[type_name], is_hash)
        key[name] = av
    return key


def validate_key(key: object, schema: KeySchema) -> Item:
    """Validate a `Key` request parameter: exactly the key attributes, with the right types.
    Returns the parsed key with the attributes in schema order."""
    parsed = parse_attribute_map(key)
    if len(parsed) != len(schema.names):
        raise ValidationException(KEY_MISMATCH)
    out: Item = {}
    for name, type_name, is_hash in schema.parts():
        av = parsed.get(name)
        if av is None or type_of(av) != type_name:
            raise ValidationException(KEY_MISMATCH)
        _check_key_value(name, type_name, av[type_name], is_hash)
        out[name] = av
    return out


def _check_key_value(name: str, type_name: str, field: str, is_hash: bool) -> None:
    if type_name == "N":
        return
    size = _utf8_len(field) if type_name == "S" else _b64_len(field)
    if size == 0:
        kind = "string" if type_name == "S" else "binary"
        raise ValidationException(
            f"{_NOT_VALID}The AttributeValue for a key attribute cannot contain an empty {kind} "
            f"value. Key: {name}")
    if is_hash and size > MAX_HASH_KEY_BYTES:
        # sic: DynamoDB's message has no space in "of2048".
        raise ValidationException(
            f"{_INVALID}Size of hashkey has exceeded the maximum size limit of2048 bytes")
    if not is_hash and size > MAX_RANGE_KEY_BYTES:
        raise ValidationException(
            f"{_INVALID}Aggregated size of all range keys has exceeded the size limit of 1024 bytes")
