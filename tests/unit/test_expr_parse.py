"""Compiling expressions: grammar, precedence, DynamoDB's rules and its exact error messages."""
from __future__ import annotations

from typing import Any

import pytest

from dynalab.errors import ValidationException
from dynalab.expressions import (RESERVED_WORDS, And, AttributeExists, AttributeType, BeginsWith,
                                 Between, Compare, Contains, ExpressionContext, In, Not, Or,
                                 Path, Size, Value, to_text)

VALUES: dict[str, Any] = {":s": {"S": "x"}, ":t": {"S": "y"}, ":n": {"N": "5"},
                          ":one": {"N": "1"}, ":l": {"L": [{"N": "1"}]}, ":m": {"M": {}},
                          ":ss": {"SS": ["a"]}, ":b": {"B": "AAE="}, ":bool": {"BOOL": True},
                          ":type": {"S": "SS"}, ":bad_type": {"S": "STRING"}}
NAMES = {"#n": "name", "#a": "a", "#dot": "x.y"}


def condition(text: str, names: dict[str, str] | None = None) -> Any:
    return ExpressionContext(names or NAMES, VALUES).condition(text)


def update(text: str) -> Any:
    return ExpressionContext(NAMES, VALUES).update(text)


def projection(text: str) -> Any:
    return ExpressionContext(NAMES).projection(text)


def error(compile_: Any, text: str) -> str:
    with pytest.raises(ValidationException) as caught:
        compile_(text)
    return caught.value.message


A, B, C = Path.of("a"), Path.of("b"), Path.of("c")
S, N = Value(":s", VALUES[":s"]), Value(":n", VALUES[":n"])


# -- grammar and precedence ----------------------------------------------------------------------

def test_and_binds_tighter_than_or() -> None:
    assert condition("a = :s OR b = :s AND c = :s") == Or(
        Compare("=", A, S), And(Compare("=", B, S), Compare("=", C, S)))


def test_not_binds_tighter_than_and_and_comparisons_tighter_than_not() -> None:
    assert condition("NOT a = :s AND b = :s") == And(Not(Compare("=", A, S)), Compare("=", B, S))


def test_parentheses_override_precedence() -> None:
    assert condition("(a = :s OR b = :s) AND c = :s") == And(
        Or(Compare("=", A, S), Compare("=", B, S)), Compare("=", C, S))


def test_and_or_are_left_associative() -> None:
    assert condition("a = :s AND b = :s AND c = :s") == And(
        And(Compare("=", A, S), Compare("=", B, S)), Compare("=", C, S))


def test_keywords_are_case_insensitive_but_function_names_are_not() -> None:
    assert condition("a between :one and :n oR NoT b in (:s)") == Or(
        Between(A, Value(":one", VALUES[":one"]), N), Not(In(B, (S,))))
    assert error(condition, "Attribute_Exists(a)") == (
        "Invalid ConditionExpression: Invalid function name; function: Attribute_Exists")


def test_document_paths_names_indexes_and_placeholders() -> None:
    tree = condition("a.b[2].#n[0][10] = :s")
    assert tree.left == Path(("a", "b", 2, "name", 0, 10), (None, None, None, "#n", None, None))
    assert condition("#dot = :s").left.elements == ("x.y",)  # a name with a dot, via #alias
    assert condition("a . b [ 1 ] = :s").left.elements == ("a", "b", 1)


def test_every_function_and_operator() -> None:
    tree = condition("attribute_exists(a) AND attribute_type(b, :type) AND begins_with(c, :s) "
                     "AND contains(a, :n) AND size(b) >= :n AND c <> :s AND a IN (:s, :n) "
                     "AND b BETWEEN :one AND :n")
    flat = []
    while isinstance(tree, And):
        flat.append(tree.right)
        tree = tree.left
    flat.append(tree)
    kinds = [type(node) for node in reversed(flat)]
    assert kinds == [AttributeExists, AttributeType, BeginsWith, Contains, Compare, Compare, In,
                     Between]
    assert flat[::-1][4] == Compare(">=", Size(B), N)


def test_operands_may_be_parenthesised_once() -> None:
    assert condition("(a) = :s") == Compare("=", A, S)
    assert condition("(a = :s)") == Compare("=", A, S)
    assert condition("((a = :s) AND b = :s)") == And(Compare("=", A, S), Compare("=", B, S))


@pytest.mark.parametrize("text", ["((a = :s))", "(((a = :s)))", "((a)) = :s",
                                  "NOT ((a = :s))", "a = :s AND ((b = :s))"])
def test_redundant_parentheses(text: str) -> None:
    assert error(condition, text) == (
        "Invalid ConditionExpression: The expression has redundant parentheses;")


def test_size_is_an_operand_and_values_may_be_compared() -> None:
    assert condition("size(a) = size(b)") == Compare("=", Size(A), Size(B))
    assert condition(":s = :t") == Compare("=", S, Value(":t", VALUES[":t"]))


def test_reserved_words_list_is_dynamodbs() -> None:
    assert len(RESERVED_WORDS) == 573
    assert {"NAME", "STATUS", "SIZE", "COMMENT", "DATA", "ZONE", "ABORT", "TTL"} <= RESERVED_WORDS


@pytest.mark.parametrize("word", ["name", "Status", "DATA", "year"])
def test_reserved_words_need_placeholders(word: str) -> None:
    assert error(condition, f"{word} = :s") == (
        "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: "
        f"{word}")
    assert condition("#n = :s").left.elements == ("name",)


def test_reserved_word_inside_a_path_and_in_other_expressions() -> None:
    assert "reserved keyword: size" in error(condition, "a.size = :s")
    assert error(update, "SET a = :s REMOVE comment") == (
        "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: comment")
    assert error(projection, "a, b.Count") == (
        "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: "
        "Count")


# -- syntax errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, token, near", [
    ("a-b", "-", "a-b"),
    ("attribute_exists(a) AND NOT b", "<EOF>", "b"),
    ("a = :s b", "b", ":s b"),
    ("a = 5", "5", "= 5"),
    ("a IN ()", ")", "()"),
    ("a = :s AND", "<EOF>", "AND"),
    ("a $ :s", "$", "a $ :s"),
    ("a = :s)", ")", ":s)"),
    ("a AND b = :s", "AND", "a AND b"),
    ("a.b[x] = :s", "x", "[x]"),
    ("   ", "<EOF>", ""),
])
def test_syntax_errors_name_the_token_and_what_is_near(text: str, token: str, near: str) -> None:
    assert error(condition, text) == (
        f'Invalid ConditionExpression: Syntax error; token: "{token}", near: "{near}"')


def test_parameter_name_prefixes_the_message() -> None:
    context = ExpressionContext(None, VALUES)
    with pytest.raises(ValidationException, match=r"^Invalid FilterExpression: Syntax error"):
        context.condition("a-b", "FilterExpression")
    with pytest.raises(ValidationException, match=r"^Invalid ProjectionExpression: Syntax"):
        ExpressionContext().projection("a,")


def test_empty_and_too_long_expressions() -> None:
    assert error(condition, "") == "Invalid ConditionExpression: The expression can not be empty;"
    assert error(update, "") == "Invalid UpdateExpression: The expression can not be empty;"
    long_text = "a = :s" + " " * 4091
    assert error(condition, long_text) == (
        "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; "
        "expression size: 4097")
    condition("a = :s" + " " * 4090)  # exactly 4096 bytes is fine


# -- functions and operand rules ----------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("size(a)", "The function is not allowed to be used this way in an expression; "
                "function: size"),
    ("attribute_exists(a) = :s", "The function is not allowed to be used this way in an "
                                 "expression; function: attribute_exists"),
    ("foo(a) = :s", "Invalid function name; function: foo"),
    ("if_not_exists(a, :s) = :s", "The function is not allowed in a condition expression; "
                                  "function: if_not_exists"),
    ("attribute_exists(a, b)", "Incorrect number of operands for operator or function; "
                               "operator or function: attribute_exists, number of operands: 2"),
    ("contains(a)", "Incorrect number of operands for operator or function; operator or "
                    "function: contains, number of operands: 1"),
    ("attribute_exists(:s)", "Operator or function requires a document path; operator or "
                             "function: attribute_exists"),
    ("attribute_type(a, :n)", "Incorrect operand type for operator or function; operator or "
                              "function: attribute_type, operand type: N"),
    ("attribute_type(a, b)", "Incorrect operand type for operator or function; operator or "
                             "function: attribute_type, operand type: "
                             "{NS,SS,L,BS,N,M,B,BOOL,NULL,S}"),
    ("attribute_type(a, :bad_type)", "Invalid attribute type name found; type: STRING, valid "
                                     "types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}"),
    ("begins_with(a, :n)", "Incorrect operand type for operator or function; operator or "
                           "function: begins_with, operand type: N"),
    ("size(:n) > :n", "Incorrect operand type for operator or function; operator or function: "
                      "size, operand type: N"),
    ("a < :m", "Incorrect operand type for operator or function; operator or function: <, "
               "operand type: M"),
    ("a BETWEEN :bool AND :bool", "Incorrect operand type for operator or function; operator or "
                                  "function: BETWEEN, operand type: BOOL"),
    ("a = a", "The first operand must be distinct from the remaining operands for this operator "
              "or function; operator: =, first operand: [a]"),
    ("#a.b[1] <= a.b[1]", "The first operand must be distinct from the remaining operands for "
                          "this operator or function; operator: <=, first operand: [a, b, [1]]"),
    ("a IN (:s, a)", "The first operand must be distinct from the remaining operands for this "
                     "operator or function; operator: IN, first operand: [a]"),
    ("contains(a, a)", "The first operand must be distinct from the remaining operands for this "
                       "operator or function; operator: contains, first operand: [a]"),
    ("a BETWEEN :n AND :s", "The BETWEEN operator requires same data type for lower and upper "
                            "bounds; lower bound operand: AttributeValue: {N:5}, upper bound "
                            "operand: AttributeValue: {S:x}"),
    ("a BETWEEN :n AND :one", "The BETWEEN operator requires upper bound to be greater than or "
                              "equal to lower bound; lower bound operand: AttributeValue: {N:5}, "
                              "upper bound operand: AttributeValue: {N:1}"),
])
def test_semantic_errors(text: str, message: str) -> None:
    assert error(condition, text) == f"Invalid ConditionExpression: {message}"


def test_in_takes_up_to_100_operands() -> None:
    values = {f":v{i}": {"N": str(i)} for i in range(101)}
    context = ExpressionContext(None, values)
    hundred = ", ".join(f":v{i}" for i in range(100))
    assert len(context.condition(f"a IN ({hundred})").candidates) == 100
    with pytest.raises(ValidationException) as caught:
        ExpressionContext(None, values).condition(f"a IN ({hundred}, :v100)")
    assert caught.value.message == ("Invalid ConditionExpression: The IN operator is provided "
                                    "with too many operands; number of operands: 101")


def test_operator_count_and_path_depth_limits() -> None:
    text = " AND ".join(["a = :s"] * 151)
    assert error(condition, text) == ("Invalid ConditionExpression: The expression contains too "
                                      "many operators; operator count: 301")
    deep = ".".join(["a"] * 33)
    assert error(condition, f"{deep} = :s") == (
        "Invalid ConditionExpression: The document path has too many nesting levels; nesting "
        "levels: 33")
    condition(".".join(["a"] * 32) + " = :s")


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    text = "(" * 500 + "a = :s" + ")" * 500
    with pytest.raises(ValidationException):
        condition(text)
    with pytest.raises(ValidationException):
        condition("NOT " * 1000 + "a = :s")


def test_error_priority_parentheses_before_undefined_values() -> None:
    assert error(condition, "((a = :nope))") == (
        "Invalid ConditionExpression: The expression has redundant parentheses;")


def test_undefined_names_and_values() -> None:
    assert error(condition, "#nope = :s") == (
        "Invalid ConditionExpression: An expression attribute name used in the document path is "
        "not defined; attribute name: #nope")
    assert error(condition, "a = :nope") == (
        "Invalid ConditionExpression: An expression attribute value used in expression is not "
        "defined; attribute value: :nope")


# -- update expressions --------------------------------------------------------------------------

def test_update_clauses_in_any_order_and_case() -> None:
    tree = update("remove x, y[1] set a = :s, b = a + :n add c :n delete d :ss")
    assert to_text(tree) == "REMOVE x, y[1] SET a = :s, b = a + :n ADD c :n DELETE d :ss"
    assert [p.elements for p in tree.target_paths] == [("x",), ("y", 1), ("a",), ("b",), ("c",),
                                                       ("d",)]


def test_update_functions() -> None:
    assert to_text(update("SET a = if_not_exists(a, :n) + :n, b = list_append(:l, b)")) == (
        "SET a = if_not_exists(a, :n) + :n, b = list_append(:l, b)")
    assert to_text(update("SET a = (b - :n)")) == "SET a = b - :n"


@pytest.mark.parametrize("text, message", [
    ("SET a = :s SET b = :s", 'The "SET" section can only be used once in an update '
                              'expression;'),
    ("REMOVE a REMOVE b", 'The "REMOVE" section can only be used once in an update expression;'),
    ("SET a = :s, a.b = :s", "Two document paths overlap with each other; must remove or rewrite "
                             "one of these paths; path one: [a], path two: [a, b]"),
    ("SET a.b = :s REMOVE a", "Two document paths overlap with each other; must remove or "
                              "rewrite one of these paths; path one: [a, b], path two: [a]"),
    ("SET a = :s REMOVE #a", "Two document paths overlap with each other; must remove or rewrite "
                             "one of these paths; path one: [a], path two: [a]"),
    ("SET a[1] = :s, a.b = :s", "Two document paths conflict with each other; must remove or "
                                "rewrite one of these paths; path one: [a, [1]], path two: "
                                "[a, b]"),
    ("SET a = b + :s", "Incorrect operand type for operator or function; operator or function: "
                       "+, operand type: S"),
    ("SET a = :l - b", "Incorrect operand type for operator or function; operator or function: "
                       "-, operand type: L"),
    ("SET a = list_append(b, :n)", "Incorrect operand type for operator or function; operator or "
                                   "function: list_append, operand type: N"),
    ("SET a = if_not_exists(:s, b)", "Operator or function requires a document path; operator "
                                     "or function: if_not_exists"),
    ("SET a = if_not_exists(b)", "Incorrect number of operands for operator or function; "
                                 "operator or function: if_not_exists, number of operands: 1"),
    ("SET a = size(b)", "The function is not allowed in an update expression; function: size"),
    ("SET a = bogus(b)", "Invalid function name; function: bogus"),
    ("ADD a :s", "Incorrect operand type for operator or function; operator: ADD, operand type: "
                 "STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"),
    ("ADD a :l", "Incorrect operand type for operator or function; operator: ADD, operand type: "
                 "LIST, typeSet: ALLOWED_FOR_ADD_OPERAND"),
    ("DELETE a :n", "Incorrect operand type for operator or function; operator: DELETE, operand "
                    "type: NUMBER, typeSet: ALLOWED_FOR_DELETE_OPERAND"),
    ("SET a = :nope", "An expression attribute value used in expression is not defined; "
                      "attribute value: :nope"),
    ("SET a = :s + :n + :n", 'Syntax error; token: "+", near: ":n + :n"'),
    ("ADD a b", 'Syntax error; token: "b", near: "a b"'),
    ("SET a = :s, ", 'Syntax error; token: "<EOF>", near: ","'),
    ("UPDATE a = :s", 'Syntax error; token: "UPDATE", near: "UPDATE a"'),
])
def test_update_errors(text: str, message: str) -> None:
    assert error(update, text) == f"Invalid UpdateExpression: {message}"


# -- projection expressions ----------------------------------------------------------------------

def test_projection_paths() -> None:
    tree = projection("a, b.c[1], #n")
    assert [p.elements for p in tree.paths] == [("a",), ("b", "c", 1), ("name",)]


@pytest.mark.parametrize("text, message", [
    ("a, a.b", "Two document paths overlap with each other; must remove or rewrite one of these "
               "paths; path one: [a], path two: [a, b]"),
    ("a, a", "Two document paths overlap with each other; must remove or rewrite one of these "
             "paths; path one: [a], path two: [a]"),
    ("a[0], a.b", "Two document paths conflict with each other; must remove or rewrite one of "
                  "these paths; path one: [a, [0]], path two: [a, b]"),
    ("a b", 'Syntax error; token: "b", near: "a b"'),
])
def test_projection_errors(text: str, message: str) -> None:
    assert error(projection, text) == f"Invalid ProjectionExpression: {message}"


# -- ExpressionAttributeNames / Values -----------------------------------------------------------

@pytest.mark.parametrize("names, values, message", [
    ({}, None, "ExpressionAttributeNames must not be empty"),
    (None, {}, "ExpressionAttributeValues must not be empty"),
    ({"n": "a"}, None, 'ExpressionAttributeNames contains invalid key: Syntax error; key: "n"'),
    ({"#a-b": "a"}, None, 'ExpressionAttributeNames contains invalid key: Syntax error; key: '
                          '"#a-b"'),
    ({"#n": ""}, None, "ExpressionAttributeNames contains invalid value: Empty attribute name for "
                       "key #n"),
    (None, {"v": {"S": "a"}}, 'ExpressionAttributeValues contains invalid key: Syntax error; '
                              'key: "v"'),
    (None, {":v": {"N": "x"}}, "ExpressionAttributeValues contains invalid value: The parameter "
                               "cannot be converted to a numeric value: x for key :v"),
])
def test_names_and_values_are_validated(names: Any, values: Any, message: str) -> None:
    with pytest.raises(ValidationException) as caught:
        ExpressionContext(names, values)
    assert caught.value.message == message


def test_values_are_canonicalised() -> None:
    tree = ExpressionContext(None, {":v": {"N": "1.50E1"}}).condition("a = :v")
    assert tree.right.value == {"N": "15"}


def test_unused_names_and_values_across_the_request() -> None:
    context = ExpressionContext({"#a": "a", "#b": "b", "#c": "c"},
                                {":x": {"S": "x"}, ":y": {"S": "y"}})
    context.condition("#a = :x")
    context.projection("#b")
    with pytest.raises(ValidationException) as caught:
        context.check_unused()
    assert caught.value.message == ("Value provided in ExpressionAttributeNames unused in "
                                    "expressions: keys: {#c}")
    context.update("SET #c = :x")
    with pytest.raises(ValidationException) as caught:
        context.check_unused()
    assert caught.value.message == ("Value provided in ExpressionAttributeValues unused in "
                                    "expressions: keys: {:y}")
    context.condition(":y = :x", "FilterExpression")
    context.check_unused()


def test_parses_are_cached_and_keyed_by_the_types_of_the_values_used() -> None:
    first = ExpressionContext(None, {":v": {"S": "x"}, ":w": {"S": "1"}}).condition("a = :v")
    again = ExpressionContext(None, {":v": {"S": "x"}, ":w": {"N": "2"}}).condition("a = :v")
    other = ExpressionContext(None, {":v": {"S": "y"}}).condition("a = :v")
    number = ExpressionContext(None, {":v": {"N": "1"}}).condition("a = :v")
    # One parse (a shared template: its value-free parts are shared) whatever the contents, or
    # the type of an unused value; each request's tree holds its own values.
    assert first == again and first.left is again.left is other.left
    assert other.right.value == {"S": "y"} and first.right.value == {"S": "x"}
    assert number.left is not first.left and number.right.value == {"N": "1"}


def test_compiled_trees_are_frozen() -> None:
    tree = condition("a = :s")
    with pytest.raises(AttributeError):
        tree.op = "<"  # type: ignore[misc]
