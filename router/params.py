"""Request-parameter checks with DynamoDB's two kinds of messages, and ConsumedCapacity.

DynamoDB checks a request in two passes before anything else happens:

1. Deserialization: a member of the wrong JSON type is a SerializationException (`field_*`).
2. Constraints: every violated length / range / enum / pattern constraint is collected into one
   ValidationException, "2 validation errors detected: Value 'x' at 'tableName' failed to
   satisfy constraint: ...; ..." (`Checks`).

Operation-specific rules ("Some index key attributes are not defined ...") come after both, in
the operation's own module.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from dynalab.errors import SerializationException, ValidationException

__all__ = ["Checks", "field_str", "field_int", "field_bool", "field_map", "field_list",
           "capacity_mode", "consumed", "TABLE_NAME_PATTERN", "MAX_PAGE_BYTES"]

TABLE_NAME_PATTERN = "[a-zA-Z0-9_.-]+"
_TABLE_NAME_RE = re.compile(TABLE_NAME_PATTERN)
MAX_PAGE_BYTES = 1024 * 1024  # a Query/Scan page stops after 1 MB read
_CAPACITY_MODES = ("INDEXES", "TOTAL", "NONE")
_MAX_ERRORS = 10  # DynamoDB lists at most ten


class Checks:
    """Collects constraint violations; `done()` raises them together."""

    def __init__(self) -> None:
        self._errors: list[str] = []

    def violation(self, value: Any, path: str, constraint: str) -> None:
        if len(self._errors) < _MAX_ERRORS:
            self._errors.append(f"Value {_render(value)} at '{path}' failed to satisfy "
                                f"constraint: {constraint}")

    def not_null(self, value: Any, path: str) -> None:
        if value is None:
            self.violation(value, path, "Member must not be null")

    def enum(self, value: str | None, path: str, allowed: tuple[str, ...]) -> None:
        if value is not None and value not in allowed:
            self.violation(value, path,
                           f"Member must satisfy enum value set: [{', '.join(allowed)}]")

    def at_least(self, value: int | None, path: str, low: int) -> None:
        if value is not None and value < low:
            self.violation(value, path, f"Member must have value greater than or equal to {low}")

    def at_most(self, value: int | None, path: str, high: int) -> None:
        if value is not None and value > high:
            self.violation(value, path, f"Member must have value less than or equal to {high}")

    def length(self, value: Any, path: str, low: int | None = None,
               high: int | None = None) -> None:
        if value is None:
            return
        if low is not None and len(value) < low:
            self.violation(value, path, f"Member must have length greater than or equal to {low}")
        if high is not None and len(value) > high:
            self.violation(value, path, f"Member must have length less than or equal to {high}")

    def table_name(self, value: str | None, path: str = "tableName", required: bool = True) -> None:
        if value is None:
            if required:
                self.not_null(value, path)
            return
        if not _TABLE_NAME_RE.fullmatch(value):
            self.violation(value, path,
                           f"Member must satisfy regular expression pattern: {TABLE_NAME_PATTERN}")
        self.length(value, path, 3, 255)

    def done(self) -> None:
        if self._errors:
            count = len(self._errors)
            raise ValidationException(f"{count} validation error{'s' if count > 1 else ''} "
                                      f"detected: {'; '.join(self._errors)}")


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if isinstance(value, list):
        return "'[" + ", ".join(str(v) for v in value) + "]'"
    return f"'{value}'"


# ---------------------------------------------------------------- deserialization (JSON types)

def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE_VALUE" if value else "FALSE_VALUE"
    if isinstance(value, int):
        return "NUMBER_VALUE"
    if isinstance(value, float):
        return "DECIMAL_VALUE"
    return "STRING_VALUE"


def _wrong(value: Any, java_type: str) -> SerializationException:
    if isinstance(value, dict):
        return SerializationException("Start of structure or map found where not expected")
    if isinstance(value, list):
        return SerializationException(f"Unrecognized collection type class java.lang.{java_type}")
    return SerializationException(f"{_kind(value)} cannot be converted to {java_type}")


def field_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _wrong(value, "String")
    return value


def field_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(value, "Integer")
    return value


def field_bool(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        raise SerializationException("Unexpected token received from parser")
    raise _wrong(value, "Boolean")


def field_map(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, list):
        raise SerializationException("Start of list found where not expected")
    raise SerializationException("Unexpected field type")


def field_list(body: Mapping[str, Any], name: str) -> list[Any] | None:
    value = body.get(name)
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, dict):
        raise SerializationException("Start of structure or map found where not expected")
    raise SerializationException("Unexpected field type")


# ---------------------------------------------------------------------------- consumed capacity

def capacity_mode(body: Mapping[str, Any], checks: Checks) -> str:
    """The request's ReturnConsumedCapacity (NONE when absent), checked into `checks`."""
    mode = field_str(body, "ReturnConsumedCapacity")
    checks.enum(mode, "returnConsumedCapacity", _CAPACITY_MODES)
    return mode or "NONE"


def consumed(mode: str, table: str, units: float) -> dict[str, Any] | None:
    """One ConsumedCapacity entry as DynamoDB shapes it; None for NONE. With INDEXES the
    table's own share is broken out (there are no indexes yet, so it is all of it)."""
    if mode == "NONE":
        return None
    entry: dict[str, Any] = {"TableName": table, "CapacityUnits": units}
    if mode == "INDEXES":
        entry["Table"] = {"CapacityUnits": units}
    return entry
