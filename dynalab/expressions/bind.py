"""Putting a request's :values into a tree parsed once for their types (parser.parse_template).

`binder(tree)` runs once per cached template and returns a function from a request's values to
that request's tree. The function rebuilds only the nodes on the way to a `Value` and shares the
rest (paths, value-free subtrees) with the template, so binding costs a few node constructions
instead of a parse.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, Callable, Mapping

from dynalab.expressions.tree import AV, Path, Value

__all__ = ["Binder", "binder"]

Binder = Callable[[Mapping[str, AV]], Any]


def binder(tree: Any) -> Binder:
    """A function giving `tree` with each Value node's value taken from the values it is given."""
    bind = _binder(tree)
    return bind if bind is not None else (lambda values: tree)


def _binder(node: Any) -> Binder | None:
    """None when `node` holds no Value: every request shares it as it is."""
    if isinstance(node, Value):
        ref = node.ref
        return lambda values: Value(ref, values[ref])
    if isinstance(node, tuple):
        parts = _part_binders(node)
        return None if parts is None else (lambda values: tuple([bind(values)
                                                                 for bind in parts]))
    if isinstance(node, Path) or not is_dataclass(node) or isinstance(node, type):
        return None
    return _node_binder(node)


def _node_binder(node: Any) -> Binder | None:
    # Tree nodes are frozen dataclasses whose fields are all constructor arguments, in order.
    parts = _part_binders(tuple(getattr(node, item.name) for item in fields(node)))
    if parts is None:
        return None
    cls = type(node)
    if len(parts) == 2:  # most nodes (Compare's op and Update's legacy flag are constant parts)
        first, second = parts
        return lambda values: cls(first(values), second(values))
    if len(parts) == 3:
        first, second, third = parts
        return lambda values: cls(first(values), second(values), third(values))
    return lambda values: cls(*[bind(values) for bind in parts])


def _part_binders(parts: tuple[Any, ...]) -> tuple[Binder, ...] | None:
    binders = [_binder(part) for part in parts]
    if all(bind is None for bind in binders):
        return None
    return tuple(bind if bind is not None else _constant(part)
                 for bind, part in zip(binders, parts))


def _constant(part: Any) -> Binder:
    return lambda values: part
