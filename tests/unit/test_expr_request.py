"""Projection, key conditions, legacy parameters and whole-request compilation."""
from __future__ import annotations

from typing import Any

import pytest

from dynalab.errors import ClientError, ValidationException
from dynalab.expressions import (And, AttributeNotExists, Compare, ExpressionContext,
                                 KeyCondition, Not, Or, Path, Value, compile_attributes_to_get,
                                 compile_expected, compile_filter, compile_key_conditions,
                                 compile_request, evaluate, matches_key_condition, project)
from dynalab.expressions.request import PARAMETERS, CompiledRequest
from dynalab.values import KeySchema

ITEM: dict[str, Any] = {
    "a": {"S": "x"},
    "m": {"M": {"b": {"N": "1"}, "c": {"N": "2"}, "d": {"L": [{"S": "p"}, {"S": "q"}]}}},
    "l": {"L": [{"N": "0"}, {"M": {"x": {"N": "1"}, "y": {"N": "2"}}}, {"N": "2"}, {"N": "3"}]},
}
TABLE = KeySchema("pk", "S", "sk", "N")
HASH_ONLY = KeySchema("pk", "S")


def projected(text: str, item: dict[str, Any] = ITEM) -> dict[str, Any]:
    return project(item, ExpressionContext().projection(text).paths)


def message(call: Any, *args: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args)
    return caught.value.message


# -- projection ----------------------------------------------------------------------------------

def test_projection_keeps_only_what_the_paths_name() -> None:
    assert projected("a") == {"a": {"S": "x"}}
    assert projected("m.b, m.d[1]") == {"m": {"M": {"b": {"N": "1"}, "d": {"L": [{"S": "q"}]}}}}
    assert projected("l[3], l[1].y, l[9]") == {"l": {"L": [{"M": {"y": {"N": "2"}}}, {"N": "3"}]}}
    assert projected("gone, m.gone, a.b, l[0].x") == {}
    assert projected("a, gone") == {"a": {"S": "x"}}
    assert project(None, ExpressionContext().projection("a").paths) == {}


def test_attributes_to_get() -> None:
    assert project(ITEM, compile_attributes_to_get(["a", "gone"]).paths) == {"a": {"S": "x"}}
    assert message(compile_attributes_to_get, ["a", "a"]) == (
        "One or more parameter values were invalid: Duplicate value in attribute name: a")


# -- key conditions ------------------------------------------------------------------------------

KEY_VALUES = {":h": {"S": "h"}, ":one": {"N": "1"}, ":two": {"N": "2"}, ":s": {"S": "s"},
              ":n": {"N": "5"}}


def key_condition(text: str, schema: KeySchema = TABLE) -> KeyCondition:
    return ExpressionContext({"#k": "pk"}, KEY_VALUES).key_condition(text, schema)


@pytest.mark.parametrize("text, op, values", [
    ("pk = :h", None, ()),
    ("pk = :h AND sk = :one", "EQ", ({"N": "1"},)),
    ("#k = :h AND sk < :one", "LT", ({"N": "1"},)),
    ("pk = :h AND sk <= :one", "LE", ({"N": "1"},)),
    ("pk = :h AND :one < sk", "GT", ({"N": "1"},)),          # operands swapped: op flips
    ("sk >= :one AND pk = :h", "GE", ({"N": "1"},)),
    ("pk = :h AND sk BETWEEN :one AND :two", "BETWEEN", ({"N": "1"}, {"N": "2"})),
    (":h = pk", None, ()),
])
def test_key_conditions(text: str, op: str | None, values: tuple[Any, ...]) -> None:
    compiled = key_condition(text)
    assert compiled.hash_name == "pk" and compiled.hash_value == {"S": "h"}
    assert compiled.op == op and compiled.values == values
    assert compiled.range_name == (None if op is None else "sk")


def test_begins_with_key_condition_and_matching() -> None:
    schema = KeySchema("pk", "S", "sk", "S")
    compiled = key_condition("pk = :h AND begins_with(sk, :s)", schema)
    assert (compiled.op, compiled.values) == ("BEGINS_WITH", ({"S": "s"},))
    assert matches_key_condition(compiled, {"pk": {"S": "h"}, "sk": {"S": "start"}})
    assert not matches_key_condition(compiled, {"pk": {"S": "h"}, "sk": {"S": "ts"}})
    between = key_condition("pk = :h AND sk BETWEEN :one AND :two")
    assert matches_key_condition(between, {"pk": {"S": "h"}, "sk": {"N": "1.5"}})
    assert not matches_key_condition(between, {"pk": {"S": "h"}, "sk": {"N": "3"}})
    assert not matches_key_condition(between, {"pk": {"S": "other"}, "sk": {"N": "1"}})


@pytest.mark.parametrize("text, schema, error", [
    ("pk = :h OR sk = :one", TABLE, "Invalid operator used in KeyConditionExpression: OR"),
    ("pk = :h AND NOT sk = :one", TABLE, "Invalid operator used in KeyConditionExpression: NOT"),
    ("pk IN (:h)", TABLE, "Invalid operator used in KeyConditionExpression: IN"),
    ("pk <> :h", TABLE, "Invalid operator used in KeyConditionExpression: <>"),
    ("attribute_exists(pk)", TABLE, "Invalid operator used in KeyConditionExpression: "
                                    "attribute_exists"),
    ("pk = :h AND contains(sk, :one)", TABLE, "Invalid operator used in "
                                              "KeyConditionExpression: contains"),
    ("size(pk) = :one", TABLE, "KeyConditionExpressions cannot contain nested operations"),
    ("pk = sk", TABLE, "Invalid condition in KeyConditionExpression: Multiple attribute names "
                       "used in one condition"),
    (":h = :s", TABLE, "Invalid condition in KeyConditionExpression: No key attribute "
                       "specified"),
    ("pk.x = :h", TABLE, "KeyConditionExpressions cannot have conditions on nested attributes"),
    ("pk = :h AND pk = :h", TABLE, "KeyConditionExpressions must only contain one condition "
                                   "per key"),
    ("pk = :h AND sk = :one AND extra = :one", TABLE, "Conditions can be of length 1 or 2 only"),
    ("sk = :one", TABLE, "Query condition missed key schema element: pk"),
    ("pk = :h AND extra = :one", TABLE, "Query condition missed key schema element: sk"),
    ("pk = :h AND sk = :one", HASH_ONLY, "Query key condition not supported"),
    ("pk < :h", TABLE, "Query key condition not supported"),
    ("pk = :one", TABLE, "One or more parameter values were invalid: Condition parameter type "
                         "does not match schema type"),
    ("pk = :h AND sk = :s", TABLE, "One or more parameter values were invalid: Condition "
                                   "parameter type does not match schema type"),
    ("pk = :h AND begins_with(sk, :n)", TABLE, "Invalid KeyConditionExpression: Incorrect "
                                               "operand type for operator or function; operator "
                                               "or function: begins_with, operand type: N"),
    ("pk = :h AND sk BETWEEN :two AND :one", TABLE, "Invalid KeyConditionExpression: The BETWEEN "
                                                    "operator requires upper bound to be greater "
                                                    "than or equal to lower bound; lower bound "
                                                    "operand: AttributeValue: {N:2}, upper bound "
                                                    "operand: AttributeValue: {N:1}"),
])
def test_key_condition_errors(text: str, schema: KeySchema, error: str) -> None:
    assert message(key_condition, text, schema) == error


def test_legacy_key_conditions() -> None:
    compiled = compile_key_conditions({
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "h"}]},
        "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "1"}, {"N": "2"}]},
    }, TABLE)
    assert compiled == KeyCondition("pk", {"S": "h"}, "sk", "BETWEEN", ({"N": "1"}, {"N": "2"}))
    assert message(compile_key_conditions, {
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "h"}]},
        "sk": {"ComparisonOperator": "NOT_NULL"}}, TABLE) == (
        "Attempted conditional constraint is not an indexable operation")


# -- legacy conditions ---------------------------------------------------------------------------

def test_expected_forms() -> None:
    condition = compile_expected({"a": {"Value": {"S": "x"}}, "b": {"Exists": False}})
    assert condition == And(Compare("=", Path.of("a"), Value(None, {"S": "x"})),
                            AttributeNotExists(Path.of("b")))
    either = compile_expected({"a": {"ComparisonOperator": "NE", "AttributeValueList":
                                     [{"S": "x"}]},
                               "m": {"ComparisonOperator": "NOT_NULL"}}, "OR")
    assert isinstance(either, Or) and evaluate(either, ITEM)
    assert not evaluate(either, {"a": {"S": "x"}})


@pytest.mark.parametrize("op, arguments, holds", [
    ("EQ", [{"S": "x"}], True), ("NE", [{"S": "x"}], False), ("LT", [{"S": "y"}], True),
    ("LE", [{"S": "x"}], True), ("GT", [{"S": "x"}], False), ("GE", [{"S": "x"}], True),
    ("NULL", [], False), ("NOT_NULL", [], True), ("CONTAINS", [{"S": "x"}], True),
    ("NOT_CONTAINS", [{"S": "x"}], False), ("BEGINS_WITH", [{"S": "x"}], True),
    ("IN", [{"S": "w"}, {"S": "x"}], True), ("BETWEEN", [{"S": "a"}, {"S": "w"}], False),
])
def test_every_legacy_operator(op: str, arguments: list[Any], holds: bool) -> None:
    condition = compile_filter({"a": {"ComparisonOperator": op, "AttributeValueList": arguments}})
    assert condition is not None and evaluate(condition, ITEM) is holds


def test_not_contains_on_a_missing_attribute_holds() -> None:
    condition = compile_filter({"gone": {"ComparisonOperator": "NOT_CONTAINS",
                                         "AttributeValueList": [{"S": "x"}]}})
    assert isinstance(condition, Not) and evaluate(condition, ITEM)


@pytest.mark.parametrize("expected, operator, error", [
    ({"a": {"Exists": True}}, None, "One or more parameter values were invalid: Value must be "
                                    "provided when Exists is true for Attribute: a"),
    ({"a": {}}, None, "One or more parameter values were invalid: Value must be provided when "
                      "Exists is null for Attribute: a"),
    ({"a": {"Exists": False, "Value": {"S": "x"}}}, None, "One or more parameter values were "
                                                          "invalid: Value cannot be used when "
                                                          "Exists is false for Attribute: a"),
    ({"a": {"Exists": True, "ComparisonOperator": "EQ", "Value": {"S": "x"}}}, None,
     "One or more parameter values were invalid: Exists and ComparisonOperator cannot be used "
     "together for Attribute: a"),
    ({"a": {"AttributeValueList": [{"S": "x"}]}}, None, "One or more parameter values were "
                                                        "invalid: AttributeValueList can only be "
                                                        "used with a ComparisonOperator for "
                                                        "Attribute: a"),
    ({"a": {"ComparisonOperator": "EQ", "Value": {"S": "x"},
            "AttributeValueList": [{"S": "x"}]}}, None,
     "One or more parameter values were invalid: Value and AttributeValueList cannot be used "
     "together for Attribute: a"),
    ({"a": {"ComparisonOperator": "EQ"}}, None, "One or more parameter values were invalid: "
                                                "Value or AttributeValueList must be used with "
                                                "ComparisonOperator: EQ for Attribute: a"),
    ({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "1"}]}}, None,
     "One or more parameter values were invalid: Invalid number of argument(s) for the BETWEEN "
     "ComparisonOperator"),
    ({"a": {"ComparisonOperator": "NULL", "AttributeValueList": [{"N": "1"}]}}, None,
     "One or more parameter values were invalid: Invalid number of argument(s) for the NULL "
     "ComparisonOperator"),
    ({"a": {"ComparisonOperator": "IN", "AttributeValueList": [{"N": "1"}, {"S": "1"}]}}, None,
     "One or more parameter values were invalid: AttributeValues inside AttributeValueList must "
     "be of same type"),
    ({"a": {"ComparisonOperator": "LT", "AttributeValueList": [{"SS": ["x"]}]}}, None,
     "One or more parameter values were invalid: ComparisonOperator LT is not valid for SS "
     "AttributeValue type"),
    ({"a": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"N": "1"}]}}, None,
     "One or more parameter values were invalid: ComparisonOperator BEGINS_WITH is not valid for "
     "N AttributeValue type"),
    ({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "2"}, {"N": "1"}]}},
     None, "The BETWEEN condition was provided a range where the lower bound is greater than the "
           "upper bound"),
    ({"a": {"Value": {"S": "x"}}}, "OR", "ConditionalOperator can only be used when Filter or "
                                         "Expected has two or more elements"),
    (None, "AND", "ConditionalOperator cannot be used without Filter or Expected"),
])
def test_expected_errors(expected: Any, operator: str | None, error: str) -> None:
    assert message(compile_expected, expected, operator) == error


# -- whole requests ------------------------------------------------------------------------------

def test_compile_request_with_expressions() -> None:
    compiled = compile_request("UpdateItem", {
        "UpdateExpression": "SET #a = :v",
        "ConditionExpression": "attribute_exists(#a)",
        "ExpressionAttributeNames": {"#a": "a"},
        "ExpressionAttributeValues": {":v": {"S": "y"}},
    })
    assert compiled.update is not None and compiled.condition is not None
    assert compiled.projection is None and compiled.key_condition is None


def test_compile_request_query_with_legacy_and_expression_parts() -> None:
    compiled = compile_request("Query", {
        "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "h"}]}},
        "FilterExpression": "a = :v",
        "ExpressionAttributeValues": {":v": {"S": "x"}},
    }, TABLE)
    assert compiled.key_condition == KeyCondition("pk", {"S": "h"})
    assert compiled.filter is not None and evaluate(compiled.filter, ITEM)


def test_compile_request_scan_legacy_filter_and_projection() -> None:
    compiled = compile_request("Scan", {
        "ScanFilter": {"a": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "x"}]},
                       "m": {"ComparisonOperator": "NULL"}},
        "ConditionalOperator": "OR",
        "AttributesToGet": ["a"],
    })
    assert compiled.filter is not None and evaluate(compiled.filter, ITEM)
    assert compiled.projection is not None


@pytest.mark.parametrize("operation, request_, error", [
    ("GetItem", {"AttributesToGet": ["a"], "ProjectionExpression": "a"},
     "Can not use both expression and non-expression parameters in the same request: "
     "Non-expression parameters: {AttributesToGet} Expression parameters: "
     "{ProjectionExpression}"),
    ("UpdateItem", {"AttributeUpdates": {}, "Expected": {}, "UpdateExpression": "REMOVE a",
                    "ConditionExpression": "attribute_exists(a)"},
     "Can not use both expression and non-expression parameters in the same request: "
     "Non-expression parameters: {AttributeUpdates, Expected} Expression parameters: "
     "{UpdateExpression, ConditionExpression}"),
    ("Query", {"KeyConditions": {}, "KeyConditionExpression": "pk = :h",
               "ExpressionAttributeValues": {":h": {"S": "h"}}},
     "Can not use both expression and non-expression parameters in the same request: "
     "Non-expression parameters: {KeyConditions} Expression parameters: "
     "{KeyConditionExpression}"),
    ("PutItem", {"ExpressionAttributeNames": {"#a": "a"}},
     "ExpressionAttributeNames can only be specified when using expressions"),
    ("PutItem", {"ExpressionAttributeValues": {":a": {"S": "a"}}},
     "ExpressionAttributeValues can only be specified when using expressions: "
     "ConditionExpression is null"),
    ("UpdateItem", {"ExpressionAttributeValues": {":a": {"S": "a"}}},
     "ExpressionAttributeValues can only be specified when using expressions: UpdateExpression "
     "and ConditionExpression are null"),
    ("GetItem", {"ProjectionExpression": "a", "ExpressionAttributeValues": {":a": {"S": "a"}}},
     "Value provided in ExpressionAttributeValues unused in expressions: keys: {:a}"),
    ("DeleteItem", {"ConditionExpression": "a = :a", "ExpressionAttributeNames": {"#b": "b"},
                    "ExpressionAttributeValues": {":a": {"S": "a"}}},
     "Value provided in ExpressionAttributeNames unused in expressions: keys: {#b}"),
    ("Query", {}, "Either the KeyConditions or KeyConditionExpression parameter must be "
                  "specified in the request."),
    ("PutItem", {"ConditionalOperator": "OR"}, "ConditionalOperator cannot be used without "
                                               "Filter or Expected"),
])
def test_compile_request_errors(operation: str, request_: dict[str, Any], error: str) -> None:
    assert message(compile_request, operation, request_, TABLE) == error


def test_request_errors_are_validation_exceptions() -> None:
    with pytest.raises(ValidationException):
        compile_request("Scan", {"FilterExpression": "a ="})


@pytest.mark.parametrize("operation", [op for op in PARAMETERS if op != "Query"])
def test_a_request_without_expression_parameters_compiles_to_nothing(operation: str) -> None:
    # The shortcut for such requests must give what the full path gives; a parameter that is
    # present (even one that is only wrong alone) must still take the full path.
    expression, legacy_names = PARAMETERS[operation]
    nulls = {name: None for name in (*expression, *legacy_names, "ExpressionAttributeNames",
                                     "ExpressionAttributeValues")}
    assert compile_request(operation, {"TableName": "t", "Key": {}}) == CompiledRequest()
    assert compile_request(operation, {"TableName": "t", **nulls}) == CompiledRequest()
    with pytest.raises(ValidationException, match="ExpressionAttributeNames can only be"):
        compile_request(operation, {"ExpressionAttributeNames": {"#a": "a"}})
    if "ConditionalOperator" in legacy_names:
        with pytest.raises(ValidationException):
            compile_request(operation, {"ConditionalOperator": "AND"})
