"""The legacy (pre-expression) request parameters, compiled to the same trees as expressions.

Expected + ConditionalOperator -> Condition; QueryFilter / ScanFilter -> Condition;
KeyConditions -> KeyCondition; AttributeUpdates -> Update; AttributesToGet -> Projection.
Attribute names here are plain top-level names: no reserved words, no paths.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from dynalab import values as avs
from dynalab.errors import SerializationException, ValidationException
from dynalab.expressions import keycond
from dynalab.expressions.tree import (AV, AddAction, And, AttributeExists, AttributeNotExists,
                                      BeginsWith, Between, Compare, Condition, Contains,
                                      DeleteAction, In, KeyCondition, Not, Or, Path, Projection,
                                      RemoveAction, SetAction, Update, Value)

__all__ = ["compile_expected", "compile_filter", "compile_key_conditions",
           "compile_attribute_updates", "compile_attributes_to_get", "OPERATORS"]

_INVALID = "One or more parameter values were invalid: "
OPERATORS = ("IN", "NULL", "BETWEEN", "LT", "NOT_CONTAINS", "EQ", "GT", "NOT_NULL", "NE", "LE",
             "BEGINS_WITH", "GE", "CONTAINS")
_ARGUMENT_COUNTS = {"NULL": (0, 0), "NOT_NULL": (0, 0), "IN": (1, None), "BETWEEN": (2, 2)}
_ORDERED_OPERATORS = ("LE", "LT", "GE", "GT", "CONTAINS", "NOT_CONTAINS", "IN", "BETWEEN")
_TYPES: dict[str, tuple[str, ...]] = {op: ("S", "N", "B") for op in _ORDERED_OPERATORS}
_TYPES.update({"EQ": ("S", "N", "B", "SS", "NS", "BS"), "NE": ("S", "N", "B", "SS", "NS", "BS"),
               "BEGINS_WITH": ("S", "B")})
_COMPARATORS = {"EQ": "=", "NE": "<>", "LE": "<=", "LT": "<", "GE": ">=", "GT": ">"}
_ACTIONS = ("ADD", "PUT", "DELETE")
_ADDABLE = frozenset({"N", "L", "SS", "NS", "BS"})
_DELETABLE = frozenset({"SS", "NS", "BS"})


def compile_expected(expected: Mapping[str, Any] | None,
                     conditional_operator: str | None = None) -> Condition | None:
    """Expected (+ ConditionalOperator) as one condition; None when there is nothing to check."""
    if expected is None:
        _check_operator_alone(conditional_operator)
        return None
    entries = _mapping(expected, "Expected")
    conditions = [_expected_entry(name, _mapping(spec, "Expected")) for name, spec in
                  entries.items()]
    return _combine(conditions, conditional_operator)


def compile_filter(conditions: Mapping[str, Any] | None,
                   conditional_operator: str | None = None) -> Condition | None:
    """QueryFilter or ScanFilter (+ ConditionalOperator) as one condition."""
    if conditions is None:
        _check_operator_alone(conditional_operator)
        return None
    entries = _mapping(conditions, "Filter")
    compiled = [_comparison(name, *_operator_and_arguments(_mapping(spec, "Filter")))
                for name, spec in entries.items()]
    return _combine(compiled, conditional_operator)


def compile_key_conditions(key_conditions: Mapping[str, Any],
                           schema: avs.KeySchema) -> KeyCondition:
    """A Query's KeyConditions, checked against the key schema."""
    entries = _mapping(key_conditions, "KeyConditions")
    shaped: dict[str, tuple[str, tuple[AV, ...]]] = {}
    for name, spec in entries.items():
        op, arguments = _operator_and_arguments(_mapping(spec, "KeyConditions"))
        _check_arguments(op, arguments)
        shaped[name] = (op, tuple(arguments))
    return keycond.from_conditions(shaped, schema)


def compile_attribute_updates(updates: Mapping[str, Any]) -> Update:
    """AttributeUpdates (PUT / ADD / DELETE per attribute) as an update."""
    actions = []
    for name, spec in _mapping(updates, "AttributeUpdates").items():
        spec = _mapping(spec, "AttributeUpdates")
        action = spec.get("Action") or "PUT"
        if action not in _ACTIONS:
            raise _enum_error(action, "attributeUpdates.member.action", _ACTIONS)
        raw = spec.get("Value")
        value = None if raw is None else Value(None, avs.parse_value(raw))
        actions.append(_attribute_update(Path.of(name), action, value))
    return Update(tuple(actions), legacy=True)


def compile_attributes_to_get(names: Sequence[Any]) -> Projection:
    """AttributesToGet as a projection of top-level attributes."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise SerializationException("AttributesToGet: Expected list or null")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise SerializationException("AttributesToGet: Expected a list of strings")
        if name in seen:
            raise ValidationException(f"{_INVALID}Duplicate value in attribute name: {name}")
        seen.add(name)
    return Projection(tuple(Path.of(name) for name in names))


def _attribute_update(path: Path, action: str, value: Value | None) -> Any:
    if value is None:
        if action != "DELETE":
            raise ValidationException(f"{_INVALID}Only DELETE action is allowed when no attribute "
                                      "value is specified")
        return RemoveAction(path)
    type_key = avs.type_of(value.value)
    if action == "DELETE":
        if type_key not in _DELETABLE:
            raise ValidationException(f"{_INVALID}DELETE action with value is not supported for "
                                      f"the type {type_key}")
        return DeleteAction(path, value)
    if action == "ADD":
        if type_key not in _ADDABLE:
            raise ValidationException(f"{_INVALID}ADD action is not supported for the type "
                                      f"{type_key}")
        return AddAction(path, value)
    return SetAction(path, value)


def _expected_entry(name: str, spec: Mapping[str, Any]) -> Condition:
    value, values, exists = spec.get("Value"), spec.get("AttributeValueList"), spec.get("Exists")
    if values is not None and value is not None:
        raise ValidationException(f"{_INVALID}Value and AttributeValueList cannot be used "
                                  f"together for Attribute: {name}")
    if spec.get("ComparisonOperator") is not None:
        if exists is not None:
            raise ValidationException(f"{_INVALID}Exists and ComparisonOperator cannot be used "
                                      f"together for Attribute: {name}")
        op, arguments = _operator_and_arguments(spec)
        if op not in ("NULL", "NOT_NULL") and values is None and value is None:
            raise ValidationException(f"{_INVALID}Value or AttributeValueList must be used with "
                                      f"ComparisonOperator: {op} for Attribute: {name}")
        return _comparison(name, op, arguments)
    if values is not None:
        raise ValidationException(f"{_INVALID}AttributeValueList can only be used with a "
                                  f"ComparisonOperator for Attribute: {name}")
    return _exists_entry(name, value, exists)


def _exists_entry(name: str, value: Any, exists: Any) -> Condition:
    if exists is not None and not isinstance(exists, bool):
        raise SerializationException("Exists: Expected a boolean")
    if exists is not False and value is None:
        said = "null" if exists is None else "true"
        raise ValidationException(f"{_INVALID}Value must be provided when Exists is {said} for "
                                  f"Attribute: {name}")
    if exists is False:
        if value is not None:
            raise ValidationException(f"{_INVALID}Value cannot be used when Exists is false for "
                                      f"Attribute: {name}")
        return AttributeNotExists(Path.of(name))
    return Compare("=", Path.of(name), Value(None, avs.parse_value(value)))


def _operator_and_arguments(spec: Mapping[str, Any]) -> tuple[str, list[AV]]:
    op = spec.get("ComparisonOperator")
    if op not in OPERATORS:
        raise _enum_error(op, "comparisonOperator", OPERATORS)
    raw = spec.get("AttributeValueList")
    if raw is None:
        raw = [] if spec.get("Value") is None else [spec["Value"]]
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise SerializationException("AttributeValueList: Expected list or null")
    return op, [avs.parse_value(item) for item in raw]


def _check_arguments(op: str, arguments: list[AV]) -> None:
    low, high = _ARGUMENT_COUNTS.get(op, (1, 1))
    if len(arguments) < low or (high is not None and len(arguments) > high):
        raise ValidationException(f"{_INVALID}Invalid number of argument(s) for the {op} "
                                  "ComparisonOperator")
    types = [avs.type_of(argument) for argument in arguments]
    if len(set(types)) > 1:
        raise ValidationException(f"{_INVALID}AttributeValues inside AttributeValueList must be "
                                  "of same type")
    for type_key in types:
        if type_key not in _TYPES.get(op, ()):
            raise ValidationException(f"{_INVALID}ComparisonOperator {op} is not valid for "
                                      f"{type_key} AttributeValue type")
    if op == "BETWEEN" and (avs.compare(arguments[0], arguments[1]) or 0) > 0:
        raise ValidationException("The BETWEEN condition was provided a range where the lower "
                                  "bound is greater than the upper bound")


def _comparison(name: str, op: str, arguments: list[AV]) -> Condition:
    _check_arguments(op, arguments)
    path = Path.of(name)
    values = [Value(None, argument) for argument in arguments]
    if op in _COMPARATORS:
        return Compare(_COMPARATORS[op], path, values[0])
    if op == "NULL":
        return AttributeNotExists(path)
    if op == "NOT_NULL":
        return AttributeExists(path)
    if op in ("CONTAINS", "NOT_CONTAINS"):
        contains = Contains(path, values[0])
        return contains if op == "CONTAINS" else Not(contains)
    if op == "BEGINS_WITH":
        return BeginsWith(path, values[0])
    if op == "IN":
        return In(path, tuple(values))
    return Between(path, values[0], values[1])


def _combine(conditions: list[Condition], conditional_operator: str | None) -> Condition | None:
    if conditional_operator not in (None, "AND", "OR"):
        raise _enum_error(conditional_operator, "conditionalOperator", ("OR", "AND"))
    if conditional_operator is not None and len(conditions) < 2:
        raise ValidationException("ConditionalOperator can only be used when Filter or Expected "
                                  "has two or more elements")
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = Or(combined, condition) if conditional_operator == "OR" else And(combined,
                                                                                    condition)
    return combined


def _check_operator_alone(conditional_operator: str | None) -> None:
    if conditional_operator is not None:
        raise ValidationException("ConditionalOperator cannot be used without Filter or Expected")


def _mapping(raw: Any, parameter: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SerializationException(f"{parameter}: Start of structure or map expected")
    return raw


def _enum_error(value: Any, member: str, allowed: Sequence[str]) -> ValidationException:
    return ValidationException(f"1 validation error detected: Value '{value}' at '{member}' "
                               "failed to satisfy constraint: Member must satisfy enum value set: "
                               f"[{', '.join(allowed)}]")
