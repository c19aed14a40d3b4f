"""dynalab.values: wire attribute values, items, sizes, equality, order and key checks."""
from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from dynalab import values
from dynalab.errors import ClientError, SerializationException, ValidationException
from dynalab.values import KeySchema

INVALID = "One or more parameter values were invalid: "

# ------------------------------------------------------------------------------------- strategies

numbers_text = st.one_of(
    st.integers(-10**40, 10**40).map(str).filter(lambda s: len(s.lstrip("-").rstrip("0")) <= 38),
    # Bounded so that, with 5 places, a value never has more than 38 significant digits.
    st.decimals(min_value=-10**30, max_value=10**30, allow_nan=False, allow_infinity=False,
                places=5).map(str),
    st.sampled_from(["1e125", "-1e-130", "1.0", "0.00010", "-0", "1E+2"]),
)
binary = st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
text = st.text(max_size=10)


def scalar_avs() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        text.map(lambda s: {"S": s}), numbers_text.map(lambda n: {"N": n}),
        binary.map(lambda b: {"B": b}), st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.lists(text, min_size=1, max_size=4, unique=True).map(lambda s: {"SS": s}),
        st.lists(st.integers(-1000, 1000), min_size=1, max_size=4, unique=True)
        .map(lambda ns: {"NS": [str(n) for n in ns]}),
        st.lists(st.binary(max_size=5), min_size=1, max_size=4, unique=True)
        .map(lambda bs: {"BS": [base64.b64encode(b).decode() for b in bs]}),
    )


wire_avs = st.recursive(
    scalar_avs(),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda xs: {"L": xs}),
        st.dictionaries(text, children, max_size=4).map(lambda m: {"M": m}),
    ),
    max_leaves=12,
)
wire_items = st.dictionaries(text, wire_avs, max_size=5)

json_garbage = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=10,
)
# Garbage that looks like attribute values, so that it gets past the first type check.
av_garbage = st.recursive(
    st.dictionaries(st.sampled_from(values.TYPES + ("X",)), json_garbage, max_size=2),
    lambda children: st.one_of(
        st.dictionaries(st.sampled_from(["L", "SS", "NS", "BS"]), st.lists(children | json_garbage, max_size=3), max_size=1),
        st.dictionaries(st.just("M"), st.dictionaries(st.text(max_size=3), children | json_garbage, max_size=3), max_size=1),
    ),
    max_leaves=10,
)


def deep_map(levels: int) -> dict[str, Any]:
    """A scalar wrapped in `levels` single-key maps (levels=1 -> {"M": {"n": {"S": "leaf"}}})."""
    value: dict[str, Any] = {"S": "leaf"}
    for _ in range(levels):
        value = {"M": {"n": value}}
    return value


def error_of(raw: object) -> ClientError:
    with pytest.raises(ClientError) as info:
        values.parse_value(raw)
    return info.value


# ----------------------------------------------------------------------------------- parse_value

def test_parse_value_canonicalizes_numbers_and_keeps_the_rest() -> None:
    raw = {"M": {"n": {"N": "1.0"}, "ns": {"NS": ["1E+2", "-0.50"]}, "l": {"L": [{"BOOL": False}]},
                 "b": {"B": "YWJj"}, "s": {"S": ""}, "x": {"NULL": True}}}
    assert values.parse_value(raw) == {
        "M": {"n": {"N": "1"}, "ns": {"NS": ["100", "-0.5"]}, "l": {"L": [{"BOOL": False}]},
              "b": {"B": "YWJj"}, "s": {"S": ""}, "x": {"NULL": True}}}


def test_unknown_members_and_nulls_are_ignored() -> None:
    assert values.parse_value({"S": "a", "X": 1, "N": None}) == {"S": "a"}


@pytest.mark.parametrize("raw, message", [
    ({}, values.EMPTY_VALUE),
    ({"X": "a"}, values.EMPTY_VALUE),
    ({"S": None}, values.EMPTY_VALUE),
    ({"S": "a", "N": "1"}, values.MANY_TYPES),
    ({"S": "a", "N": "b"}, "The parameter cannot be converted to a numeric value: b"),
    ({"NULL": False}, INVALID + "Null attribute value types must have the value of true"),
    ({"SS": []}, INVALID + "An string set  may not be empty"),
    ({"NS": []}, INVALID + "An number set  may not be empty"),
    ({"BS": []}, INVALID + "Binary sets should not be empty"),
    ({"SS": ["a", "a"]}, INVALID + "Input collection [a, a] contains duplicates."),
    ({"BS": ["Yg==", "Yg=="]}, INVALID + "Input collection [Yg==, Yg==]of type BS contains duplicates."),
    ({"NS": ["1", "1"]}, "Input collection contains duplicates"),
    ({"NS": ["1", "1.00"]}, "Input collection contains duplicates"),
    ({"NS": ["1", ""]}, "The parameter cannot be converted to a numeric value"),
    ({"NS": ["1", "b"]}, "The parameter cannot be converted to a numeric value: b"),
    ({"N": "1e126"}, "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    ({"L": [{"S": "a"}, {}]}, values.EMPTY_VALUE),
    ({"L": [None]}, values.EMPTY_VALUE),
    ({"M": {"a": {"SS": []}}}, INVALID + "An string set  may not be empty"),
])
def test_validation_errors(raw: object, message: str) -> None:
    error = error_of(raw)
    assert isinstance(error, ValidationException)
    assert error.message == message


@pytest.mark.parametrize("raw, message", [
    ({"S": 5}, "NUMBER_VALUE cannot be converted to String"),
    ({"S": True}, "TRUE_VALUE cannot be converted to String"),
    ({"N": False}, "FALSE_VALUE cannot be converted to String"),
    ({"N": 123}, "NUMBER_VALUE cannot be converted to String"),
    ({"N": 1.5}, "DECIMAL_VALUE cannot be converted to String"),
    ({"S": []}, "Unrecognized collection type class java.lang.String"),
    ({"S": {"S": "asdf"}}, "Start of structure or map found where not expected"),
    ({"BOOL": "true"}, "Unexpected token received from parser"),
    ({"BOOL": 1}, "NUMBER_VALUE cannot be converted to Boolean"),
    ({"NULL": []}, "Unrecognized collection type class java.lang.Boolean"),
    ({"B": 5}, "only base-64-encoded strings are convertible to bytes"),
    ({"B": []}, "Unrecognized collection type class java.nio.ByteBuffer"),
    ({"B": "23456"}, "Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
    ({"B": "=+/="}, "Invalid last non-pad Base64 character dectected"),
    ({"B": "+/+="}, "Invalid last non-pad Base64 character dectected"),
    ({"B": "YQ=a"}, "Invalid last non-pad Base64 character dectected"),
    ({"B": "a!bc"}, "Invalid Base64 character: '!'"),
    ({"SS": "a"}, "Unexpected field type"),
    ({"L": {}}, "Start of structure or map found where not expected"),
    ({"SS": [1]}, "NUMBER_VALUE cannot be converted to String"),
    ({"BS": [True]}, "only base-64-encoded strings are convertible to bytes"),
    ({"M": 5}, "Unexpected field type"),
    ({"M": []}, "Unrecognized collection type java.util.Map<java.lang.String, "
                "com.amazonaws.dynamodb.v20120810.AttributeValue>"),
    ({"L": ["a"]}, "Unexpected value type in payload"),
    ({"L": [[]]}, "Unrecognized collection type class com.amazonaws.dynamodb.v20120810.AttributeValue"),
    ("a", "Unexpected value type in payload"),
])
def test_serialization_errors(raw: object, message: str) -> None:
    error = error_of(raw)
    assert isinstance(error, SerializationException)
    assert error.message == message


def test_a_serialization_error_anywhere_beats_a_validation_error() -> None:
    # DynamoDB deserializes the whole request before it validates anything.
    raw = {"L": [{"SS": []}, {"NULL": False}, {"M": {"deep": {"L": [{"N": 5}]}}}]}
    error = error_of(raw)
    assert isinstance(error, SerializationException)
    assert error.message == "NUMBER_VALUE cannot be converted to String"


def test_lone_surrogates_are_refused_as_client_errors() -> None:
    with pytest.raises(SerializationException):
        values.parse_item({"a": {"S": "\ud800"}})
    with pytest.raises(SerializationException):
        values.parse_item({"\udfff": {"S": "a"}})


# ------------------------------------------------------------------------------------------ depth

def test_depth_limit_is_32_levels_counting_the_attribute() -> None:
    assert values.parse_value(deep_map(31)) == deep_map(31)
    assert values.parse_item({"data": deep_map(31)}) == {"data": deep_map(31)}
    for raw in (deep_map(32), {"L": [deep_map(31)]}):
        error = error_of(raw)
        assert isinstance(error, ValidationException)
        assert error.message == values.NESTING


def test_hostile_nesting_gives_a_client_error_not_a_crash() -> None:
    raw: Any = {"N": 5}
    for _ in range(5000):
        raw = {"L": [raw]}
    assert isinstance(error_of(raw), SerializationException)  # the bad leaf, found iteratively
    raw = {"S": "x"}
    for _ in range(5000):
        raw = {"M": {"a": raw}}
    assert error_of(raw).message == values.NESTING


# -------------------------------------------------------------------------------------- item size

@pytest.mark.parametrize("item, size", [
    ({"id": {"S": "abc"}}, 2 + 3),
    ({"s": {"S": "é"}}, 1 + 2),                            # UTF-8 bytes, not characters
    ({"n": {"N": "12345"}}, 1 + 3 + 1),                    # 5 digits -> 3 bytes, plus 1
    ({"n": {"N": "0.000100"}}, 1 + 1 + 1),                 # leading/trailing zeros are trimmed
    ({"n": {"N": "-1234"}}, 1 + 2 + 1),
    ({"b": {"B": base64.b64encode(b"12345").decode()}}, 1 + 5),  # raw bytes, not base64 chars
    ({"ok": {"BOOL": True}, "nil": {"NULL": True}}, (2 + 1) + (3 + 1)),
    ({"l": {"L": []}, "m": {"M": {}}}, (1 + 3) + (1 + 3)),
    ({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}, 1 + 3 + (1 + 2) + (1 + 2)),
    ({"m": {"M": {"k": {"S": "v"}}}}, 1 + 3 + (1 + 1 + 1)),
    ({"ss": {"SS": ["a", "bc"]}, "ns": {"NS": ["1", "22"]}}, (2 + 3) + (2 + 2 + 2)),
    ({"bs": {"BS": ["YQ==", "YWI="]}}, 2 + 1 + 2),
])
def test_item_size_follows_the_documented_rules(item: values.Item, size: int) -> None:
    assert values.item_size(item) == size


def item_of_size(size: int) -> dict[str, Any]:
    return {"k": {"S": "x" * (size - 1)}}


def test_item_size_limit_is_400_kb() -> None:
    limit = values.MAX_ITEM_SIZE_BYTES
    assert values.parse_item(item_of_size(limit))["k"]["S"] == "x" * (limit - 1)
    with pytest.raises(ValidationException) as info:
        values.parse_item(item_of_size(limit + 1))
    assert info.value.message == "Item size has exceeded the maximum allowed size"


@given(wire_items)
def test_parse_item_measures_items_as_item_size_does(raw: dict[str, Any]) -> None:
    # Pad the item to exactly the limit: accepted; one more byte: refused.
    item = values.parse_item(raw)
    room = values.MAX_ITEM_SIZE_BYTES - values.item_size(item) - len("\x00pad")
    padded = {**raw, "\x00pad": {"S": "x" * room}}
    assert values.item_size(values.parse_item(padded)) == values.MAX_ITEM_SIZE_BYTES
    with pytest.raises(ValidationException):
        values.parse_item({**raw, "\x00pad": {"S": "x" * (room + 1)}})


# -------------------------------------------------------------------------------- equal / compare

@given(wire_avs)
def test_parse_is_idempotent_and_equal_is_reflexive(raw: dict[str, Any]) -> None:
    av = values.parse_value(raw)
    assert values.parse_value(av) == av
    assert values.equal(av, av)
    assert values.type_of(av) == next(iter(raw))


@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=6, unique=True), st.randoms())
def test_sets_are_unordered_and_numbers_numeric(ns: list[int], rnd: Any) -> None:
    shuffled = ns[:]
    rnd.shuffle(shuffled)
    a = values.parse_value({"NS": [str(n) for n in ns]})
    b = values.parse_value({"NS": [f"{n}.000" for n in shuffled]})
    assert values.equal(a, b)
    assert values.equal({"SS": [str(n) for n in ns]}, {"SS": [str(n) for n in shuffled]})
    assert not values.equal(a, values.parse_value({"NS": [str(n + 1) for n in ns]}))


def test_equal_examples() -> None:
    assert values.equal({"N": "1"}, {"N": "1.0"})
    assert not values.equal({"N": "1"}, {"S": "1"})
    assert values.equal({"M": {"a": {"L": [{"N": "2"}]}}}, {"M": {"a": {"L": [{"N": "2.0"}]}}})
    assert not values.equal({"L": [{"N": "1"}, {"N": "2"}]}, {"L": [{"N": "2"}, {"N": "1"}]})
    assert not values.equal({"M": {"a": {"NULL": True}}}, {"M": {"b": {"NULL": True}}})
    assert not values.equal({"BOOL": True}, {"BOOL": False})


@given(text, text)
def test_compare_strings_by_utf8_bytes(a: str, b: str) -> None:
    x, y = a.encode(), b.encode()
    assert values.compare({"S": a}, {"S": b}) == (x > y) - (x < y)


@given(st.binary(max_size=6), st.binary(max_size=6))
def test_compare_binary_by_unsigned_bytes(a: bytes, b: bytes) -> None:
    av_a, av_b = ({"B": base64.b64encode(v).decode()} for v in (a, b))
    assert values.compare(av_a, av_b) == (a > b) - (a < b)
    assert values.b_bytes(av_a) == a


def test_compare_numbers_and_incomparables() -> None:
    assert values.compare({"N": "-10"}, {"N": "9"}) == -1
    assert values.compare({"N": "1e2"}, {"N": "100"}) == 0
    assert values.compare({"N": "1"}, {"S": "1"}) is None
    assert values.compare({"SS": ["a"]}, {"SS": ["a"]}) is None
    assert values.compare({"BOOL": True}, {"BOOL": True}) is None


# ------------------------------------------------------------------------------------------- keys

TABLE = KeySchema("p_key", "S", "s_key", "N")


def test_key_schema() -> None:
    assert TABLE.names == ("p_key", "s_key")
    assert KeySchema("id", "B").names == ("id",)
    with pytest.raises(ValidationException):
        KeySchema("id", "BOOL")
    with pytest.raises(ValidationException):
        KeySchema("id", "S", "r")


def test_key_of_extracts_the_key() -> None:
    item = values.parse_item({"s_key": {"N": "1.50"}, "x": {"S": "y"}, "p_key": {"S": "a"}})
    assert values.key_of(item, TABLE) == {"p_key": {"S": "a"}, "s_key": {"N": "1.5"}}


@pytest.mark.parametrize("item, message", [
    ({"s_key": {"N": "1"}}, INVALID + "Missing the key p_key in the item"),
    ({"p_key": {"S": "a"}}, INVALID + "Missing the key s_key in the item"),
    ({"p_key": {"N": "1"}, "s_key": {"N": "1"}}, INVALID + "Type mismatch for key p_key expected: S actual: N"),
    ({"p_key": {"S": "a"}, "s_key": {"SS": ["1"]}}, INVALID + "Type mismatch for key s_key expected: N actual: SS"),
    ({"p_key": {"S": ""}, "s_key": {"N": "1"}},
     "One or more parameter values are not valid. The AttributeValue for a key attribute cannot "
     "contain an empty string value. Key: p_key"),
    ({"p_key": {"S": "a" * 2049}, "s_key": {"N": "1"}},
     INVALID + "Size of hashkey has exceeded the maximum size limit of2048 bytes"),
])
def test_key_of_errors(item: values.Item, message: str) -> None:
    with pytest.raises(ValidationException) as info:
        values.key_of(item, TABLE)
    assert info.value.message == message


def test_key_size_limits_count_bytes() -> None:
    schema = KeySchema("h", "B", "r", "S")
    ok = {"h": {"B": base64.b64encode(b"x" * 2048).decode()}, "r": {"S": "é" * 512}}
    assert values.key_of(ok, schema) == ok
    with pytest.raises(ValidationException, match="range keys has exceeded"):
        values.key_of({**ok, "r": {"S": "é" * 512 + "a"}}, schema)
    with pytest.raises(ValidationException, match="empty binary value. Key: h"):
        values.key_of({**ok, "h": {"B": ""}}, schema)


def test_validate_key() -> None:
    assert values.validate_key({"s_key": {"N": "2.0"}, "p_key": {"S": "a"}}, TABLE) == {
        "p_key": {"S": "a"}, "s_key": {"N": "2"}}
    for key in ({"p_key": {"S": "a"}},
                {"p_key": {"S": "a"}, "s_key": {"S": "1"}},
                {"p_key": {"S": "a"}, "other": {"N": "1"}},
                {"p_key": {"S": "a"}, "s_key": {"N": "1"}, "x": {"N": "1"}}):
        with pytest.raises(ValidationException) as info:
            values.validate_key(key, TABLE)
        assert info.value.message == "The provided key element does not match the schema"
    with pytest.raises(ValidationException, match="empty string value. Key: p_key"):
        values.validate_key({"p_key": {"S": ""}, "s_key": {"N": "1"}}, TABLE)
    with pytest.raises(SerializationException):
        values.validate_key([], TABLE)


# ------------------------------------------------------------------------------- hostile input

@settings(max_examples=300)
@given(st.one_of(json_garbage, av_garbage))
def test_garbage_values_only_raise_client_errors(raw: object) -> None:
    try:
        av = values.parse_value(raw)
    except ClientError:
        return
    assert values.parse_value(av) == av
    values.value_size(av)


@settings(max_examples=300)
@given(st.one_of(json_garbage, st.dictionaries(st.text(max_size=3), av_garbage | json_garbage, max_size=3)))
def test_garbage_items_and_keys_only_raise_client_errors(raw: object) -> None:
    for parse in (values.parse_item, lambda r: values.validate_key(r, TABLE)):
        try:
            parse(raw)
        except ClientError:
            pass
