"""dynalab.keys: order-preserving key bytes, storage keys and partition tokens."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from decimal import Context, Decimal

import pytest
from hypothesis import given, strategies as st

from dynalab import keys, numbers
from dynalab.errors import ServerError, ValidationException
from dynalab.values import AttributeValue

from tests.unit.test_numbers import dynamo_decimals

s_values = st.text(max_size=12).map(lambda s: {"S": s})
n_values = dynamo_decimals().map(lambda d: {"N": numbers.render(d)})
# Bytes rich in 0x00 and 0xFF, the escape and terminator bytes.
raw_bytes = st.binary(max_size=12) | st.lists(st.sampled_from([0, 1, 0xFF, 0x7F]), max_size=8).map(bytes)
b_values = raw_bytes.map(lambda b: {"B": base64.b64encode(b).decode()})
values_by_type = {"S": s_values, "N": n_values, "B": b_values}
key_values = st.one_of(s_values, n_values, b_values)


def value_order(av: AttributeValue) -> object:
    """DynamoDB's order of one key value, computed without dynalab.keys."""
    if "S" in av:
        return av["S"].encode("utf-8")
    if "B" in av:
        return base64.b64decode(av["B"])
    return Decimal(av["N"])


def type_of(av: AttributeValue) -> str:
    return next(iter(av))


@given(key_values)
def test_encode_decode_round_trip(av: AttributeValue) -> None:
    assert keys.decode_key_value(keys.encode_key_value(av), type_of(av)) == av


def test_numbers_decode_canonical() -> None:
    for text in ("1.0", "-0.00", "1E+2", "-12.3400e-3"):
        encoded = keys.encode_key_value({"N": text})
        assert keys.decode_key_value(encoded, "N") == {"N": numbers.canonical(text)}


@pytest.mark.parametrize("type_name", ["S", "N", "B"])
@given(data=st.data())
def test_byte_order_is_value_order(type_name: str, data: st.DataObject) -> None:
    a = data.draw(values_by_type[type_name])
    b = data.draw(values_by_type[type_name])
    x, y = keys.encode_key_value(a), keys.encode_key_value(b)
    assert (x < y) == (value_order(a) < value_order(b))
    assert (x == y) == (value_order(a) == value_order(b))


@given(dynamo_decimals(), st.lists(st.integers(0, 9), min_size=1, max_size=5), st.booleans())
def test_byte_order_of_numbers_sharing_leading_digits(value: Decimal, more: list[int], negate: bool) -> None:
    # Extending the digits of a number (1 -> 1.01 -> 1.012) is where prefix bugs would hide.
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not digits or value == 0:
        return
    longer = Decimal((sign, digits + tuple(more), exponent - len(more)))
    if len(longer.normalize(Context(prec=100, Emax=1000, Emin=-1000)).as_tuple().digits) > 38 or longer.adjusted() < -130:
        return
    a, b = (v.copy_negate() if negate else v for v in (value, longer))
    x, y = (keys.encode_key_value({"N": numbers.render(v)}) for v in (a, b))
    assert (x < y) == (a < b) and (x == y) == (a == b)


LIMIT_NUMBERS = [
    "-9.9999999999999999999999999999999999999E+125", "-1e125", "-1.01", "-1", "-0.99",
    "-1e-130", "0", "1e-130", "1.1e-130", "0.5", "0.99", "1", "1.01", "1.1", "2", "10", "1e125",
    "9.9999999999999999999999999999999999999E+125",
]


def test_numbers_at_the_limits_sort_in_order() -> None:
    encoded = [keys.encode_key_value({"N": n}) for n in LIMIT_NUMBERS]
    assert encoded == sorted(encoded)
    assert len(set(encoded)) == len(encoded)


def pairs_of_one_type(values: st.SearchStrategy[AttributeValue]) -> st.SearchStrategy[tuple[AttributeValue, AttributeValue]]:
    """Two values of one type; often the same value, so that partitions and ties occur."""
    return values.flatmap(lambda v: st.tuples(st.just(v), st.just(v) | values_by_type[type_of(v)]))


@given(pairs_of_one_type(key_values), pairs_of_one_type(key_values))
def test_storage_keys_group_by_partition_and_sort_by_range(
        hashes: tuple[AttributeValue, AttributeValue], ranges: tuple[AttributeValue, AttributeValue]) -> None:
    (h1, h2), (r1, r2) = hashes, ranges
    k1, k2 = keys.encode_key(h1, r1), keys.encode_key(h2, r2)
    for hash_value, range_value, key in ((h1, r1, k1), (h2, r2, k2)):
        assert key.startswith(keys.hash_prefix(hash_value))
        assert keys.decode_key(key, type_of(hash_value), type_of(range_value)) == (hash_value, range_value)
    same_partition = value_order(h1) == value_order(h2)
    # Contiguity: a key carries another partition's prefix only if it is the same partition.
    assert k2.startswith(keys.hash_prefix(h1)) == same_partition
    if same_partition:
        assert (k1 < k2) == (value_order(r1) < value_order(r2))


@given(key_values)
def test_hash_only_keys_round_trip(h: AttributeValue) -> None:
    assert keys.decode_key(keys.encode_key(h, None), type_of(h), None) == (h, None)


def test_range_bytes_that_look_like_escapes_stay_in_their_partition() -> None:
    a = {"B": base64.b64encode(b"a").decode()}
    a0 = {"B": base64.b64encode(b"a\x00").decode()}
    tricky = {"B": base64.b64encode(b"\xff\x00\x01").decode()}
    key = keys.encode_key(a, tricky)
    assert key.startswith(keys.hash_prefix(a))
    assert not key.startswith(keys.hash_prefix(a0))


@pytest.mark.parametrize("data, hash_type, range_type", [
    (b"abc", "S", "S"),                       # no terminator
    (b"a\x00\x07b\x00\x01", "S", None),       # bad escape
    (b"a\x00\x01extra", "S", None),           # hash-only key with a range part
    (b"a\x00\x01\x03\x80", "S", "N"),         # truncated number
    (b"a\x00\x01\xff", "S", "S"),             # range S not UTF-8
])
def test_corrupt_keys_raise_server_error(data: bytes, hash_type: str, range_type: str | None) -> None:
    with pytest.raises(ServerError):
        keys.decode_key(data, hash_type, range_type)


def test_non_key_types_are_refused() -> None:
    with pytest.raises(ValidationException):
        keys.encode_key_value({"BOOL": True})
    with pytest.raises(ValidationException):
        keys.partition_token({"SS": ["a"]})


# -------------------------------------------------------------------------------------- tokens

PINNED = {"S": "hello", "N": "1", "B": "AAE="}


def test_partition_token_is_64_bit_and_type_tagged() -> None:
    tokens = {keys.partition_token({t: v}) for t, v in PINNED.items()}
    assert len(tokens) == 3
    assert all(0 <= t < 2**64 for t in tokens)
    assert keys.partition_token({"S": "1"}) != keys.partition_token({"N": "1"})


def test_partition_token_is_the_same_for_equal_numbers() -> None:
    assert keys.partition_token({"N": "1"}) == keys.partition_token({"N": "1.0"})
    assert keys.partition_token({"N": "1E+2"}) == keys.partition_token({"N": "100"})


def test_partition_token_is_stable_across_processes() -> None:
    here = [keys.partition_token({t: v}) for t, v in PINNED.items()]
    code = ("from dynalab import keys; "
            f"print([keys.partition_token({{t: v}}) for t, v in {PINNED!r}.items()])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == str(here)


def test_partition_tokens_spread_over_the_ring() -> None:
    buckets = [0] * 16
    for i in range(4096):
        buckets[keys.partition_token({"S": f"user#{i}"}) >> 60] += 1
    # 256 expected per bucket, standard deviation ~15.5: this is a six-sigma band.
    assert all(160 < count < 352 for count in buckets), buckets
