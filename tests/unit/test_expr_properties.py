"""Properties of the expression language, checked with hypothesis:

* printing a compiled tree and compiling the text again gives the same tree;
* apply_update agrees with a small, independently written reference model;
* whatever text, names and values a client sends, only ClientError subclasses escape.
"""
from __future__ import annotations

import base64
import copy
import itertools
from decimal import Decimal
from typing import Any, Callable

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dynalab import numbers
from dynalab import values as avs
from dynalab.errors import ClientError, ValidationException
from dynalab.expressions import (AddAction, And, Arith, AttributeExists, AttributeNotExists,
                                 AttributeType, BeginsWith, Between, Compare, Contains,
                                 DeleteAction, ExpressionContext, IfNotExists, In, ListAppend,
                                 Not, Or, Path, Projection, RemoveAction, SetAction, Size, Update,
                                 Value, apply_update, evaluate, is_reserved, keycond, project,
                                 to_text)
from dynalab.expressions.parser import CONDITION, PROJECTION, UPDATE, parse

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PLAIN_NAMES = ("a", "b", "c", "d", "e", "f1", "g_2", "h", "xyz", "k")
assert not any(is_reserved(name) for name in PLAIN_NAMES)


# -- attribute values --------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SCALARS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "S": st.text(max_size=6).map(lambda s: {"S": s}),
    "N": st.one_of(st.integers(-1000, 1000).map(lambda i: {"N": str(i)}),
                   st.decimals(-100, 100, places=2).map(lambda d: {"N": str(d)})),
    "B": st.binary(max_size=4).map(lambda b: {"B": _b64(b)}),
    "BOOL": st.booleans().map(lambda b: {"BOOL": b}),
    "NULL": st.just({"NULL": True}),
    "SS": st.sets(st.text(max_size=3), min_size=1, max_size=3).map(lambda s: {"SS": sorted(s)}),
    "NS": st.sets(st.integers(-50, 50), min_size=1, max_size=3).map(
        lambda s: {"NS": [str(i) for i in sorted(s)]}),
    "BS": st.sets(st.binary(min_size=1, max_size=2), min_size=1, max_size=2).map(
        lambda s: {"BS": [_b64(b) for b in sorted(s)]}),
}
RAW_VALUES = st.recursive(st.one_of(*SCALARS.values()), lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda items: {"L": items}),
    st.dictionaries(st.sampled_from(PLAIN_NAMES), inner, max_size=4).map(lambda m: {"M": m}),
), max_leaves=8)
VALUES = RAW_VALUES.map(avs.parse_value)  # canonical, as ExpressionContext stores them
ITEMS = st.dictionaries(st.sampled_from(PLAIN_NAMES), VALUES, max_size=6)
LISTS = st.lists(VALUES, max_size=3).map(lambda items: {"L": items})


def typed(*types: str) -> st.SearchStrategy[dict[str, Any]]:
    """Canonical values of the given types (drawn directly: filtering would starve hypothesis)."""
    choices = [LISTS if t == "L" else SCALARS[t] for t in types]
    return st.one_of(*choices).map(avs.parse_value)


# -- trees with fresh placeholders -------------------------------------------------------------

class Refs:
    """Hands out fresh #name / :value placeholders while hypothesis draws a tree."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def value(self, av: dict[str, Any]) -> Value:
        ref = f":v{next(self.counter)}"
        self.values[ref] = av
        return Value(ref, av)

    def name(self, name: str) -> str:
        ref = f"#n{next(self.counter)}"
        self.names[ref] = name
        return ref


@st.composite
def paths(draw: Any, refs: Refs, first: str | None = None) -> Path:
    elements: list[Any] = [first if first is not None else draw(st.sampled_from(PLAIN_NAMES))]
    for _ in range(draw(st.integers(0, 3))):
        elements.append(draw(st.one_of(st.sampled_from(PLAIN_NAMES), st.integers(0, 4))))
    refs_: list[str | None] = []
    for element in elements:
        aliased = isinstance(element, str) and draw(st.booleans())
        refs_.append(refs.name(element) if aliased else None)
    return Path(tuple(elements), tuple(refs_))


@st.composite
def leaf_conditions(draw: Any, refs: Refs) -> Any:
    path = draw(paths(refs))
    kind = draw(st.integers(0, 8))
    if kind == 0:
        op = draw(st.sampled_from(["=", "<>"]))
        return Compare(op, path, refs.value(draw(VALUES)))
    if kind == 1:
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        operand = Size(path) if draw(st.booleans()) else path
        return Compare(op, operand, refs.value(draw(typed("S", "N", "B"))))
    if kind == 2:
        low, high = sorted(draw(st.lists(st.integers(-99, 99), min_size=2, max_size=2)))
        return Between(path, refs.value({"N": str(low)}), refs.value({"N": str(high)}))
    if kind == 3:
        candidates = draw(st.lists(VALUES, min_size=1, max_size=3))
        return In(path, tuple(refs.value(av) for av in candidates))
    if kind == 4:
        return AttributeExists(path)
    if kind == 5:
        return AttributeNotExists(path)
    if kind == 6:
        type_name = draw(st.sampled_from(["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS",
                                          "BS"]))
        return AttributeType(path, refs.value({"S": type_name}))
    if kind == 7:
        return BeginsWith(path, refs.value(draw(typed("S", "B"))))
    return Contains(path, refs.value(draw(VALUES)))


@st.composite
def conditions(draw: Any) -> tuple[Any, Refs]:
    refs = Refs()
    tree = draw(st.recursive(
        leaf_conditions(refs),
        lambda inner: st.one_of(st.builds(And, inner, inner), st.builds(Or, inner, inner),
                                st.builds(Not, inner)),
        max_leaves=10))
    return tree, refs


Pool = list[tuple[Any, ...]]  # paths that exist in the item an update is drawn for


@st.composite
def pooled_paths(draw: Any, refs: Refs, pool: Pool, extend: bool = False,
                 fresh: int = 3) -> Path:
    """A path that exists in the item but `fresh` times in ten (optionally one step deeper)."""
    if not pool or draw(st.integers(0, 9)) < fresh:
        return draw(paths(refs))  # type: ignore[no-any-return]
    elements = list(draw(st.sampled_from(pool)))
    if extend and draw(st.booleans()):
        elements.append(draw(st.one_of(st.sampled_from(PLAIN_NAMES), st.integers(0, 5))))
    names = [refs.name(e) if isinstance(e, str) and draw(st.booleans()) else None
             for e in elements]
    return Path(tuple(elements), tuple(names))


@st.composite
def update_operands(draw: Any, refs: Refs, pool: Pool, kind: str = "any",
                    depth: int = 0) -> Any:
    """An operand of a SET value; `kind` "N" or "L" when it feeds arithmetic / list_append."""
    choice = draw(st.integers(0, 4 if depth < 2 else 1))
    if choice == 0:
        return draw(pooled_paths(refs, pool, fresh=1))
    if choice == 1:
        types = {"N": ("N",), "L": ("L",)}.get(kind)
        return refs.value(draw(typed(*types) if types else VALUES))
    if choice == 2:
        default = draw(update_operands(refs, pool, kind, depth + 1))
        path = draw(pooled_paths(refs, pool, fresh=5))
        if isinstance(default, Path) and default.elements == path.elements:
            return path
        return IfNotExists(path, default)
    if choice == 3 and kind in ("any", "L"):
        return ListAppend(draw(update_operands(refs, pool, "L", depth + 1)),
                          draw(update_operands(refs, pool, "L", depth + 1)))
    if kind in ("any", "N"):
        return Arith(draw(st.sampled_from("+-")),
                     draw(update_operands(refs, pool, "N", depth + 1)),
                     draw(update_operands(refs, pool, "N", depth + 1)))
    return draw(pooled_paths(refs, pool, fresh=1))


def separate(one: tuple[Any, ...], two: tuple[Any, ...]) -> bool:
    """Whether two update targets neither overlap nor conflict (DynamoDB's rule)."""
    for mine, theirs in zip(one, two):
        if isinstance(mine, int) != isinstance(theirs, int):
            return False
        if mine != theirs:
            return True
    return False


@st.composite
def updates(draw: Any, pool: Pool | None = None) -> tuple[Update, Refs]:
    refs = Refs()
    pool = pool or []
    actions: list[Any] = []
    for clause in draw(st.lists(st.sampled_from(["SET", "REMOVE", "ADD", "DELETE"]), min_size=1,
                                max_size=4, unique=True)):
        for _ in range(draw(st.integers(1, 3))):
            path = draw(pooled_paths(refs, pool, extend=clause in ("SET", "ADD")))
            if not all(separate(path.elements, a.path.elements) for a in actions):
                continue
            if clause == "SET":
                actions.append(SetAction(path, draw(update_operands(refs, pool))))
            elif clause == "REMOVE":
                actions.append(RemoveAction(path))
            elif clause == "ADD":
                actions.append(AddAction(path, refs.value(draw(typed("N", "SS", "NS", "BS")))))
            else:
                actions.append(DeleteAction(path, refs.value(draw(typed("SS", "NS", "BS")))))
    if not actions:
        actions.append(RemoveAction(Path.of("a")))
    return Update(tuple(actions)), refs


@st.composite
def projections(draw: Any) -> tuple[Projection, Refs]:
    refs = Refs()
    heads = draw(st.lists(st.sampled_from(PLAIN_NAMES), min_size=1, max_size=5, unique=True))
    return Projection(tuple(draw(paths(refs, first=head)) for head in heads)), refs


def context(refs: Refs) -> ExpressionContext:
    return ExpressionContext(refs.names or None, refs.values or None)


@SETTINGS
@given(conditions())
def test_condition_print_then_parse_is_identity(drawn: tuple[Any, Refs]) -> None:
    tree, refs = drawn
    compiled = context(refs).condition(to_text(tree))
    assert compiled == tree, to_text(tree)


@SETTINGS
@given(updates())
def test_update_print_then_parse_is_identity(drawn: tuple[Update, Refs]) -> None:
    tree, refs = drawn
    assert context(refs).update(to_text(tree)) == tree, to_text(tree)


@SETTINGS
@given(projections())
def test_projection_print_then_parse_is_identity(drawn: tuple[Projection, Refs]) -> None:
    tree, refs = drawn
    assert context(refs).projection(to_text(tree)) == tree


# -- apply_update against a reference model ------------------------------------------------------

class _Slot:
    """Reference model: a list element that stays in place when removed (tombstone), so list
    indexes keep naming original positions until the end."""

    def __init__(self, value: Any) -> None:
        self.value, self.alive = value, True


def _wrap(av: dict[str, Any]) -> dict[str, Any]:
    if "L" in av:
        return {"L": [_Slot(_wrap(e)) for e in av["L"]], "appends": []}
    if "M" in av:
        return {"M": {k: _wrap(v) for k, v in av["M"].items()}}
    return copy.deepcopy(av)


def _unwrap(av: dict[str, Any]) -> dict[str, Any]:
    if "L" in av:
        kept = [_unwrap(slot.value) for slot in av["L"] if slot.alive]
        kept += [_unwrap(value) for _, value in sorted(av["appends"], key=lambda p: p[0])]
        return {"L": kept}
    if "M" in av:
        return {"M": {k: _unwrap(v) for k, v in av["M"].items()}}
    return av


def _lookup(av: Any, path: tuple[Any, ...]) -> Any:
    for element in path:
        if av is None:
            return None
        if isinstance(element, int):
            av = av["L"][element] if "L" in av and element < len(av["L"]) else None
        else:
            av = av["M"].get(element) if "M" in av else None
    return av


def _reference_value(operand: Any, item: dict[str, Any]) -> dict[str, Any]:
    def need(found: Any) -> Any:
        if found is None:
            raise ValidationException("The provided expression refers to an attribute that does "
                                      "not exist in the item")
        return copy.deepcopy(found)

    if isinstance(operand, Path):
        return need(_lookup({"M": item}, operand.elements))  # type: ignore[no-any-return]
    if isinstance(operand, Value):
        return copy.deepcopy(operand.value)
    if isinstance(operand, IfNotExists):
        fallback = _reference_value(operand.default, item)
        found = _lookup({"M": item}, operand.path.elements)
        return fallback if found is None else copy.deepcopy(found)
    left, right = _reference_value(operand.left, item), _reference_value(operand.right, item)
    key = "L" if isinstance(operand, ListAppend) else "N"
    if key not in left or key not in right:
        raise ValidationException("An operand in the update expression has an incorrect data "
                                  "type")
    if key == "L":
        return {"L": left["L"] + right["L"]}
    total = Decimal(left["N"]) + (Decimal(right["N"]) if operand.op == "+" else
                                  -Decimal(right["N"]))
    return {"N": numbers.render(total)}


def reference_apply(update: Update, item: dict[str, Any]) -> dict[str, Any]:
    values = [_reference_value(a.value, item) if isinstance(a, SetAction) else None
              for a in update.actions]
    root = _wrap({"M": item})
    for action, value in zip(update.actions, values):
        *parents, last = action.path.elements
        holder: Any = root
        for depth, element in enumerate(parents):
            nxt = action.path.elements[depth + 1]
            holder = (holder["L"][element].value if isinstance(element, int)
                      and "L" in holder and element < len(holder["L"])
                      else holder["M"].get(element) if "M" in holder and isinstance(element, str)
                      else None)
            if holder is None or ("L" if isinstance(nxt, int) else "M") not in holder:
                raise ValidationException("The document path provided in the update expression "
                                          "is invalid for update")
        _reference_action(holder, last, action, value)
    return _unwrap(root)["M"]  # type: ignore[no-any-return]


def _reference_action(holder: Any, last: Any, action: Any, value: Any) -> None:
    in_list = isinstance(last, int)
    current = (holder["L"][last].value if in_list and last < len(holder["L"])
               else None if in_list else holder["M"].get(last))

    def store(new: Any) -> None:
        if not in_list:
            holder["M"][last] = _wrap(new)
        elif last < len(holder["L"]):
            holder["L"][last].value = _wrap(new)
        else:
            holder["appends"].append((last, _wrap(new)))

    def drop() -> None:
        if not in_list:
            holder["M"].pop(last, None)
        elif last < len(holder["L"]):
            holder["L"][last].alive = False

    if isinstance(action, SetAction):
        store(value)
    elif isinstance(action, RemoveAction):
        drop()
    else:
        old = None if current is None else _unwrap(current)
        outcome = _reference_add_delete(action, old)
        if outcome == "drop":
            drop()
        elif outcome is not None:
            store(outcome)


def _reference_add_delete(action: Any, old: Any) -> Any:
    new = action.value.value
    kind = avs.type_of(new)
    if old is None:
        return copy.deepcopy(new) if isinstance(action, AddAction) else None
    if avs.type_of(old) != kind:
        raise ValidationException("An operand in the update expression has an incorrect data "
                                  "type")
    if kind == "N":
        return {"N": numbers.render(Decimal(old["N"]) + Decimal(new["N"]))}
    as_set: Callable[[str], Any] = {"NS": Decimal, "BS": base64.b64decode}.get(kind, str)
    if isinstance(action, AddAction):
        have = {as_set(m) for m in old[kind]}
        return {kind: old[kind] + [m for m in new[kind] if as_set(m) not in have]}
    gone = {as_set(m) for m in new[kind]}
    kept = [m for m in old[kind] if as_set(m) not in gone]
    return {kind: kept} if kept else "drop"


def existing_paths(item: dict[str, Any]) -> Pool:
    found: Pool = []

    def walk(av: dict[str, Any], prefix: tuple[Any, ...]) -> None:
        found.append(prefix)
        children = (av["M"].items() if "M" in av else enumerate(av["L"]) if "L" in av else ())
        for key, child in children:
            walk(child, (*prefix, key))

    for name, av in item.items():
        walk(av, (name,))
    return found


@st.composite
def items_and_updates(draw: Any) -> tuple[dict[str, Any], Update]:
    item = draw(st.dictionaries(st.sampled_from(PLAIN_NAMES), VALUES, min_size=2, max_size=6))
    tree, _ = draw(updates(existing_paths(item)))
    return item, tree


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except ValidationException as error:
        return ("error", error.message)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items_and_updates())
def test_apply_update_agrees_with_the_reference_model(drawn: tuple[dict[str, Any],
                                                                   Update]) -> None:
    item, update = drawn
    before = copy.deepcopy(item)
    actual = _outcome(lambda: apply_update(update, item))
    expected = _outcome(lambda: reference_apply(update, item))
    assert item == before
    assert actual[0] == expected[0], (actual, expected)
    if actual[0] == "ok":
        assert avs.equal({"M": actual[1]}, {"M": expected[1]}), (actual, expected)
    else:
        assert actual[1] == expected[1]


# -- nothing but ClientError escapes -------------------------------------------------------------

VOCABULARY = ["a", "b", "name", "#n", "#m", ":v", ":w", "(", ")", "[", "]", "0", "7", ".", ",",
              "=", "<>", "<", "<=", ">", ">=", "+", "-", "AND", "OR", "NOT", "BETWEEN", "IN",
              "SET", "REMOVE", "ADD", "DELETE", "size", "contains", "begins_with",
              "attribute_exists", "attribute_not_exists", "attribute_type", "if_not_exists",
              "list_append", "$", "#", ":", " ", "99999999999999999999", "((", "))"]
TEXTS = st.one_of(
    st.lists(st.sampled_from(VOCABULARY), max_size=25).map(" ".join),
    st.lists(st.sampled_from(VOCABULARY), max_size=25).map("".join),
    st.text(max_size=40),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
RAW_NAMES = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["#n", "#m", "n", "#", "#n-1"]), st.one_of(st.sampled_from(PLAIN_NAMES),
                                                               st.text(max_size=3), JSON),
    max_size=3))
RAW_EXPRESSION_VALUES = st.one_of(st.none(), st.dictionaries(
    st.sampled_from([":v", ":w", "v", ":"]), st.one_of(RAW_VALUES, JSON), max_size=3))


@st.composite
def client_inputs(draw: Any) -> tuple[str, Any, Any, str, dict[str, Any]]:
    """(text, names, values, kind, item): often a valid expression, maybe damaged by one edit."""
    kind = draw(st.sampled_from(["condition", "update", "projection", "key"]))
    item = draw(ITEMS)
    if draw(st.booleans()):
        return draw(TEXTS), draw(RAW_NAMES), draw(RAW_EXPRESSION_VALUES), kind, item
    trees = {"update": updates(existing_paths(item)),
             "projection": projections()}.get(kind, conditions())
    tree, refs = draw(trees)
    text = to_text(tree)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(VOCABULARY)) + text[at + draw(st.integers(0, 4)):]
    names = refs.names or None if draw(st.integers(0, 4)) else draw(RAW_NAMES)
    values = refs.values or None if draw(st.integers(0, 4)) else draw(RAW_EXPRESSION_VALUES)
    return text, names, values, kind, item


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(client_inputs())
def test_only_client_errors_escape(drawn: tuple[str, Any, Any, str, dict[str, Any]]) -> None:
    text, names, values, kind, item = drawn
    try:
        ctx = ExpressionContext(names, values)
        if kind == "condition":
            evaluate(ctx.condition(text), item)
        elif kind == "update":
            updated = apply_update(ctx.update(text), item)
            project(updated, ExpressionContext().projection("a, b[1].c").paths)
        elif kind == "projection":
            project(item, ctx.projection(text).paths)
        else:
            ctx.key_condition(text, avs.KeySchema("a", "S", "b", "N"))
        ctx.check_unused()
    except ClientError:
        pass


# -- the template cache agrees with parsing every request anew ---------------------------------

TYPE_NAMES = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS", "STRING"]
# New contents for a value of each type (S often a type name: attribute_type's check can pass).
SAME_TYPE: dict[str, st.SearchStrategy[Any]] = {
    **SCALARS, "L": LISTS,
    "S": st.one_of(SCALARS["S"], st.sampled_from(TYPE_NAMES).map(lambda name: {"S": name})),
}
KINDS = {"condition": (CONDITION, "ConditionExpression"), "key": (CONDITION,
                                                                  "KeyConditionExpression"),
         "update": (UPDATE, "UpdateExpression"), "projection": (PROJECTION,
                                                                "ProjectionExpression")}
KEY_SCHEMA = avs.KeySchema("a", "S", "b", "N")


@st.composite
def same_types(draw: Any, values: Any) -> Any:
    """`values` with new contents of the same types (what a client's next request sends)."""
    if not isinstance(values, dict):
        return values
    fresh = {}
    for ref, raw in values.items():
        try:
            type_key = avs.type_of(avs.parse_value(raw))
        except ClientError:
            type_key = ""
        fresh[ref] = draw(SAME_TYPE[type_key]) if type_key in SAME_TYPE else raw
    return fresh


def _compiled(kind: str, text: str, names: Any, values: Any) -> Any:
    context = ExpressionContext(names, values)
    if kind == "key":
        return context.key_condition(text, KEY_SCHEMA)
    return {"condition": context.condition, "update": context.update,
            "projection": context.projection}[kind](text)


def _parsed_anew(kind: str, text: str, names: Any, values: Any) -> Any:
    ExpressionContext(names, values)  # the maps' own errors
    parsed = {ref: avs.parse_value(raw) for ref, raw in (values or {}).items()}
    parse_kind, parameter = KINDS[kind]
    tree = parse(parse_kind, text, parameter, names or {}, parsed)
    return keycond.from_condition(tree, KEY_SCHEMA) if kind == "key" else tree


def _result(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except ClientError as error:
        return ("error", type(error), error.message)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_cached_compiles_agree_with_uncached_parses(data: st.DataObject) -> None:
    text, names, values, kind, _ = data.draw(client_inputs())
    assume(text != "")  # refused before any parse
    again = data.draw(same_types(values))
    _result(lambda: _compiled(kind, text, names, values))  # caches these types' template
    expected = _result(lambda: _parsed_anew(kind, text, names, again))
    assert _result(lambda: _compiled(kind, text, names, again)) == expected
