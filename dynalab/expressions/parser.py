"""Recursive-descent parser for condition, update and projection expressions.

The parser resolves #names and :values while it parses and checks DynamoDB's rules on the way.
Syntax errors raise at once (DynamoDB reports the offending token and the text near it); the
other errors are collected by category and the most important category is reported after the
whole expression has been read, which is the order DynamoDB reports them in when an expression
has several problems (e.g. a redundant pair of parentheses wins over an undefined :value).

Grammar (keywords case-insensitive, function names case-sensitive):

    condition  := or
    or         := and (OR and)*
    and        := not (AND not)*
    not        := NOT not | predicate
    predicate  := operand (comparator operand | BETWEEN operand AND operand
                           | IN '(' operand (',' operand)* ')')?
    operand    := path | :value | name '(' operand (',' operand)* ')' | '(' or ')'
    path       := (name | #name) ('.' (name | #name) | '[' digits ']')*

    update     := (SET set (',' set)* | REMOVE path (',' path)* | ADD path :value (',' ...)*
                   | DELETE path :value (',' ...)*)+
    set        := path '=' value
    value      := term (('+' | '-') term)?
    term       := path | :value | name '(' term (',' term)* ')' | '(' value ')'

    projection := path (',' path)*

A predicate without an operator must be a boolean function call; a parenthesised group may hold
either a condition or an operand, and what it holds decides where it may be used.

Templates: most requests send the same expression text with new :values each time (a Query's
key values, an update's new value), so `parse_template` parses against the values' types alone.
Every parsing decision depends only on those types, except two rules on the values' contents
(BETWEEN's bound order, attribute_type's type name); a template returns those unapplied, as
`ValueCheck`s to run against each request's values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn

from dynalab import values as avs
from dynalab.expressions import messages as msg
from dynalab.expressions.lexer import (EOF, INT, NAME, NAME_REF, PUNCT, VALUE_REF, Token, near,
                                       tokenize)
from dynalab.expressions.reserved import is_reserved
from dynalab.expressions.tree import (AV, COMPARATORS, AddAction, And, Arith, AttributeExists,
                                      AttributeNotExists, AttributeType, BeginsWith, Between,
                                      Compare, Contains, DeleteAction, IfNotExists, In,
                                      ListAppend, Not, Or, Path, Projection, RemoveAction,
                                      SetAction, Size, Update, Value)

__all__ = ["CONDITION", "UPDATE", "PROJECTION", "parse", "parse_template", "Template",
           "ValueCheck"]

CONDITION = "condition"
UPDATE = "update"
PROJECTION = "projection"

MAX_OPERATORS = 300
MAX_PATH_DEPTH = 32
MAX_IN_OPERANDS = 100
MAX_NESTING = 100
MAX_LIST_INDEX = 2**31 - 1

# Error categories, reported in the order DynamoDB checks them (first found within a category).
_PARENS, _UNKNOWN_FUNCTION, _MISUSED, _RESERVED, _UNDEFINED, _UNDEFINED_VALUE = range(6)
_SECTION, _OVERLAP, _CONFLICT, _OPERAND, _COUNT, _DISTINCT, _FUNCTION = range(6, 13)
_ORDER = {
    CONDITION: (_PARENS, _UNKNOWN_FUNCTION, _MISUSED, _RESERVED, _UNDEFINED, _COUNT, _DISTINCT,
                _FUNCTION),
    UPDATE: (_RESERVED, _UNKNOWN_FUNCTION, _SECTION, _UNDEFINED, _UNDEFINED_VALUE, _OVERLAP,
             _CONFLICT, _OPERAND, _COUNT, _DISTINCT, _FUNCTION),
    PROJECTION: (_RESERVED, _UNDEFINED, _OVERLAP, _CONFLICT),
}
_KEYWORDS = {
    CONDITION: frozenset({"AND", "OR", "NOT", "BETWEEN", "IN"}),
    UPDATE: frozenset({"SET", "REMOVE", "ADD", "DELETE"}),
    PROJECTION: frozenset(),
}

_BOOLEAN_FUNCTIONS = {"attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2,
                      "begins_with": 2, "contains": 2}
_CONDITION_FUNCTIONS = {**_BOOLEAN_FUNCTIONS, "size": 1}
_UPDATE_FUNCTIONS = {"if_not_exists": 2, "list_append": 2}
_ORDERED = frozenset({"S", "N", "B"})
_SIZED = frozenset({"S", "B", "SS", "NS", "BS", "L", "M"})
_VALID_TYPE_NAMES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
_ADDABLE = frozenset({"N", "SS", "NS", "BS"})
_DELETABLE = frozenset({"SS", "NS", "BS"})


class _Invalid:
    """Stands in for a node that already produced an error, so parsing can go on."""


_INVALID: Any = _Invalid()


@dataclass(frozen=True)
class _Call:
    """A function call whose meaning depends on where it is used (condition or operand)."""

    name: str
    args: tuple[Any, ...]


_CONDITION_TYPES = (Compare, Between, In, And, Or, Not, AttributeExists, AttributeNotExists,
                    AttributeType, BeginsWith, Contains)


# A rule on the contents of :values: DynamoDB's message when the values break it, else None.
ValueRule = Callable[..., str | None]


@dataclass(frozen=True)
class ValueCheck:
    """A rule on the contents of some :values that a template left for each request to apply."""

    rule: ValueRule
    refs: tuple[str, ...]

    def holds(self, values: Mapping[str, AV]) -> bool:
        return self.rule(*[values[ref] for ref in self.refs]) is None


@dataclass(frozen=True)
class Template:
    """An expression parsed against the types of its :values (see `parse_template`)."""

    tree: Any  # its Value nodes hold placeholders ({type: None}), to be replaced per request
    checks: tuple[ValueCheck, ...]

    def holds(self, values: Mapping[str, AV]) -> bool:
        """Whether `values` pass every rule on contents (then the tree with them is `parse`'s)."""
        return all(check.holds(values) for check in self.checks)


def parse(kind: str, text: str, parameter: str, names: Mapping[str, str],
          values: Mapping[str, AV]) -> Any:
    """Parse `text` as a `kind` expression (CONDITION, UPDATE or PROJECTION) of request parameter
    `parameter`; returns a Condition, Update or Projection. Raises ValidationException."""
    return _Parser(kind, text, parameter, names, values).run()


def parse_template(kind: str, text: str, parameter: str, names: Mapping[str, str],
                   types: Mapping[str, str]) -> Template:
    """`parse` for :values known only by type ({":v": "S"}); the rules on their contents are
    returned unapplied. When every check holds for some values, `parse` with those values gives
    the template's tree with them in place of the placeholders.

    Raises ValidationException too, but its message may name a placeholder instead of a value:
    to report an error, parse again with the request's values.
    """
    placeholders = {ref: {type_key: None} for ref, type_key in types.items()}
    parser = _Parser(kind, text, parameter, names, placeholders, deferred=[])
    tree = parser.run()
    return Template(tree, tuple(parser.deferred or ()))


class _Parser:
    def __init__(self, kind: str, text: str, parameter: str, names: Mapping[str, str],
                 values: Mapping[str, AV], deferred: list[ValueCheck] | None = None) -> None:
        self.kind = kind
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.parameter = parameter
        self.names = names
        self.values = values
        self.keywords = _KEYWORDS[kind]
        self.errors: dict[int, str] = {}
        self.operators = 0
        self.depth = 0
        self.groups: set[tuple[int, int]] = set()
        self.deferred = deferred  # None: apply rules on contents now (see check_contents)

    def run(self) -> Any:
        result = {CONDITION: self.condition_expression, UPDATE: self.update_expression,
                  PROJECTION: self.projection_expression}[self.kind]()
        self.raise_collected()
        return result

    # -- tokens ------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != EOF:
            self.pos += 1
        return token

    def at(self, punct: str) -> bool:
        return self.tok.kind == PUNCT and self.tok.text == punct

    def at_keyword(self, word: str) -> bool:
        return self.tok.kind == NAME and self.tok.text.upper() == word

    def at_call(self) -> bool:
        following = self.tokens[self.pos + 1] if self.tok.kind != EOF else self.tok
        return (self.tok.kind == NAME and following.kind == PUNCT and following.text == "("
                and self.tok.text.upper() not in self.keywords)

    def expect(self, punct: str) -> Token:
        if not self.at(punct):
            self.fail()
        return self.advance()

    def fail(self) -> NoReturn:
        raise msg.syntax(self.parameter, self.tok.text, near(self.text, self.tokens, self.pos))

    # -- bookkeeping ---------------------------------------------------------------------------

    def error(self, category: int, message: str) -> None:
        self.errors.setdefault(category, message)

    def raise_collected(self) -> None:
        for category in _ORDER[self.kind]:
            if category in self.errors:
                raise msg.invalid(self.parameter, self.errors[category])

    def check_contents(self, category: int, rule: ValueRule, *operands: Value) -> None:
        """Apply a rule on the operands' contents, or leave it to each request (template)."""
        if self.deferred is not None:
            refs = tuple(operand.ref for operand in operands if operand.ref is not None)
            assert len(refs) == len(operands)  # parsed values always come from a :ref
            self.deferred.append(ValueCheck(rule, refs))
            return
        message = rule(*[operand.value for operand in operands])
        if message is not None:
            self.error(category, message)

    def count_operator(self) -> None:
        # Fail fast: counting while descending also bounds the work on hostile input.
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise msg.invalid(self.parameter, msg.TOO_MANY_OPERATORS.format(count=self.operators))

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise msg.invalid(self.parameter, msg.NESTING_TOO_DEEP.format(depth=self.depth))

    def leave(self) -> None:
        self.depth -= 1

    # -- paths and values ----------------------------------------------------------------------

    def path(self) -> Path:
        elements: list[str | int] = []
        refs: list[str | None] = []
        self.path_name(elements, refs)
        while True:
            if self.at("."):
                self.advance()
                self.path_name(elements, refs)
            elif self.at("["):
                self.advance()
                elements.append(self.list_index())
                refs.append(None)
                self.expect("]")
            else:
                break
        if len(elements) > MAX_PATH_DEPTH:
            raise msg.invalid(self.parameter, msg.PATH_TOO_DEEP.format(depth=len(elements)))
        return Path(tuple(elements), tuple(refs))

    def path_name(self, elements: list[str | int], refs: list[str | None]) -> None:
        token = self.tok
        if token.kind == NAME and token.text.upper() not in self.keywords:
            if is_reserved(token.text):
                self.error(_RESERVED, msg.RESERVED.format(name=token.text))
            elements.append(token.text)
            refs.append(None)
        elif token.kind == NAME_REF:
            name = self.names.get(token.text)
            if name is None:
                self.error(_UNDEFINED, msg.UNDEFINED_NAME.format(ref=token.text))
                name = token.text
            elements.append(name)
            refs.append(token.text)
        else:
            self.fail()
        self.advance()

    def list_index(self) -> int:
        token = self.tok
        if token.kind != INT:
            self.fail()
        self.advance()
        # Check the length first: int() of a huge digit string is slow (and limited) in Python.
        if len(token.text.lstrip("0")) > 10 or int(token.text) > MAX_LIST_INDEX:
            raise msg.invalid(self.parameter, msg.INDEX_RANGE.format(index=token.text))
        return int(token.text)

    def value(self) -> Any:
        token = self.advance()
        av = self.values.get(token.text)
        if av is None:
            category = _UNDEFINED_VALUE if self.kind == UPDATE else _UNDEFINED
            self.error(category, msg.UNDEFINED_VALUE.format(ref=token.text))
            return _INVALID
        return Value(token.text, av)

    # -- condition expressions -----------------------------------------------------------------

    def condition_expression(self) -> Any:
        node = self.or_()
        if self.tok.kind != EOF:
            self.fail()
        return self.as_condition(node)

    def or_(self) -> Any:
        left = self.and_()
        while self.at_keyword("OR"):
            left = self.as_condition(left)
            self.count_operator()
            self.advance()
            left = Or(left, self.as_condition(self.and_()))
        return left

    def and_(self) -> Any:
        left = self.not_()
        while self.at_keyword("AND"):
            left = self.as_condition(left)
            self.count_operator()
            self.advance()
            left = And(left, self.as_condition(self.not_()))
        return left

    def not_(self) -> Any:
        if not self.at_keyword("NOT"):
            return self.predicate()
        self.count_operator()
        self.advance()
        self.enter()
        inner = self.as_condition(self.not_())
        self.leave()
        return Not(inner)

    def predicate(self) -> Any:
        left = self.operand()
        if isinstance(left, _CONDITION_TYPES):
            return left
        token = self.tok
        if token.kind == PUNCT and token.text in COMPARATORS:
            self.count_operator()
            self.advance()
            return self.compare(token.text, left, self.operand())
        if self.at_keyword("BETWEEN"):
            return self.between(left)
        if self.at_keyword("IN"):
            return self.in_(left)
        return left

    def operand(self) -> Any:
        token = self.tok
        if self.at("("):
            return self.group()
        if token.kind == VALUE_REF:
            return self.value()
        if self.at_call():
            return self.call(self.operand_argument)
        if token.kind in (NAME, NAME_REF):
            return self.path()
        self.fail()

    def operand_argument(self) -> Any:
        return self.as_operand(self.operand())

    def group(self) -> Any:
        opened = self.pos
        self.advance()
        self.enter()
        inner = self.or_()
        closed = self.pos
        self.expect(")")
        self.leave()
        # ((x)) is refused; (x) AND (y) or ((x) AND y) are fine.
        if (opened + 1, closed - 1) in self.groups:
            self.error(_PARENS, msg.REDUNDANT_PARENS)
        self.groups.add((opened, closed))
        return inner

    def call(self, argument: Any) -> _Call:
        name = self.advance().text
        self.advance()  # (
        self.count_operator()
        self.enter()
        args = [argument()]
        while self.at(","):
            self.advance()
            args.append(argument())
        self.expect(")")
        self.leave()
        return _Call(name, tuple(args))

    def as_condition(self, node: Any) -> Any:
        if isinstance(node, _Call):
            return self.call_as_condition(node)
        if isinstance(node, (Path, Value, Size)):
            self.fail()  # an operand where a condition belongs: DynamoDB's syntax error
        return node

    def as_operand(self, node: Any) -> Any:
        if isinstance(node, _Call):
            return self.call_as_operand(node)
        if isinstance(node, _CONDITION_TYPES):
            self.fail()
        return node

    def call_as_condition(self, call: _Call) -> Any:
        if call.name == "size":
            self.error(_MISUSED, msg.MISUSED_FUNCTION.format(name=call.name))
            return _INVALID
        if call.name not in _BOOLEAN_FUNCTIONS:
            return self.foreign_function(call)
        if not self.arity_ok(call, _BOOLEAN_FUNCTIONS[call.name]):
            return _INVALID
        return self.boolean_function(call.name, *call.args)

    def call_as_operand(self, call: _Call) -> Any:
        if call.name == "size":
            return self.size(call)
        if call.name in _BOOLEAN_FUNCTIONS:
            self.error(_MISUSED, msg.MISUSED_FUNCTION.format(name=call.name))
            return _INVALID
        return self.foreign_function(call)

    def foreign_function(self, call: _Call) -> Any:
        known = _UPDATE_FUNCTIONS if self.kind == CONDITION else _CONDITION_FUNCTIONS
        template = msg.NOT_IN_CONDITION if self.kind == CONDITION else msg.NOT_IN_UPDATE
        if call.name in known:
            self.error(_UNKNOWN_FUNCTION, template.format(name=call.name))
        else:
            self.error(_UNKNOWN_FUNCTION, msg.UNKNOWN_FUNCTION.format(name=call.name))
        return _INVALID

    def arity_ok(self, call: _Call, arity: int) -> bool:
        if len(call.args) != arity:
            self.error(_COUNT, msg.OPERAND_COUNT.format(name=call.name, count=len(call.args)))
            return False
        return not any(arg is _INVALID for arg in call.args)

    def boolean_function(self, name: str, first: Any, second: Any = None) -> Any:
        if name in ("attribute_exists", "attribute_not_exists"):
            if not isinstance(first, Path):
                self.error(_FUNCTION, msg.NEEDS_PATH.format(name=name))
                return _INVALID
            exists = name == "attribute_exists"
            return AttributeExists(first) if exists else AttributeNotExists(first)
        if name == "begins_with":
            self.check_types(name, (first, second), _ORDERED - {"N"})
        self.check_distinct(name, first, (second,))
        if name == "attribute_type":
            return self.attribute_type(first, second)
        return BeginsWith(first, second) if name == "begins_with" else Contains(first, second)

    def attribute_type(self, operand: Any, type_name: Any) -> Any:
        if not isinstance(type_name, Value) or avs.type_of(type_name.value) != "S":
            self.error(_FUNCTION, msg.OPERAND_TYPE.format(name="attribute_type",
                                                          type=_type_text(type_name)))
            return _INVALID
        self.check_contents(_FUNCTION, _type_name_rule, type_name)
        return AttributeType(operand, type_name)

    def size(self, call: _Call) -> Any:
        if not self.arity_ok(call, 1):
            return _INVALID
        operand = call.args[0]
        type_key = _static_type(operand)
        if type_key is not None and type_key not in _SIZED:
            self.error(_FUNCTION, msg.OPERAND_TYPE.format(name="size", type=type_key))
        return Size(operand)

    def compare(self, op: str, left: Any, right: Any) -> Any:
        left, right = self.as_operand(left), self.as_operand(right)
        if left is _INVALID or right is _INVALID:
            return _INVALID
        if op not in ("=", "<>"):
            self.check_types(op, (left, right), _ORDERED)
        self.check_distinct(op, left, (right,))
        return Compare(op, left, right)

    def between(self, left: Any) -> Any:
        self.count_operator()
        self.advance()
        operand = self.as_operand(left)
        low = self.operand_argument()
        if not self.at_keyword("AND"):
            self.fail()
        self.advance()
        high = self.operand_argument()
        if _INVALID in (operand, low, high):
            return _INVALID
        self.check_types("BETWEEN", (operand, low, high), _ORDERED)
        self.check_distinct("BETWEEN", operand, (low, high))
        if isinstance(low, Value) and isinstance(high, Value):
            self.check_bounds(low, high)
        return Between(operand, low, high)

    def check_bounds(self, low: Value, high: Value) -> None:
        if avs.type_of(low.value) != avs.type_of(high.value):
            self.error(_FUNCTION, msg.BETWEEN_TYPES.format(low=msg.av_text(low.value),
                                                           high=msg.av_text(high.value)))
        else:
            self.check_contents(_FUNCTION, _bounds_order_rule, low, high)

    def in_(self, left: Any) -> Any:
        self.count_operator()
        self.advance()
        operand = self.as_operand(left)
        self.expect("(")
        candidates = [self.operand_argument()]
        while self.at(","):
            self.advance()
            candidates.append(self.operand_argument())
        self.expect(")")
        if operand is _INVALID or _INVALID in candidates:
            return _INVALID
        if len(candidates) > MAX_IN_OPERANDS:
            self.error(_FUNCTION, msg.IN_TOO_MANY.format(count=len(candidates)))
        self.check_distinct("IN", operand, candidates)
        return In(operand, tuple(candidates))

    def check_types(self, name: str, operands: Any, allowed: frozenset[str]) -> None:
        for operand in operands:
            type_key = _static_type(operand)
            if type_key is not None and type_key not in allowed:
                self.error(_FUNCTION, msg.OPERAND_TYPE.format(name=name, type=type_key))
                return

    def check_distinct(self, name: str, first: Any, others: Any) -> None:
        if not isinstance(first, Path):
            return
        for other in others:
            if isinstance(other, Path) and other.elements == first.elements:
                self.error(_DISTINCT, msg.DISTINCT.format(name=name, path=first))
                return

    # -- update expressions --------------------------------------------------------------------

    def update_expression(self) -> Any:
        actions: list[Any] = []
        seen: set[str] = set()
        while True:
            if not (self.tok.kind == NAME and self.tok.text.upper() in self.keywords):
                self.fail()
            section = self.advance().text.upper()
            if section in seen:
                self.error(_SECTION, msg.SECTION_TWICE.format(section=section))
            seen.add(section)
            actions.append(self.update_action(section))
            while self.at(","):
                self.advance()
                actions.append(self.update_action(section))
            if self.tok.kind == EOF:
                break
        self.check_overlaps([action.path for action in actions if action is not _INVALID])
        return Update(tuple(actions))

    def update_action(self, section: str) -> Any:
        path = self.path()
        if section == "REMOVE":
            return RemoveAction(path)
        if section == "SET":
            self.expect("=")
            return SetAction(path, self.set_value())
        if self.tok.kind != VALUE_REF:
            self.fail()
        value = self.value()
        if value is _INVALID:
            return SetAction(path, value)  # keeps the path for the overlap checks
        allowed = _ADDABLE if section == "ADD" else _DELETABLE
        type_key = avs.type_of(value.value)
        if type_key not in allowed:
            self.error(_OPERAND, msg.ACTION_OPERAND_TYPE.format(action=section,
                                                                 type=msg.type_word(type_key)))
        return AddAction(path, value) if section == "ADD" else DeleteAction(path, value)

    def set_value(self) -> Any:
        left = self.term()
        if not (self.at("+") or self.at("-")):
            return left
        op = self.advance().text
        self.count_operator()
        right = self.term()
        if _INVALID in (left, right):
            return _INVALID
        self.check_types(op, (left, right), frozenset({"N"}))
        return Arith(op, left, right)

    def term(self) -> Any:
        token = self.tok
        if self.at("("):
            self.advance()
            self.enter()
            inner = self.set_value()
            self.expect(")")
            self.leave()
            return inner
        if token.kind == VALUE_REF:
            return self.value()
        if self.at_call():
            return self.update_function(self.call(self.term))
        if token.kind in (NAME, NAME_REF):
            return self.path()
        self.fail()

    def update_function(self, call: _Call) -> Any:
        if call.name not in _UPDATE_FUNCTIONS:
            return self.foreign_function(call)
        if not self.arity_ok(call, 2):
            return _INVALID
        first, second = call.args
        if call.name == "list_append":
            self.check_types("list_append", (first, second), frozenset({"L"}))
            return ListAppend(first, second)
        self.check_distinct("if_not_exists", first, (second,))
        if not isinstance(first, Path):
            self.error(_FUNCTION, msg.NEEDS_PATH.format(name="if_not_exists"))
            return _INVALID
        return IfNotExists(first, second)

    def check_overlaps(self, paths: list[Path]) -> None:
        for index, later in enumerate(paths):
            for earlier in paths[:index]:
                relation = _relation(earlier, later)
                if relation is not None:
                    template = msg.OVERLAP if relation == _OVERLAP else msg.CONFLICT
                    self.error(relation, template.format(one=earlier, two=later))

    # -- projection expressions ----------------------------------------------------------------

    def projection_expression(self) -> Projection:
        paths = [self.path()]
        while self.at(","):
            self.advance()
            paths.append(self.path())
        if self.tok.kind != EOF:
            self.fail()
        self.check_overlaps(paths)
        return Projection(tuple(paths))


def _type_name_rule(type_name: AV) -> str | None:
    """attribute_type's second operand (an S value) must name a type."""
    if type_name["S"] in _VALID_TYPE_NAMES:
        return None
    return msg.BAD_TYPE_NAME.format(name=type_name["S"], valid=msg.VALID_TYPES)


def _bounds_order_rule(low: AV, high: AV) -> str | None:
    """BETWEEN's bounds (of one type) must not be in descending order."""
    if (avs.compare(low, high) or 0) <= 0:
        return None
    return msg.BETWEEN_ORDER.format(low=msg.av_text(low), high=msg.av_text(high))


def _relation(one: Path, two: Path) -> int | None:
    """_OVERLAP when one path is a prefix of the other, _CONFLICT when they first differ by a
    map key against a list index, None when they address separate places."""
    for mine, theirs in zip(one.elements, two.elements):
        if isinstance(mine, int) != isinstance(theirs, int):
            return _CONFLICT
        if mine != theirs:
            return None
    return _OVERLAP


def _static_type(node: Any) -> str | None:
    """The type a node is known to have before any item is seen (None: any type)."""
    if isinstance(node, Value):
        return avs.type_of(node.value)
    if isinstance(node, (Size, Arith)):
        return "N"
    if isinstance(node, ListAppend):
        return "L"
    return None


def _type_text(node: Any) -> str:
    """How DynamoDB names an operand's type in "operand type: ..." messages."""
    return _static_type(node) or msg.PATH_TYPES
