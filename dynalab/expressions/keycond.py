"""Query key conditions: from a parsed KeyConditionExpression (or legacy KeyConditions) to the
`KeyCondition` a storage engine range-scans, checked against the table's or index's KeySchema.

These checks read the values' types but never their contents, so a KeyConditionExpression parsed
once as a template (parser.parse_template) is checked once too: `template` gives a `KeyTemplate`
that turns each request's values into its KeyCondition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from dynalab import values as avs
from dynalab.errors import ValidationException
from dynalab.expressions.tree import (AV, And, AttributeExists, AttributeNotExists,
                                      AttributeType, BeginsWith, Between, Compare, Condition,
                                      Contains, In, KeyCondition, Not, Operand, Or, Path, Size,
                                      Value)

__all__ = ["from_condition", "from_conditions", "template", "KeyTemplate"]

# KeyConditionExpression comparator -> legacy operator name; flipped for `:v < key`.
_OPS = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NOT_INDEXABLE = frozenset({"NULL", "NOT_NULL", "CONTAINS", "NOT_CONTAINS", "IN", "NE"})

Conditions = dict[str, tuple[str, tuple[AV, ...]]]
_ValueConditions = dict[str, tuple[str, tuple[Value, ...]]]


@dataclass(frozen=True)
class KeyTemplate:
    """A checked KeyConditionExpression whose values are still :refs."""

    hash_name: str
    hash_ref: str
    range_name: str | None
    op: str | None
    range_refs: tuple[str, ...]

    def bind(self, values: Mapping[str, AV]) -> KeyCondition:
        """The KeyCondition for a request's values (of the types the template was checked for)."""
        return KeyCondition(self.hash_name, values[self.hash_ref], self.range_name, self.op,
                            tuple([values[ref] for ref in self.range_refs]))


def from_condition(condition: Condition, schema: avs.KeySchema) -> KeyCondition:
    """Check a parsed KeyConditionExpression (DynamoDB's restrictions and messages) and shape it."""
    return from_conditions(_contents(_collect_all(condition)), schema)


def template(condition: Condition, schema: avs.KeySchema) -> KeyTemplate:
    """`from_condition` for a template's tree: the same checks and errors, keeping the :refs."""
    conditions = _collect_all(condition)
    shaped = from_conditions(_contents(conditions), schema)
    range_refs: tuple[str, ...] = ()
    if shaped.range_name is not None:
        range_refs = tuple(_ref(value) for value in conditions[shaped.range_name][1])
    return KeyTemplate(shaped.hash_name, _ref(conditions[shaped.hash_name][1][0]),
                       shaped.range_name, shaped.op, range_refs)


def _collect_all(condition: Condition) -> _ValueConditions:
    conditions: _ValueConditions = {}
    _collect(condition, conditions)
    return conditions


def _contents(conditions: _ValueConditions) -> Conditions:
    return {name: (op, tuple(value.value for value in values))
            for name, (op, values) in conditions.items()}


def _ref(value: Value) -> str:
    assert value.ref is not None  # a KeyConditionExpression's values are all :refs
    return value.ref


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


def _collect(node: Condition, conditions: _ValueConditions) -> None:
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


def _key_condition(node: Condition) -> tuple[str, str, tuple[Value, ...]]:
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
    values = tuple(operand for operand in operands if isinstance(operand, Value))
    if not word:
        op = _OPS[op if paths[0] == 0 else _FLIPPED[op]]
    name = path.elements[0]
    assert isinstance(name, str)
    return name, op, values
