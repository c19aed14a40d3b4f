"""Projecting an item onto document paths (ProjectionExpression, AttributesToGet).

The result keeps exactly what the paths name, nested as in the item: `a.b, a.c` gives
{"a": {"M": {"b": ..., "c": ...}}}; list elements picked by index keep their order and close
up (`l[1], l[3]` of a five-element list gives a two-element list). Paths naming nothing are
left out, and no empty map or list is made for them.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from dynalab.expressions.tree import AV, Path, PathElement

__all__ = ["project"]

# In the trie of requested paths, _WHOLE marks "this value entirely".
_WHOLE: Any = None
_Trie = dict[PathElement, Any]  # element -> sub-trie, or _WHOLE


def project(item: Mapping[str, AV] | None, paths: Iterable[Path]) -> dict[str, AV]:
    """A new item holding only what `paths` name in `item` (shares values with `item`)."""
    if not item:
        return {}
    return _project_members(item, _trie(paths))


def _trie(paths: Iterable[Path]) -> _Trie:
    root: _Trie = {}
    for path in paths:
        node: _Trie = root
        for element in path.elements[:-1]:
            child: _Trie | None = node.get(element, {})
            if child is None:  # _WHOLE: an ancestor is already wanted whole
                break
            node[element] = child
            node = child
        else:
            node[path.elements[-1]] = _WHOLE
    return root


def _project_members(members: Mapping[str, AV], trie: _Trie) -> dict[str, AV]:
    result: dict[str, AV] = {}
    for key, sub in trie.items():
        if isinstance(key, str) and key in members:
            picked = _project_value(members[key], sub)
            if picked is not None:
                result[key] = picked
    return result


def _project_value(value: AV, trie: _Trie | None) -> AV | None:
    if trie is None:  # _WHOLE
        return value
    if "M" in value:
        picked = _project_members(value["M"], trie)
        return {"M": picked} if picked else None
    if "L" in value:
        items = value["L"]
        chosen = [_project_value(items[index], trie[index]) for index in sorted(
            key for key in trie if isinstance(key, int) and key < len(items))]
        kept = [element for element in chosen if element is not None]
        return {"L": kept} if kept else None
    return None
