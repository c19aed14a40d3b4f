"""Applying a compiled update to an item, with DynamoDB's semantics.

Every operand is read from the item as it was before the update, and every list index names a
position in the original list: `REMOVE a[0], a[1]` removes the first two elements, and
`SET a[1].b = :v, REMOVE a[0]` changes the element that was second. So the update happens in
two steps: map members and in-range list elements change in place, then per list the removals
(highest index first) and the appends (`SET a[9] = :v` past the end appends, in index order).

The input item is never mutated: containers along each written path are copied first (copy on
write), so the result shares untouched sub-values with the input. Both are to be treated as
immutable values.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping

from dynalab import numbers
from dynalab import values as avs
from dynalab.errors import ValidationException
from dynalab.expressions import messages as msg
from dynalab.expressions.evaluate import get_path
from dynalab.expressions.tree import (AV, Action, AddAction, Arith, IfNotExists,
                                      ListAppend, Path, PathElement, RemoveAction, SetAction,
                                      Update, UpdateOperand, Value)

__all__ = ["apply_update", "check_key_untouched"]

Item = dict[str, AV]


def apply_update(update: Update, item: Mapping[str, AV] | None) -> Item:
    """The item after `update` (item None or {} for an item that does not exist yet).

    Raises ValidationException with DynamoDB's messages: a SET operand that does not exist, an
    operand of the wrong type, a path whose parent is missing or not a map / list.
    """
    original: Mapping[str, AV] = item or {}
    resolved = [_resolve(action.value, original) if isinstance(action, SetAction) else None
                for action in update.actions]
    writer = _Writer(original, update.legacy)
    for action, value in zip(update.actions, resolved):
        writer.apply(action, value)
    return writer.finish()


def check_key_untouched(update: Update, schema: avs.KeySchema) -> None:
    """DynamoDB's error when an update (expression or AttributeUpdates) writes a key attribute."""
    for path in update.target_paths:
        head = path.elements[0]
        if head in schema.names:
            raise ValidationException("One or more parameter values were invalid: Cannot update "
                                      f"attribute {head}. This attribute is part of the key")


def _resolve(operand: UpdateOperand, item: Mapping[str, AV]) -> AV:
    if isinstance(operand, Path):
        found = get_path(item, operand.elements)
        if found is None:
            raise ValidationException(msg.MISSING_OPERAND)
        return found
    if isinstance(operand, Value):
        return copy.deepcopy(operand.value)  # trees are cached and shared: never hand out theirs
    if isinstance(operand, IfNotExists):
        # DynamoDB evaluates the default even when the path exists: a missing one is an error.
        default = _resolve(operand.default, item)
        existing = get_path(item, operand.path.elements)
        return default if existing is None else existing
    if isinstance(operand, ListAppend):
        left, right = _resolve(operand.left, item), _resolve(operand.right, item)
        if "L" not in left or "L" not in right:
            raise ValidationException(msg.WRONG_OPERAND_TYPE)
        return {"L": [*left["L"], *right["L"]]}
    return _arithmetic(operand, item)


def _arithmetic(operand: Arith, item: Mapping[str, AV]) -> AV:
    left, right = _resolve(operand.left, item), _resolve(operand.right, item)
    if "N" not in left or "N" not in right:
        raise ValidationException(msg.WRONG_OPERAND_TYPE)
    combine = numbers.add if operand.op == "+" else numbers.subtract
    return {"N": combine(left["N"], right["N"])}


@dataclass
class _ListEdits:
    """Changes to one list that must wait until every index has been resolved."""

    items: list[AV]
    removals: set[int] = field(default_factory=set)
    appends: list[tuple[int, AV]] = field(default_factory=list)


class _Writer:
    def __init__(self, item: Mapping[str, AV], legacy: bool) -> None:
        self.root: Item = dict(item)
        self.owned: set[int] = {id(self.root)}  # containers this update made (safe to change)
        self.lists: dict[int, _ListEdits] = {}
        self.legacy = legacy

    def apply(self, action: Action, value: AV | None) -> None:
        holder = self.parent(action.path.elements)
        last = action.path.elements[-1]
        if isinstance(action, SetAction):
            assert value is not None
            self.put(holder, last, value)
        elif isinstance(action, RemoveAction):
            self.remove(holder, last)
        else:
            existing = _child(holder, last)
            change = _add if isinstance(action, AddAction) else _delete
            result = change(existing, action.value.value, self.mismatch)
            if result is _UNCHANGED:
                return
            if result is None:
                self.remove(holder, last)
            else:
                self.put(holder, last, result)

    def mismatch(self) -> ValidationException:
        return ValidationException(msg.LEGACY_TYPE_MISMATCH if self.legacy
                                   else msg.WRONG_OPERAND_TYPE)

    def parent(self, elements: tuple[PathElement, ...]) -> Any:
        """The container (owned by this update) that holds the path's last element."""
        holder: Any = self.root
        for depth, element in enumerate(elements[:-1]):
            child = _child(holder, element)
            wanted = "L" if isinstance(elements[depth + 1], int) else "M"
            if child is None or wanted not in child:
                raise ValidationException(msg.INVALID_PATH)
            inner = child[wanted]
            if id(inner) not in self.owned:
                inner = list(inner) if wanted == "L" else dict(inner)
                self.owned.add(id(inner))
                holder[element] = {wanted: inner}  # an existing key or in-range index
            holder = inner
        return holder

    def put(self, holder: Any, key: PathElement, value: AV) -> None:
        if isinstance(holder, dict):
            holder[key] = value
        elif isinstance(key, int) and key < len(holder):
            holder[key] = value
        else:
            self.edits(holder).appends.append((int(key), value))

    def remove(self, holder: Any, key: PathElement) -> None:
        if isinstance(holder, dict):
            holder.pop(key, None)
        elif isinstance(key, int) and key < len(holder):
            self.edits(holder).removals.add(key)

    def edits(self, holder: list[AV]) -> _ListEdits:
        return self.lists.setdefault(id(holder), _ListEdits(holder))

    def finish(self) -> Item:
        for edits in self.lists.values():
            for index in sorted(edits.removals, reverse=True):
                del edits.items[index]
            edits.items.extend(value for _, value in sorted(edits.appends, key=lambda p: p[0]))
        return self.root


def _child(holder: Any, key: PathElement) -> AV | None:
    if isinstance(holder, dict):
        return holder.get(key) if isinstance(key, str) else None
    if isinstance(key, int) and key < len(holder):
        return holder[key]  # type: ignore[no-any-return]
    return None


class _Unchanged:
    pass


_UNCHANGED: Any = _Unchanged()
Mismatch = Callable[[], ValidationException]


def _add(existing: AV | None, value: AV, mismatch: Mismatch) -> AV:
    """ADD: numbers add (a missing attribute counts as 0), sets unite, legacy lists append."""
    type_key = avs.type_of(value)
    if existing is None:
        return copy.deepcopy(value)
    if avs.type_of(existing) != type_key:
        raise mismatch()
    if type_key == "N":
        return {"N": numbers.add(existing["N"], value["N"])}
    if type_key == "L":
        return {"L": [*existing["L"], *copy.deepcopy(value["L"])]}
    present = {_member_key(type_key, member) for member in existing[type_key]}
    added = [member for member in value[type_key]
             if _member_key(type_key, member) not in present]
    return {type_key: [*existing[type_key], *added]}


def _delete(existing: AV | None, value: AV, mismatch: Mismatch) -> AV | None:
    """DELETE: remove set members; an emptied set disappears (None). Missing: unchanged."""
    if existing is None:
        return _UNCHANGED  # type: ignore[no-any-return]
    type_key = avs.type_of(value)
    if avs.type_of(existing) != type_key:
        raise mismatch()
    doomed = {_member_key(type_key, member) for member in value[type_key]}
    kept = [member for member in existing[type_key]
            if _member_key(type_key, member) not in doomed]
    return {type_key: kept} if kept else None


def _member_key(set_type: str, member: str) -> str | Decimal | bytes:
    """A set member's identity: numbers by value, binaries by their bytes."""
    if set_type == "NS":
        return numbers.parse(member)
    if set_type == "BS":
        return avs.b_bytes({"B": member})
    return member

