"""The template cache: an expression text is parsed once per #names and :value *types*, and each
request's values are bound into it. Trees must hold each request's own values, and every error
must be exactly the one an uncached parse of that request raises."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from dynalab import values as avs
from dynalab.errors import ClientError, ValidationException
from dynalab.expressions import (ExpressionContext, KeyCondition, apply_update, compile_request,
                                 evaluate, keycond)
from dynalab.expressions import context as context_module
from dynalab.expressions.parser import CONDITION, UPDATE, parse
from dynalab.values import KeySchema

TABLE = KeySchema("pk", "S", "sk", "N")
NAMES = {"#pk": "pk", "#sk": "sk"}
BETWEEN = "#pk = :pk AND #sk BETWEEN :lo AND :hi"


def hits() -> int:
    return context_module._template.cache_info().hits


def caught(call: Callable[[], Any]) -> tuple[type, str]:
    with pytest.raises(ClientError) as error:
        call()
    return type(error.value), error.value.message


def uncached(kind: str, text: str, parameter: str, names: dict[str, str] | None,
             values: dict[str, Any], schema: KeySchema | None = None) -> tuple[type, str]:
    """The error of a parse that no cache is involved in."""
    parsed = {ref: avs.parse_value(raw) for ref, raw in values.items()}

    def run() -> Any:
        tree = parse(kind, text, parameter, names or {}, parsed)
        return tree if schema is None else keycond.from_condition(tree, schema)
    return caught(run)


def query(pk: str, lo: Any, hi: Any, text: str = BETWEEN) -> KeyCondition:
    compiled = compile_request("Query", {"KeyConditionExpression": text,
                                         "ExpressionAttributeNames": NAMES,
                                         "ExpressionAttributeValues": {":pk": {"S": pk}, ":lo": lo,
                                                                       ":hi": hi}}, TABLE)
    assert compiled.key_condition is not None
    return compiled.key_condition


def key_error(values: dict[str, Any], text: str = BETWEEN) -> tuple[type, str]:
    return caught(lambda: ExpressionContext(NAMES, values).key_condition(text, TABLE))


def condition(text: str, values: dict[str, Any], names: dict[str, str] | None = None) -> Any:
    return ExpressionContext(names, values).condition(text)


# -- each request gets its own values -------------------------------------------------------------

def test_key_condition_bounds_are_each_requests_own() -> None:
    first = query("a", {"N": "1"}, {"N": "5"})
    before = hits()
    second = query("b", {"N": "10"}, {"N": "20"})
    assert hits() == before + 1  # the same template
    assert first == KeyCondition("pk", {"S": "a"}, "sk", "BETWEEN", ({"N": "1"}, {"N": "5"}))
    assert second == KeyCondition("pk", {"S": "b"}, "sk", "BETWEEN", ({"N": "10"}, {"N": "20"}))
    flipped = "#pk = :pk AND :lo < #sk"
    assert (ExpressionContext(NAMES, {":pk": {"S": "c"}, ":lo": {"N": "7"}})
            .key_condition(flipped, TABLE)) == KeyCondition("pk", {"S": "c"}, "sk", "GT",
                                                            ({"N": "7"},))
    assert (ExpressionContext(NAMES, {":pk": {"S": "d"}, ":lo": {"N": "8"}})
            .key_condition(flipped, TABLE)).values == ({"N": "8"},)


def test_a_conditions_compared_values_are_each_requests_own() -> None:
    text = "#a = :v AND size(#b) IN (:x, :y)"
    names = {"#a": "a", "#b": "b"}
    item = {"a": {"S": "one"}, "b": {"S": "xyz"}}
    first = condition(text, {":v": {"S": "one"}, ":x": {"N": "3"}, ":y": {"N": "9"}}, names)
    second = condition(text, {":v": {"S": "two"}, ":x": {"N": "4"}, ":y": {"N": "9"}}, names)
    assert first.left.right.value == {"S": "one"} and second.left.right.value == {"S": "two"}
    assert [value.value for value in second.right.candidates] == [{"N": "4"}, {"N": "9"}]
    assert evaluate(first, item) and not evaluate(second, item)
    assert first.left.left is second.left.left  # value-free parts are shared, not rebuilt


def test_an_updates_values_are_each_requests_own() -> None:
    text = ("SET #a = :v, l = list_append(if_not_exists(l, :empty), :l), n = n + :one "
            "ADD s :ss DELETE t :tt")
    item = {"n": {"N": "1"}, "t": {"SS": ["x", "y"]}}

    def run(v: str, number: str, member: str) -> dict[str, Any]:
        values = {":v": {"S": v}, ":empty": {"L": []}, ":l": {"L": [{"S": v}]},
                  ":one": {"N": number}, ":ss": {"SS": [member]}, ":tt": {"SS": [member]}}
        return apply_update(ExpressionContext({"#a": "a"}, values).update(text), item)

    assert run("p", "1", "x") == {"a": {"S": "p"}, "l": {"L": [{"S": "p"}]}, "n": {"N": "2"},
                                  "s": {"SS": ["x"]}, "t": {"SS": ["y"]}}
    assert run("q", "5", "y") == {"a": {"S": "q"}, "l": {"L": [{"S": "q"}]}, "n": {"N": "6"},
                                  "s": {"SS": ["y"]}, "t": {"SS": ["x"]}}


def test_an_update_request_binds_its_set_value_and_condition_value() -> None:
    def request(v: str) -> Any:
        return compile_request("UpdateItem", {
            "UpdateExpression": "SET #a = :v", "ConditionExpression": "#a < :v",
            "ExpressionAttributeNames": {"#a": "a"},
            "ExpressionAttributeValues": {":v": {"N": v}}})
    for v in ("1", "2", "3"):
        compiled = request(v)
        assert compiled.update.actions[0].value.value == {"N": v}
        assert compiled.condition.right.value == {"N": v}


# -- value checks on a cache hit raise exactly the uncached error ---------------------------------

def test_between_bounds_in_the_wrong_order_after_a_valid_request() -> None:
    query("a", {"N": "1"}, {"N": "5"})
    values = {":pk": {"S": "a"}, ":lo": {"N": "5"}, ":hi": {"N": "1"}}
    expected = uncached(CONDITION, BETWEEN, "KeyConditionExpression", NAMES, values, TABLE)
    assert key_error(values) == expected == (
        ValidationException, "Invalid KeyConditionExpression: The BETWEEN operator requires "
        "upper bound to be greater than or equal to lower bound; lower bound operand: "
        "AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:1}")
    assert query("a", {"N": "2"}, {"N": "2"}).values == ({"N": "2"}, {"N": "2"})  # equal is fine


def test_between_bounds_of_different_types_name_the_requests_values() -> None:
    text = "a BETWEEN :lo AND :hi"
    condition(text, {":lo": {"S": "a"}, ":hi": {"S": "b"}})
    for values in ({":lo": {"S": "x"}, ":hi": {"N": "1"}}, {":lo": {"S": "y"}, ":hi": {"N": "2"}}):
        expected = uncached(CONDITION, text, "ConditionExpression", None, values)
        assert caught(lambda: condition(text, values)) == expected
    assert expected[1].endswith("lower bound operand: AttributeValue: {S:y}, upper bound "
                                "operand: AttributeValue: {N:2}")


def test_attribute_type_with_an_invalid_type_name_after_a_valid_one() -> None:
    text = "attribute_type(a, :t)"
    assert condition(text, {":t": {"S": "SS"}}).type.value == {"S": "SS"}
    assert condition(text, {":t": {"S": "N"}}).type.value == {"S": "N"}
    values = {":t": {"S": "STRING"}}
    expected = uncached(CONDITION, text, "ConditionExpression", None, values)
    assert caught(lambda: condition(text, values)) == expected == (
        ValidationException, "Invalid ConditionExpression: Invalid attribute type name found; "
        "type: STRING, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}")


def test_a_key_value_of_the_wrong_type_after_a_valid_request() -> None:
    query("a", {"N": "1"}, {"N": "5"})
    values = {":pk": {"N": "1"}, ":lo": {"N": "1"}, ":hi": {"N": "5"}}
    expected = uncached(CONDITION, BETWEEN, "KeyConditionExpression", NAMES, values, TABLE)
    assert key_error(values) == expected == (
        ValidationException, "One or more parameter values were invalid: Condition "
        "parameter type does not match schema type")


def test_an_operand_of_the_wrong_type_after_a_valid_request() -> None:
    text = "SET a = :x + :y ADD s :s"
    good = {":x": {"N": "1"}, ":y": {"N": "2"}, ":s": {"NS": ["1"]}}
    ExpressionContext(None, good).update(text)
    for bad in ({**good, ":y": {"S": "2"}}, {**good, ":s": {"S": "1"}}):
        expected = uncached(UPDATE, text, "UpdateExpression", None, bad)
        assert caught(lambda: ExpressionContext(None, bad).update(text)) == expected


# -- precedence between errors --------------------------------------------------------------------

@pytest.mark.parametrize("text, good, bad, error", [
    # A value check (_FUNCTION) loses to an undefined name, found whatever the values.
    ("a BETWEEN :lo AND :hi AND #x = :lo", {":lo": {"N": "1"}, ":hi": {"N": "2"}},
     {":lo": {"N": "3"}, ":hi": {"N": "2"}},
     "An expression attribute name used in the document path is not defined; attribute name: "
     "#x"),
    # ... and to a path that is not distinct.
    ("a BETWEEN :lo AND :hi AND begins_with(b, b)", {":lo": {"N": "1"}, ":hi": {"N": "2"}},
     {":lo": {"N": "3"}, ":hi": {"N": "2"}},
     "The first operand must be distinct from the remaining operands for this operator or "
     "function; operator: begins_with, first operand: [b]"),
    # Within one category the first error found wins: two value checks, in text order...
    ("a BETWEEN :lo AND :hi AND attribute_type(b, :t)",
     {":lo": {"N": "1"}, ":hi": {"N": "2"}, ":t": {"S": "S"}},
     {":lo": {"N": "3"}, ":hi": {"N": "2"}, ":t": {"S": "nope"}},
     "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; "
     "lower bound operand: AttributeValue: {N:3}, upper bound operand: AttributeValue: {N:2}"),
    ("attribute_type(b, :t) AND a BETWEEN :lo AND :hi",
     {":lo": {"N": "1"}, ":hi": {"N": "2"}, ":t": {"S": "S"}},
     {":lo": {"N": "3"}, ":hi": {"N": "2"}, ":t": {"S": "nope"}},
     "Invalid attribute type name found; type: nope, valid types: "
     "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}"),
    # ... and a value check against a type check that comes later or earlier.
    ("a BETWEEN :lo AND :hi AND begins_with(b, :n)", {":lo": {"N": "1"}, ":hi": {"N": "2"},
                                                      ":n": {"S": "1"}},
     {":lo": {"N": "3"}, ":hi": {"N": "2"}, ":n": {"N": "1"}},
     "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; "
     "lower bound operand: AttributeValue: {N:3}, upper bound operand: AttributeValue: {N:2}"),
    ("begins_with(b, :n) AND a BETWEEN :lo AND :hi", {":lo": {"N": "1"}, ":hi": {"N": "2"},
                                                      ":n": {"S": "1"}},
     {":lo": {"N": "3"}, ":hi": {"N": "2"}, ":n": {"N": "1"}},
     "Incorrect operand type for operator or function; operator or function: begins_with, "
     "operand type: N"),
])
def test_error_precedence_is_unchanged(text: str, good: dict[str, Any], bad: dict[str, Any],
                                       error: str) -> None:
    try:
        condition(text, good)  # may fail too (the undefined name): either way it is cached
    except ClientError:
        pass
    expected = uncached(CONDITION, text, "ConditionExpression", None, bad)
    assert caught(lambda: condition(text, bad)) == expected
    assert expected[1] == "Invalid ConditionExpression: " + error


def test_a_parse_error_wins_over_a_key_schema_error_on_a_cache_hit() -> None:
    # Its types break the key schema (:pk is N), so it fails at the key schema check...
    values = {":pk": {"N": "1"}, ":lo": {"N": "1"}, ":hi": {"N": "5"}}
    assert key_error(values)[1].endswith("Condition parameter type does not match schema type")
    # ... but with bounds in the wrong order the parse's error comes first, as without a cache.
    values = {":pk": {"N": "1"}, ":lo": {"N": "6"}, ":hi": {"N": "5"}}
    expected = uncached(CONDITION, BETWEEN, "KeyConditionExpression", NAMES, values, TABLE)
    assert key_error(values) == expected
    assert "The BETWEEN operator requires upper bound" in expected[1]


def test_unused_values_are_still_reported_after_a_cache_hit() -> None:
    body = {"ConditionExpression": "a = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}}
    compile_request("DeleteItem", body)
    with pytest.raises(ClientError) as error:
        compile_request("DeleteItem", {**body, "ExpressionAttributeValues": {
            ":v": {"S": "y"}, ":w": {"S": "z"}}})
    assert error.value.message == ("Value provided in ExpressionAttributeValues unused in "
                                   "expressions: keys: {:w}")
