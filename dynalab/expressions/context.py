"""Compiling the expressions of one request against its ExpressionAttributeNames / Values.

A request's expressions share one `ExpressionContext`: it validates the two maps once, compiles
each expression (cached: storage nodes compile the same expression for every write they apply),
remembers which #names and :values were used, and `check_unused()` then raises DynamoDB's error
for any that no expression used.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Mapping

import orjson

from dynalab import values as avs
from dynalab.errors import SerializationException, ValidationException
from dynalab.expressions import keycond
from dynalab.expressions import messages as msg
from dynalab.expressions.lexer import NAME_REF, VALUE_REF, tokenize
from dynalab.expressions.parser import CONDITION, PROJECTION, UPDATE, parse
from dynalab.expressions.tree import AV, Condition, KeyCondition, Projection, Update

__all__ = ["ExpressionContext", "MAX_EXPRESSION_BYTES"]

MAX_EXPRESSION_BYTES = 4096

_NAME_KEY = re.compile(r"#[0-9A-Za-z_]+")
_VALUE_KEY = re.compile(r":[0-9A-Za-z_]+")

_Frozen = tuple[tuple[str, str | None], ...]
_FrozenValues = tuple[tuple[str, bytes | None], ...]


class ExpressionContext:
    """The ExpressionAttributeNames / ExpressionAttributeValues of one request.

    Construction validates both maps (ValidationException with DynamoDB's messages). Then compile
    each expression of the request with `condition`, `update`, `projection` or `key_condition`,
    and finally call `check_unused()`.
    """

    def __init__(self, names: Mapping[str, Any] | None = None,
                 values: Mapping[str, Any] | None = None) -> None:
        self._names = _check_names(names)
        self._values = _check_values(values)
        # Values enter the compile cache's key as canonical JSON (orjson: the standard library's
        # json was ~4% of a router's CPU under Query load, where every key value differs).
        self._frozen = {key: orjson.dumps(av, option=orjson.OPT_SORT_KEYS)
                        for key, av in self._values.items()}
        self._used_names: set[str] = set()
        self._used_values: set[str] = set()

    def condition(self, text: Any, parameter: str = "ConditionExpression") -> Condition:
        """Compile a ConditionExpression (or, with `parameter`, a FilterExpression)."""
        condition: Condition = self._compile(CONDITION, text, parameter)
        return condition

    def update(self, text: Any) -> Update:
        """Compile an UpdateExpression."""
        update: Update = self._compile(UPDATE, text, "UpdateExpression")
        return update

    def projection(self, text: Any) -> Projection:
        """Compile a ProjectionExpression."""
        projection: Projection = self._compile(PROJECTION, text, "ProjectionExpression")
        return projection

    def key_condition(self, text: Any, schema: avs.KeySchema) -> KeyCondition:
        """Compile a Query's KeyConditionExpression for the table's or index's key schema."""
        parameter = "KeyConditionExpression"
        return keycond.from_condition(self._compile(CONDITION, text, parameter), schema)

    def check_unused(self) -> None:
        """Raise DynamoDB's error for names or values that no compiled expression used."""
        for label, defined, used in (("ExpressionAttributeNames", self._names, self._used_names),
                                     ("ExpressionAttributeValues", self._values,
                                      self._used_values)):
            unused = [key for key in defined if key not in used]
            if unused:
                raise ValidationException(f"Value provided in {label} unused in expressions: "
                                          f"keys: {{{', '.join(unused)}}}")

    def _compile(self, kind: str, text: Any, parameter: str) -> Any:
        if not isinstance(text, str):
            raise SerializationException(f"{parameter} must be a string")
        if text == "":
            raise msg.invalid(parameter, msg.EMPTY)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_EXPRESSION_BYTES:
            raise msg.invalid(parameter, msg.TOO_LONG.format(size=size))
        name_refs, value_refs = _refs(text)
        names = tuple((ref, self._names.get(ref)) for ref in name_refs)
        values = tuple((ref, self._frozen.get(ref)) for ref in value_refs)
        result = _compile_cached(kind, text, parameter, names, values)
        self._used_names.update(name_refs)
        self._used_values.update(value_refs)
        return result


@lru_cache(maxsize=8192)
def _refs(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The #names and :values an expression mentions, sorted (the compile cache's key)."""
    tokens = tokenize(text)
    names = sorted({token.text for token in tokens if token.kind == NAME_REF})
    values = sorted({token.text for token in tokens if token.kind == VALUE_REF})
    return tuple(names), tuple(values)


@lru_cache(maxsize=8192)
def _compile_cached(kind: str, text: str, parameter: str, names: _Frozen,
                    values: _FrozenValues) -> Any:
    name_map = {ref: name for ref, name in names if name is not None}
    value_map: dict[str, AV] = {ref: orjson.loads(frozen) for ref, frozen in values
                                if frozen is not None}
    return parse(kind, text, parameter, name_map, value_map)


def _check_names(names: Mapping[str, Any] | None) -> dict[str, str]:
    if names is None:
        return {}
    if not isinstance(names, Mapping):
        raise SerializationException("ExpressionAttributeNames: Expected map or null")
    if not names:
        raise ValidationException("ExpressionAttributeNames must not be empty")
    for key in names:
        if not isinstance(key, str) or not _NAME_KEY.fullmatch(key):
            raise ValidationException("ExpressionAttributeNames contains invalid key: Syntax "
                                      f'error; key: "{key}"')
    for key, name in names.items():
        if not isinstance(name, str):
            raise SerializationException(f"ExpressionAttributeNames: value for key {key} is not "
                                         "a string")
        if not name:
            raise ValidationException("ExpressionAttributeNames contains invalid value: Empty "
                                      f"attribute name for key {key}")
    return dict(names)


def _check_values(values: Mapping[str, Any] | None) -> dict[str, AV]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise SerializationException("ExpressionAttributeValues: Expected map or null")
    if not values:
        raise ValidationException("ExpressionAttributeValues must not be empty")
    for key in values:
        if not isinstance(key, str) or not _VALUE_KEY.fullmatch(key):
            raise ValidationException("ExpressionAttributeValues contains invalid key: Syntax "
                                      f'error; key: "{key}"')
    parsed: dict[str, AV] = {}
    for key, raw in values.items():
        try:
            parsed[key] = avs.parse_value(raw)
        except ValidationException as error:
            raise ValidationException("ExpressionAttributeValues contains invalid value: "
                                      f"{error.message} for key {key}") from None
    return parsed
