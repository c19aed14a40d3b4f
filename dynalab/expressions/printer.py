"""Rendering compiled trees back to expression text.

`to_text` writes the placeholders a tree was compiled from (#n, :v), so compiling the text again
with the same ExpressionAttributeNames / Values gives an equal tree. It adds parentheses only
where precedence needs them (OR < AND < NOT < comparisons), never a redundant pair. Trees
compiled from legacy parameters have no placeholders: their values print as `:?`.
"""
from __future__ import annotations

from typing import Any, Callable

from dynalab.expressions.tree import (AddAction, And, Arith, AttributeExists, AttributeNotExists,
                                      AttributeType, BeginsWith, Between, Compare, Contains,
                                      DeleteAction, IfNotExists, In, KeyCondition, ListAppend,
                                      Not, Or, Path, Projection, RemoveAction, SetAction, Size,
                                      Update, Value)

__all__ = ["to_text"]

_OR, _AND, _NOT, _ATOM = range(4)


def to_text(tree: Any) -> str:
    """Expression text for a Condition, Update, Projection, operand or Path."""
    if isinstance(tree, Update):
        return _update(tree)
    if isinstance(tree, Projection):
        return ", ".join(_path(path) for path in tree.paths)
    if isinstance(tree, KeyCondition):
        raise TypeError("a KeyCondition has no placeholders left to print")
    if isinstance(tree, (Path, Value, Size, IfNotExists, ListAppend, Arith)):
        return _operand(tree)
    return _condition(tree)


def _precedence(node: Any) -> int:
    return {Or: _OR, And: _AND, Not: _NOT}.get(type(node), _ATOM)


def _condition(node: Any) -> str:
    if isinstance(node, (And, Or)):
        return _chain(node)
    if isinstance(node, Not):
        inner = node.condition
        text = _condition(inner)
        return f"NOT ({text})" if _precedence(inner) < _NOT else f"NOT {text}"
    return _ATOMS[type(node)](node)


def _chain(node: Any) -> str:
    """a AND b AND c: the left spine in a loop (deep chains), right operands parenthesised when
    they bind no tighter than the operator itself."""
    kind, word, level = type(node), "AND" if isinstance(node, And) else "OR", _precedence(node)
    rights = []
    while isinstance(node, kind):
        rights.append(node.right)
        node = node.left
    parts = [_side(node, level, right=False)]
    parts.extend(_side(right, level, right=True) for right in reversed(rights))
    return f" {word} ".join(parts)


def _side(node: Any, level: int, right: bool) -> str:
    text = _condition(node)
    inner = _precedence(node)
    return f"({text})" if inner < level or (right and inner == level) else text


def _function(name: str, *args: Any) -> str:
    return f"{name}({', '.join(_term(arg) for arg in args)})"


_ATOMS: dict[type, Callable[[Any], str]] = {
    Compare: lambda n: f"{_operand(n.left)} {n.op} {_operand(n.right)}",
    Between: lambda n: f"{_operand(n.operand)} BETWEEN {_operand(n.low)} AND {_operand(n.high)}",
    In: lambda n: f"{_operand(n.operand)} IN ({', '.join(_operand(c) for c in n.candidates)})",
    AttributeExists: lambda n: _function("attribute_exists", n.path),
    AttributeNotExists: lambda n: _function("attribute_not_exists", n.path),
    AttributeType: lambda n: _function("attribute_type", n.operand, n.type),
    BeginsWith: lambda n: _function("begins_with", n.operand, n.prefix),
    Contains: lambda n: _function("contains", n.operand, n.needle),
}


def _operand(node: Any) -> str:
    if isinstance(node, Path):
        return _path(node)
    if isinstance(node, Value):
        return node.ref or ":?"
    if isinstance(node, Size):
        return _function("size", node.operand)
    if isinstance(node, IfNotExists):
        return _function("if_not_exists", node.path, node.default)
    if isinstance(node, ListAppend):
        return _function("list_append", node.left, node.right)
    assert isinstance(node, Arith)
    return f"{_term(node.left)} {node.op} {_term(node.right)}"


def _term(node: Any) -> str:
    return f"({_operand(node)})" if isinstance(node, Arith) else _operand(node)


def _path(path: Path) -> str:
    parts = []
    for index, (element, ref) in enumerate(zip(path.elements, path.refs)):
        if isinstance(element, int):
            parts.append(f"[{element}]")
        else:
            parts.append(("." if index else "") + (ref or element))
    return "".join(parts)


_CLAUSES = {SetAction: "SET", RemoveAction: "REMOVE", AddAction: "ADD", DeleteAction: "DELETE"}


def _update(update: Update) -> str:
    clauses: list[tuple[str, list[str]]] = []
    for action in update.actions:
        word = _CLAUSES[type(action)]
        if not clauses or clauses[-1][0] != word:
            clauses.append((word, []))
        clauses[-1][1].append(_action(action))
    return " ".join(f"{word} {', '.join(parts)}" for word, parts in clauses)


def _action(action: Any) -> str:
    if isinstance(action, SetAction):
        return f"{_path(action.path)} = {_operand(action.value)}"
    if isinstance(action, RemoveAction):
        return _path(action.path)
    return f"{_path(action.path)} {_operand(action.value)}"
