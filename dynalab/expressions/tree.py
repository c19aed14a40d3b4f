"""The compiled form of DynamoDB expressions: immutable trees shared by every evaluator.

One tree type serves both the expression parameters (ConditionExpression, UpdateExpression, ...)
and the legacy ones (Expected, AttributeUpdates, ...), so a storage node has one evaluator.

Trees are frozen dataclasses. Attribute values inside them are wire dicts (`{"S": "x"}`); they
are never mutated, and anything that copies a value out of a tree into an item copies it, because
compiled trees, or their value-free parts, are cached and shared between requests. Placeholders
(`#n`, `:v`) are kept next to what they resolved to so that `to_text` can print a tree back as the
expression it came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

AV = dict[str, Any]
PathElement = Union[str, int]

__all__ = [
    "AV", "PathElement", "Path", "Value", "Size", "IfNotExists", "ListAppend", "Arith",
    "Operand", "UpdateOperand", "Compare", "Between", "In", "And", "Or", "Not",
    "AttributeExists", "AttributeNotExists", "AttributeType", "BeginsWith", "Contains",
    "Condition", "SetAction", "RemoveAction", "AddAction", "DeleteAction", "Action", "Update",
    "Projection", "KeyCondition", "COMPARATORS",
]

COMPARATORS = ("=", "<>", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Path:
    """A document path: map keys (str) and list indexes (int), e.g. a.b[2] -> ("a", "b", 2).

    `refs` holds, per element, the #placeholder it was written as (None for a plain name or an
    index); it only matters for printing. Use `elements` for meaning.
    """

    elements: tuple[PathElement, ...]
    refs: tuple[str | None, ...] = field(default=(), compare=True)

    def __post_init__(self) -> None:
        if not self.refs:
            object.__setattr__(self, "refs", (None,) * len(self.elements))

    @classmethod
    def of(cls, *elements: PathElement) -> Path:
        return cls(tuple(elements))

    def __str__(self) -> str:
        """DynamoDB's rendering in messages: [a, b, [2]]."""
        return "[" + ", ".join(f"[{e}]" if isinstance(e, int) else e for e in self.elements) + "]"


@dataclass(frozen=True)
class Value:
    """An :placeholder from ExpressionAttributeValues (ref None when compiled from a legacy
    parameter), with the attribute value it stands for."""

    ref: str | None
    value: AV


@dataclass(frozen=True)
class Size:
    """size(operand): a number, or missing when the operand has no size (N, BOOL, NULL)."""

    operand: Operand


@dataclass(frozen=True)
class IfNotExists:
    """if_not_exists(path, default) in a SET value."""

    path: Path
    default: UpdateOperand


@dataclass(frozen=True)
class ListAppend:
    """list_append(left, right) in a SET value."""

    left: UpdateOperand
    right: UpdateOperand


@dataclass(frozen=True)
class Arith:
    """left + right or left - right in a SET value."""

    op: str
    left: UpdateOperand
    right: UpdateOperand


Operand = Union[Path, Value, Size]
UpdateOperand = Union[Path, Value, IfNotExists, ListAppend, Arith]


@dataclass(frozen=True)
class Compare:
    """left op right, op one of = <> < <= > >=."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True)
class In:
    operand: Operand
    candidates: tuple[Operand, ...]


@dataclass(frozen=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class AttributeExists:
    path: Path


@dataclass(frozen=True)
class AttributeNotExists:
    path: Path


@dataclass(frozen=True)
class AttributeType:
    """attribute_type(operand, :t) where :t is an S value naming a type (S, N, B, SS, ...)."""

    operand: Operand
    type: Value


@dataclass(frozen=True)
class BeginsWith:
    operand: Operand
    prefix: Operand


@dataclass(frozen=True)
class Contains:
    operand: Operand
    needle: Operand


Condition = Union[Compare, Between, In, And, Or, Not, AttributeExists, AttributeNotExists,
                  AttributeType, BeginsWith, Contains]


@dataclass(frozen=True)
class SetAction:
    path: Path
    value: UpdateOperand


@dataclass(frozen=True)
class RemoveAction:
    path: Path


@dataclass(frozen=True)
class AddAction:
    """ADD path :v. A legacy AttributeUpdates ADD may also carry an L value (it appends)."""

    path: Path
    value: Value


@dataclass(frozen=True)
class DeleteAction:
    path: Path
    value: Value


Action = Union[SetAction, RemoveAction, AddAction, DeleteAction]


@dataclass(frozen=True)
class Update:
    """An update: its actions in the order written (each clause's actions are contiguous).

    `legacy` marks trees compiled from AttributeUpdates, whose type errors DynamoDB words
    differently ("Type mismatch for attribute to update").
    """

    actions: tuple[Action, ...]
    legacy: bool = False

    @property
    def target_paths(self) -> tuple[Path, ...]:
        """The paths the update writes or removes (for ReturnValues UPDATED_OLD / UPDATED_NEW)."""
        return tuple(action.path for action in self.actions)


@dataclass(frozen=True)
class Projection:
    """The document paths a read returns."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class KeyCondition:
    """A Query's key condition, in the shape a storage engine range-scans.

    `op` is None (hash key only) or one of EQ LT LE GT GE BETWEEN BEGINS_WITH; `values` holds the
    range bound(s): one value, or two for BETWEEN (low, high).
    """

    hash_name: str
    hash_value: AV
    range_name: str | None = None
    op: str | None = None
    values: tuple[AV, ...] = ()
