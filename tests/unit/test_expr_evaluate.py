"""Evaluating conditions against items: DynamoDB's semantics for gone attributes, types,
size(), contains(), begins_with() and attribute_type()."""
from __future__ import annotations

import base64
from typing import Any

import pytest

from dynalab.expressions import ExpressionContext, evaluate

ITEM: dict[str, Any] = {
    "s": {"S": "hello"},
    "n": {"N": "10"},
    "b": {"B": base64.b64encode(b"\x01\x02\x03").decode()},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [base64.b64encode(b"\x01").decode()]},
    "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"k": {"S": "v"}}}]},
    "m": {"M": {"child": {"M": {"deep": {"N": "3"}}}, "lst": {"L": [{"S": "q"}]}}},
    "emoji": {"S": "a\U0001F600"},
}

VALUES: dict[str, Any] = {
    ":hello": {"S": "hello"}, ":he": {"S": "he"}, ":ll": {"S": "ll"}, ":x": {"S": "x"},
    ":a": {"S": "a"}, ":c": {"S": "c"}, ":nine": {"N": "9"}, ":ten": {"N": "10.0"},
    ":eleven": {"N": "11"}, ":two_and_half": {"N": "2.5"}, ":one": {"N": "1"},
    ":three": {"N": "3"}, ":five": {"N": "5"}, ":zero": {"N": "0"}, ":two": {"N": "2"},
    ":b01": {"B": base64.b64encode(b"\x01").decode()},
    ":b0102": {"B": base64.b64encode(b"\x01\x02").decode()},
    ":b02": {"B": base64.b64encode(b"\x02").decode()},
    ":map": {"M": {"k": {"S": "v"}}}, ":ss_ba": {"SS": ["b", "a"]},
    ":S": {"S": "S"}, ":N": {"S": "N"}, ":SS": {"S": "SS"}, ":NULL": {"S": "NULL"},
    ":true": {"BOOL": True}, ":null": {"NULL": True},
}


def holds(text: str, item: dict[str, Any] | None = ITEM) -> bool:
    return evaluate(ExpressionContext(None, VALUES).condition(text), item)


@pytest.mark.parametrize("text, expected", [
    ("s = :hello", True), ("s <> :hello", False), ("n = :ten", True), ("n < :eleven", True),
    ("n <= :ten", True), ("n > :nine", True), ("n >= :eleven", False), ("s > :he", True),
    ("b > :b01", True), ("b < :b02", True),
    ("n BETWEEN :nine AND :eleven", True), ("n BETWEEN :eleven AND :eleven", False),
    ("s BETWEEN :a AND :c", False), ("s BETWEEN :he AND :x", True),
    ("n IN (:one, :ten)", True), ("n IN (:one, :hello)", False),
    ("ss = :ss_ba", True), ("m.child.deep = :three", True), ("l[2].k = :x", False),
    ("l[0] = :x", True), ("l[1] = :one", True), ("m.lst[0] = :x", False),
    ("t = :true", True), ("z = :null", True),
])
def test_comparisons(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("gone = :one", False), ("gone <> :one", True), ("gone < :one", False),
    ("gone BETWEEN :one AND :two", False), ("gone IN (:one)", False),
    ("NOT gone = :one", True), ("s.deeper = :x", False), ("l[9] = :x", False),
    ("n.x = :x", False), ("s[0] = :x", False),
])
def test_gone_attributes_make_comparisons_false_except_not_equal(text: str,
                                                                     expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize("text", ["s < :one", "n > :hello", "n = :hello", "b >= :hello",
                                  "s BETWEEN :one AND :two", "ss < :a"])
def test_type_mismatches_compare_false(text: str) -> None:
    assert holds(text) is False


@pytest.mark.parametrize("text, expected", [
    ("size(s) = :five", True),                 # characters of a string
    ("size(b) = :three", True),                # bytes of a binary
    ("size(ss) = :two", True), ("size(ns) = :two", True), ("size(bs) = :one", True),
    ("size(l) = :three", True),                # elements of a list
    ("size(m) = :two", True),                  # members of a map
    ("size(n) = :two", False), ("size(n) <> :two", True),  # numbers have no size: gone
    ("size(t) >= :zero", False), ("size(z) >= :zero", False), ("size(gone) >= :zero", False),
    ("size(emoji) = :three", True),            # UTF-16 code units, as DynamoDB counts
    ("size(m.child) = :one", True),
])
def test_size(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("contains(s, :ll)", True), ("contains(s, :x)", False),
    ("contains(ss, :a)", True), ("contains(ss, :c)", False),
    ("contains(ns, :two_and_half)", True), ("contains(ns, :five)", False),
    ("contains(ns, :a)", False),                 # element type must match the set
    ("contains(bs, :b01)", True), ("contains(b, :b0102)", True), ("contains(b, :b02)", True),
    ("contains(l, :x)", True), ("contains(l, :map)", True), ("contains(l, :hello)", False),
    ("contains(n, :one)", False), ("contains(gone, :a)", False),
    ("contains(s, :one)", False),
])
def test_contains(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("begins_with(s, :he)", True), ("begins_with(s, :ll)", False),
    ("begins_with(s, :hello)", True), ("begins_with(b, :b0102)", True),
    ("begins_with(b, :b02)", False), ("begins_with(n, :he)", False),
    ("begins_with(gone, :he)", False), ("begins_with(ss, :a)", False),
])
def test_begins_with(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("attribute_type(s, :S)", True), ("attribute_type(n, :N)", True),
    ("attribute_type(ss, :SS)", True), ("attribute_type(z, :NULL)", True),
    ("attribute_type(s, :N)", False), ("attribute_type(gone, :S)", False),
    ("attribute_exists(m.child.deep)", True), ("attribute_exists(m.child.nope)", False),
    ("attribute_not_exists(gone)", True), ("attribute_not_exists(l[0])", False),
    ("attribute_exists(z)", True),
])
def test_attribute_functions(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("s = :hello AND n = :ten", True), ("s = :hello AND n = :one", False),
    ("s = :x OR n = :ten", True), ("NOT (s = :x OR n = :one)", True),
    ("NOT NOT s = :hello", True), ("s = :x OR s = :hello AND n = :one", False),
])
def test_logic(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_a_gone_item_is_an_empty_item() -> None:
    assert holds("attribute_not_exists(s)", None) is True
    assert holds("s = :hello", {}) is False
    assert holds("s <> :hello", None) is True


def test_long_and_chains_evaluate_without_recursion_trouble() -> None:
    context = ExpressionContext(None, {":v": {"S": "hello"}})
    tree = context.condition(" AND ".join(["s = :v"] * 150))
    assert evaluate(tree, ITEM) is True
    assert evaluate(tree, {"s": {"S": "nope"}}) is False
