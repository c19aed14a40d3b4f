"""Evaluating compiled conditions against items, with DynamoDB's semantics.

A path that names nothing is *missing*: every comparison with a missing operand is false except
`<>`, which is true (it is NOT `=`); values of different types are never equal and never ordered;
size() of a number, boolean or null is missing too.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from dynalab import values as avs
from dynalab.expressions.tree import (AV, And, AttributeExists, AttributeNotExists,
                                      AttributeType, BeginsWith, Between, Compare, Condition,
                                      Contains, In, KeyCondition, Not, Operand, Or, Path,
                                      PathElement, Value)

__all__ = ["evaluate", "resolve", "get_path", "matches_key_condition"]

Item = Mapping[str, AV]


def evaluate(condition: Condition, item: Item | None) -> bool:
    """Whether `item` (None or {} for an item that does not exist) satisfies `condition`."""
    return _EVALUATORS[type(condition)](condition, item or {})


def get_path(item: Item, elements: tuple[PathElement, ...]) -> AV | None:
    """The value at a document path, or None when any step is missing or of the wrong type."""
    current = item.get(elements[0]) if isinstance(elements[0], str) else None
    for element in elements[1:]:
        if current is None:
            return None
        if isinstance(element, int):
            items = current.get("L")
            current = items[element] if items is not None and element < len(items) else None
        else:
            members = current.get("M")
            current = members.get(element) if members is not None else None
    return current


def resolve(operand: Operand, item: Item) -> AV | None:
    """The value of an operand for `item`; None when missing."""
    if isinstance(operand, Path):
        return get_path(item, operand.elements)
    if isinstance(operand, Value):
        return operand.value
    return _size(resolve(operand.operand, item))


def matches_key_condition(key_condition: KeyCondition, item: Item) -> bool:
    """Whether an item's key attributes satisfy a Query's key condition."""
    hash_value = item.get(key_condition.hash_name)
    if hash_value is None or not avs.equal(hash_value, key_condition.hash_value):
        return False
    if key_condition.range_name is None or key_condition.op is None:
        return True
    value = item.get(key_condition.range_name)
    if value is None:
        return False
    return _RANGE_TESTS[key_condition.op](value, key_condition.values)


def _size(value: AV | None) -> AV | None:
    if value is None:
        return None
    type_key = avs.type_of(value)
    if type_key == "S":
        # DynamoDB counts a string's length in UTF-16 code units (Java's String.length()).
        return {"N": str(len(value["S"].encode("utf-16-le", "surrogatepass")) // 2)}
    if type_key == "B":
        return {"N": str(len(avs.b_bytes(value)))}
    if type_key in ("SS", "NS", "BS", "L", "M"):
        return {"N": str(len(value[type_key]))}
    return None


def _order(a: AV | None, b: AV | None) -> int | None:
    if a is None or b is None:
        return None
    return avs.compare(a, b)


def _equal(a: AV | None, b: AV | None) -> bool:
    return a is not None and b is not None and avs.equal(a, b)


_ORDERINGS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0,
}


def _compare(node: Compare, item: Item) -> bool:
    left, right = resolve(node.left, item), resolve(node.right, item)
    if node.op == "=":
        return _equal(left, right)
    if node.op == "<>":
        return not _equal(left, right)
    order = _order(left, right)
    return order is not None and _ORDERINGS[node.op](order)


def _between(node: Between, item: Item) -> bool:
    value = resolve(node.operand, item)
    low = _order(value, resolve(node.low, item))
    high = _order(value, resolve(node.high, item))
    return low is not None and high is not None and low >= 0 and high <= 0


def _in(node: In, item: Item) -> bool:
    value = resolve(node.operand, item)
    return any(_equal(value, resolve(candidate, item)) for candidate in node.candidates)


def _attribute_type(node: AttributeType, item: Item) -> bool:
    value = resolve(node.operand, item)
    return value is not None and avs.type_of(value) == node.type.value.get("S")


def _begins_with(node: BeginsWith, item: Item) -> bool:
    value, prefix = resolve(node.operand, item), resolve(node.prefix, item)
    return _starts(value, prefix)


def _starts(value: AV | None, prefix: AV | None) -> bool:
    if value is None or prefix is None:
        return False
    type_key = avs.type_of(value)
    if type_key != avs.type_of(prefix):
        return False
    if type_key == "S":
        return bool(value["S"].startswith(prefix["S"]))
    return type_key == "B" and avs.b_bytes(value).startswith(avs.b_bytes(prefix))


def _contains(node: Contains, item: Item) -> bool:
    value, needle = resolve(node.operand, item), resolve(node.needle, item)
    if value is None or needle is None:
        return False
    outer, inner = avs.type_of(value), avs.type_of(needle)
    if outer == "S" and inner == "S":
        return needle["S"] in value["S"]
    if outer == "B" and inner == "B":
        return avs.b_bytes(needle) in avs.b_bytes(value)
    if outer == "L":
        return any(avs.equal(element, needle) for element in value["L"])
    if outer in ("SS", "NS", "BS") and outer == inner + "S":
        return any(avs.equal({inner: element}, needle) for element in value[outer])
    return False


def _chain(node: Any, item: Item, kind: type[And] | type[Or],
           combine: Callable[[Any], bool]) -> bool:
    """a AND b AND c parses as ((a AND b) AND c): walk the left spine in a loop rather than by
    recursion, so long chains stay far from Python's recursion limit; still left to right and
    short-circuiting."""
    rights: list[Any] = []
    while isinstance(node, kind):
        rights.append(node.right)
        node = node.left
    operands = [node, *reversed(rights)]
    return combine(evaluate(operand, item) for operand in operands)


def _range_between(value: AV, bounds: tuple[AV, ...]) -> bool:
    low, high = _order(value, bounds[0]), _order(value, bounds[1])
    return low is not None and high is not None and low >= 0 and high <= 0


def _range_compare(test: Callable[[int], bool]) -> Callable[[AV, tuple[AV, ...]], bool]:
    def check(value: AV, bounds: tuple[AV, ...]) -> bool:
        order = _order(value, bounds[0])
        return order is not None and test(order)
    return check


_RANGE_TESTS: dict[str, Callable[[AV, tuple[AV, ...]], bool]] = {
    "EQ": _range_compare(lambda c: c == 0), "LT": _range_compare(_ORDERINGS["<"]),
    "LE": _range_compare(_ORDERINGS["<="]), "GT": _range_compare(_ORDERINGS[">"]),
    "GE": _range_compare(_ORDERINGS[">="]), "BETWEEN": _range_between,
    "BEGINS_WITH": lambda value, bounds: _starts(value, bounds[0]),
}

_EVALUATORS: dict[type, Callable[[Any, Item], bool]] = {
    Compare: _compare,
    Between: _between,
    In: _in,
    And: lambda node, item: _chain(node, item, And, all),
    Or: lambda node, item: _chain(node, item, Or, any),
    Not: lambda node, item: not evaluate(node.condition, item),
    AttributeExists: lambda node, item: get_path(item, node.path.elements) is not None,
    AttributeNotExists: lambda node, item: get_path(item, node.path.elements) is None,
    AttributeType: _attribute_type,
    BeginsWith: _begins_with,
    Contains: _contains,
}
