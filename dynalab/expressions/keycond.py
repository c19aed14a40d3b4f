"""Query key conditions: from a parsed KeyConditionExpression (or legacy KeyConditions) to the
`KeyCondition` a storage engine range-scans, checked against the table's or index's KeySchema.
"""
from __future__ import annotations

from typing import Sequence

from dynalab import values as avs
from dynalab.errors import ValidationException
from dynalab.expressions.tree import (AV, And, AttributeExists, AttributeNotExists,
                                      AttributeType, BeginsWith, Between, Compare, Condition,
                                      Contains, In, KeyCondition, Not, Operand, Or, Path, Size,
                                      Value)

__all__ = ["from_condition", "from_conditions"]

# KeyConditionExpression comparator -> legacy operator name; flipped for `:v < key`.
_OPS = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NOT_INDEXABLE = frozenset({"NULL", "NOT_NULL", "CONTAINS", "NOT_CONTAINS", "IN", "NE"})

Conditions = dict[str, tuple[str, tuple[AV, ...]]]


def from_condition(condition: Condition, schema: avs.KeySchema) -> KeyCondition:
    """Check a parsed KeyConditionExpression (DynamoDB's restrictions and messages) and shape it."""
    conditions: Conditions = {}
    _collect(condition, conditions)
    return from_conditions(conditions, schema)


def from_conditions(conditions: Conditions, schema: avs.KeySchema) -> KeyCondition:
    """Check per-attribute key conditions {name: (operator, values)} against `schema`."""
    if len(conditions) not in (1, 2):
        raise ValidationException("Conditions can be of length 1 or 2 only")
    for name in _schema_names(schema):
        if name not in conditions:
            raise ValidationException(f"Query condition missed key schema element: {name}")
        if len(conditions) <= 1:
            break
    if any(op in _NOT_INDEXABLE for op, _ in conditions.values()):
        raise ValidationException("Attempted conditional constraint is not an indexable operation")
    hash_op, hash_values = conditions[schema.hash_name]
    if hash_op != "EQ" or (schema.range_name is None and len(conditions) > 1):
        raise ValidationException("Query key condition not supported")
    _check_type(hash_values, schema.hash_type)
    if len(conditions) == 1:
        return KeyCondition(schema.hash_name, hash_values[0])
    assert schema.range_name is not None and schema.range_type is not None
    range_op, range_values = conditions[schema.range_name]
    _check_type(range_values, schema.range_type)
    return KeyCondition(schema.hash_name, hash_values[0], schema.range_name, range_op,
                        range_values)


def _schema_names(schema: avs.KeySchema) -> Sequence[str]:
    return (schema.hash_name,) if schema.range_name is None else (schema.hash_name,
                                                                 schema.range_name)


def _check_type(values: tuple[AV, ...], type_key: str) -> None:
    if any(avs.type_of(value) != type_key for value in values):
        raise ValidationException("One or more parameter values were invalid: Condition parameter "
                                  "type does not match schema type")


def _collect(node: Condition, conditions: Conditions) -> None:
    if isinstance(node, And):
        _collect(node.left, conditions)
        _collect(node.right, conditions)
        return
    _refuse_operators(node)
    name, op, values = _key_condition(node)
    if name in conditions:
        raise ValidationException("KeyConditionExpressions must only contain one condition per key")
    conditions[name] = (op, values)


_REFUSED: dict[type, str] = {Or: "OR", Not: "NOT", In: "IN", AttributeExists: "attribute_exists",
                             AttributeNotExists: "attribute_not_exists",
                             AttributeType: "attribute_type", Contains: "contains"}


def _refuse_operators(node: Condition) -> None:
    word = _REFUSED.get(type(node))
    if word is None and isinstance(node, Compare) and node.op == "<>":
        word = "<>"
    if word is not None:
        raise ValidationException(f"Invalid operator used in KeyConditionExpression: {word}")


def _key_condition(node: Condition) -> tuple[str, str, tuple[AV, ...]]:
    """(key name, operator, values) of one comparison, BETWEEN or begins_with."""
    operands: tuple[Operand, ...]
    if isinstance(node, Between):
        operands, op, word = (node.operand, node.low, node.high), "BETWEEN", "BETWEEN"
    elif isinstance(node, BeginsWith):
        operands, op, word = (node.operand, node.prefix), "BEGINS_WITH", "begins_with"
    else:
        assert isinstance(node, Compare)
        operands, op, word = (node.left, node.right), node.op, ""
    if any(isinstance(operand, Size) for operand in operands):
        raise ValidationException("KeyConditionExpressions cannot contain nested operations")
    paths = [index for index, operand in enumerate(operands) if isinstance(operand, Path)]
    if word and not isinstance(operands[0], Path):
        raise ValidationException(f"Invalid condition in KeyConditionExpression: {word} operator "
                                  "must have the key attribute as its first operand")
    if len(paths) > 1:
        raise ValidationException("Invalid condition in KeyConditionExpression: Multiple "
                                  "attribute names used in one condition")
    if not paths:
        raise ValidationException("Invalid condition in KeyConditionExpression: No key attribute "
                                  "specified")
    path = operands[paths[0]]
    assert isinstance(path, Path)
    if len(path.elements) > 1:
        raise ValidationException("KeyConditionExpressions cannot have conditions on nested "
                                  "attributes")
    values = tuple(operand.value for operand in operands if isinstance(operand, Value))
    if not word:
        op = _OPS[op if paths[0] == 0 else _FLIPPED[op]]
    name = path.elements[0]
    assert isinstance(name, str)
    return name, op, values
