"""Compiling the expressions of one request against its ExpressionAttributeNames / Values.

A request's expressions share one `ExpressionContext`: it validates the two maps once, compiles
each expression, remembers which #names and :values were used, and `check_unused()` then raises
DynamoDB's error for any that no expression used.

Clients send the same few expression texts over and over, usually with new :values each time (a
Query's key values, an update's new value). So each text is parsed once per set of #names and
per *types* of its :values, into a template (parser.parse_template) that is cached; a request
then checks its values against the template's rules on contents (BETWEEN's bound order,
attribute_type's type name) and binds them into the tree. A request whose values break a rule,
or whose text does not parse, is parsed in full with its own values, which raises exactly the
error (and picks the same one among several) that parsing it without any cache would.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Mapping

from dynalab import values as avs
from dynalab.errors import ClientError, SerializationException, ValidationException
from dynalab.expressions import keycond
from dynalab.expressions import messages as msg
from dynalab.expressions.bind import Binder, binder
from dynalab.expressions.lexer import NAME_REF, VALUE_REF, tokenize
from dynalab.expressions.parser import (CONDITION, PROJECTION, UPDATE, Template, parse,
                                        parse_template)
from dynalab.expressions.tree import AV, Condition, KeyCondition, Projection, Update

__all__ = ["ExpressionContext", "MAX_EXPRESSION_BYTES"]

MAX_EXPRESSION_BYTES = 4096

_NAME_KEY = re.compile(r"#[0-9A-Za-z_]+")
_VALUE_KEY = re.compile(r":[0-9A-Za-z_]+")

# (ref, what it stands for: a #name's attribute name or a :value's type; None when undefined)
_Frozen = tuple[tuple[str, str | None], ...]
# A template cache key: (kind, text, parameter, #names, :value types).
_Key = tuple[str, str, str, _Frozen, _Frozen]


# A cached parse of one text for given #names and :value types, and what binds values into it.
_Cached = tuple[Template, Binder]


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
        # Only the values' types enter the template cache's key: contents vary per request.
        self._types = {key: avs.type_of(av) for key, av in self._values.items()}
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
        key = self._key(CONDITION, text, "KeyConditionExpression")
        if self._template(key) is None:
            result = keycond.from_condition(self._parse(key), schema)
        else:
            # The key schema checks read only the values' types: once per template and schema.
            result = _key_template(key, schema).bind(self._values)
        self._use(text)
        return result

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
        key = self._key(kind, text, parameter)
        cached = self._template(key)
        result = self._parse(key) if cached is None else cached[1](self._values)
        self._use(text)
        return result

    def _key(self, kind: str, text: Any, parameter: str) -> _Key:
        """Check the text's size and type; its template cache key for this request's maps."""
        if not isinstance(text, str):
            raise SerializationException(f"{parameter} must be a string")
        if text == "":
            raise msg.invalid(parameter, msg.EMPTY)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_EXPRESSION_BYTES:
            raise msg.invalid(parameter, msg.TOO_LONG.format(size=size))
        name_refs, value_refs = _refs(text)
        names = tuple((ref, self._names.get(ref)) for ref in name_refs)
        types = tuple((ref, self._types.get(ref)) for ref in value_refs)
        return kind, text, parameter, names, types

    def _template(self, key: _Key) -> _Cached | None:
        """The cached template, if this request's values pass its checks (None: parse in full)."""
        cached = _template(*key)
        return cached if cached is not None and cached[0].holds(self._values) else None

    def _parse(self, key: _Key) -> Any:
        # No cache: this request's values are part of the outcome (in practice, of its error).
        kind, text, parameter, _, _ = key
        return parse(kind, text, parameter, self._names, self._values)

    def _use(self, text: str) -> None:
        name_refs, value_refs = _refs(text)
        self._used_names.update(name_refs)
        self._used_values.update(value_refs)


@lru_cache(maxsize=8192)
def _refs(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The #names and :values an expression mentions, sorted (the compile cache's key)."""
    tokens = tokenize(text)
    names = sorted({token.text for token in tokens if token.kind == NAME_REF})
    values = sorted({token.text for token in tokens if token.kind == VALUE_REF})
    return tuple(names), tuple(values)


@lru_cache(maxsize=8192)
def _template(kind: str, text: str, parameter: str, names: _Frozen,
              types: _Frozen) -> _Cached | None:
    """The template of a text for these #names and :value types; None (cached as well) when it
    does not parse, so that each such request is parsed once, in full, to report its error."""
    name_map = {ref: name for ref, name in names if name is not None}
    type_map = {ref: type_key for ref, type_key in types if type_key is not None}
    try:
        parsed = parse_template(kind, text, parameter, name_map, type_map)
    except ClientError:
        return None
    return parsed, binder(parsed.tree)


@lru_cache(maxsize=4096)
def _key_template(key: _Key, schema: avs.KeySchema) -> keycond.KeyTemplate:
    """A KeyConditionExpression's template checked against a key schema (raises its errors)."""
    cached = _template(*key)
    assert cached is not None  # callers come here only for a text that parsed
    return keycond.template(cached[0].tree, schema)


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
