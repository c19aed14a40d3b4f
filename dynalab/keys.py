"""Storage-engine key encoding: memcmp order of encodings equals DynamoDB's order of key values.

Value encodings (`encode_key_value`):

* S: the UTF-8 bytes (UTF-8 byte order is DynamoDB's order for strings).
* B: the raw bytes.
* N: one tag byte (0x01 negative, 0x02 zero, 0x03 positive), then for non-zero numbers one
  exponent byte and the significant digits packed two per byte. The exponent byte is the adjusted
  exponent + 130 (0..255 covers exactly -130..125); digit pairs are 10*a + b + 1 (1..100, never
  0x00), a lone last digit padded with 0 (canonical numbers have no trailing zeros, so this is
  unambiguous). A positive number ends with 0x00, which sorts below every digit byte, so 1 < 1.01.
  A negative number stores 255 - exponent byte and 101 - each pair and ends with 0xFF, so larger
  magnitudes sort first and -1.01 < -1.

Storage keys (`encode_key`): the hash part is escaped (0x00 -> 0x00 0xFF) and terminated with
0x00 0x01, which makes the set of hash parts prefix-free: every item of one partition key shares
`hash_prefix(hash)` and no other partition key's items do, whatever bytes the range part holds.
The range part follows unescaped, so items of one partition key sort by range key.
"""
from __future__ import annotations

import base64
import hashlib
from decimal import Decimal

from dynalab import numbers
from dynalab.errors import ServerError, ValidationException
from dynalab.values import KEY_TYPES, AttributeValue, b_bytes, type_of

__all__ = [
    "encode_key_value", "decode_key_value", "encode_key", "decode_key", "hash_prefix",
    "partition_token",
]

_NEGATIVE, _ZERO, _POSITIVE = b"\x01", b"\x02", b"\x03"
_EXPONENT_BIAS = -numbers.MIN_EXPONENT
_POSITIVE_END, _NEGATIVE_END = 0x00, 0xFF
_ESCAPE = b"\x00\xff"
_TERMINATOR = b"\x00\x01"


def encode_key_value(av: AttributeValue) -> bytes:
    """Order-preserving bytes of an S, N or B value."""
    type_name = _key_type(av)
    if type_name == "S":
        return str(av["S"]).encode("utf-8")
    if type_name == "B":
        return b_bytes(av)
    return _encode_number(av["N"])


def decode_key_value(data: bytes, type_name: str) -> AttributeValue:
    """Inverse of `encode_key_value`; N comes back canonical."""
    if type_name == "S":
        try:
            return {"S": data.decode("utf-8")}
        except UnicodeDecodeError:
            raise ServerError("corrupt key: S value is not UTF-8") from None
    if type_name == "B":
        return {"B": _b64(data)}
    if type_name == "N":
        return {"N": _decode_number(data)}
    raise ServerError(f"corrupt key: unknown key type {type_name!r}")


def encode_key(hash_value: AttributeValue, range_value: AttributeValue | None) -> bytes:
    """Storage key: self-delimiting hash part, then the range part (items of one partition key
    are contiguous and sorted by range key)."""
    prefix = hash_prefix(hash_value)
    if range_value is None:
        return prefix
    return prefix + encode_key_value(range_value)


def decode_key(data: bytes, hash_type: str,
               range_type: str | None) -> tuple[AttributeValue, AttributeValue | None]:
    """Inverse of `encode_key`."""
    end = _find_terminator(data)
    hash_value = decode_key_value(data[:end].replace(_ESCAPE, b"\x00"), hash_type)
    rest = data[end + len(_TERMINATOR):]
    if range_type is None:
        if rest:
            raise ServerError("corrupt key: bytes after the hash part of a hash-only key")
        return hash_value, None
    return hash_value, decode_key_value(rest, range_type)


def hash_prefix(hash_value: AttributeValue) -> bytes:
    """The prefix shared by every storage key of one partition key (for range scans)."""
    return encode_key_value(hash_value).replace(b"\x00", _ESCAPE) + _TERMINATOR


def partition_token(hash_value: AttributeValue) -> int:
    """Stable unsigned 64-bit ring position of a partition key value.

    The first 8 bytes (big-endian) of blake2b over a type tag and the value's bytes; numbers are
    hashed from their canonical text, so 1 and 1.0 land together."""
    type_name = _key_type(hash_value)
    if type_name == "S":
        payload = str(hash_value["S"]).encode("utf-8")
    elif type_name == "B":
        payload = b_bytes(hash_value)
    else:
        payload = numbers.canonical(hash_value["N"]).encode("ascii")
    digest = hashlib.blake2b(type_name.encode("ascii") + b":" + payload, digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _key_type(av: AttributeValue) -> str:
    type_name = type_of(av)
    if type_name not in KEY_TYPES:
        raise ValidationException(
            "One or more parameter values were invalid: "
            f"Key attributes must be of type S, N or B; found: {type_name}")
    return type_name


def _encode_number(text: str) -> bytes:
    value = numbers.parse(text)
    if value == 0:
        return _ZERO
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    adjusted = exponent + len(digit_tuple) - 1
    if len(digits) % 2:
        digits += "0"
    pairs = [int(digits[i:i + 2]) + 1 for i in range(0, len(digits), 2)]
    exponent_byte = adjusted + _EXPONENT_BIAS
    if sign:
        return _NEGATIVE + bytes([255 - exponent_byte, *(101 - p for p in pairs), _NEGATIVE_END])
    return _POSITIVE + bytes([exponent_byte, *pairs, _POSITIVE_END])


def _decode_number(data: bytes) -> str:
    if data == _ZERO:
        return "0"
    if len(data) < 4 or data[:1] not in (_NEGATIVE, _POSITIVE):
        raise ServerError("corrupt key: bad N encoding")
    negative = data[:1] == _NEGATIVE
    if data[-1] != (_NEGATIVE_END if negative else _POSITIVE_END):
        raise ServerError("corrupt key: bad N terminator")
    exponent_byte = 255 - data[1] if negative else data[1]
    pairs = [101 - b if negative else b for b in data[2:-1]]
    if any(not 1 <= p <= 100 for p in pairs):
        raise ServerError("corrupt key: bad N digits")
    digits = "".join(f"{p - 1:02d}" for p in pairs).rstrip("0")
    if not digits:
        raise ServerError("corrupt key: bad N digits")
    exponent = exponent_byte - _EXPONENT_BIAS - len(digits) + 1
    return numbers.render(Decimal((int(negative), tuple(map(int, digits)), exponent)))


def _find_terminator(data: bytes) -> int:
    start = 0
    while True:
        index = data.find(b"\x00", start)
        if index < 0 or index + 1 >= len(data):
            raise ServerError("corrupt key: unterminated hash part")
        if data[index + 1] == _TERMINATOR[1]:
            return index
        if data[index + 1] != _ESCAPE[1]:
            raise ServerError("corrupt key: bad escape in hash part")
        start = index + 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
