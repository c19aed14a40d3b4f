"""DynamoDB's wording for expression errors, in one place.

Users match on these strings, so they follow what DynamoDB answers (as recorded by emulators
that test against the service: dynalite, DynamoDB Local). Parse-time errors are prefixed with
"Invalid <ParameterName>: " by `invalid`; errors found while applying an update are not.
"""
from __future__ import annotations

from typing import Any

from dynalab.errors import ValidationException

__all__ = [
    "invalid", "syntax", "av_text", "type_word",
    "EMPTY", "TOO_LONG", "RESERVED", "UNDEFINED_NAME", "UNDEFINED_VALUE", "REDUNDANT_PARENS",
    "UNKNOWN_FUNCTION", "NOT_IN_CONDITION", "NOT_IN_UPDATE", "MISUSED_FUNCTION", "OPERAND_COUNT",
    "OPERAND_TYPE", "NEEDS_PATH", "DISTINCT", "BAD_TYPE_NAME", "VALID_TYPES", "PATH_TYPES",
    "BETWEEN_TYPES", "BETWEEN_ORDER", "IN_TOO_MANY", "TOO_MANY_OPERATORS", "PATH_TOO_DEEP",
    "INDEX_RANGE", "SECTION_TWICE", "OVERLAP", "CONFLICT", "ACTION_OPERAND_TYPE",
    "NESTING_TOO_DEEP", "MISSING_OPERAND", "WRONG_OPERAND_TYPE", "INVALID_PATH",
    "LEGACY_TYPE_MISMATCH",
]

EMPTY = "The expression can not be empty;"
TOO_LONG = "Expression size has exceeded the maximum allowed size; expression size: {size}"
RESERVED = "Attribute name is a reserved keyword; reserved keyword: {name}"
UNDEFINED_NAME = ("An expression attribute name used in the document path is not defined; "
                  "attribute name: {ref}")
UNDEFINED_VALUE = ("An expression attribute value used in expression is not defined; "
                   "attribute value: {ref}")
REDUNDANT_PARENS = "The expression has redundant parentheses;"
UNKNOWN_FUNCTION = "Invalid function name; function: {name}"
NOT_IN_CONDITION = "The function is not allowed in a condition expression; function: {name}"
NOT_IN_UPDATE = "The function is not allowed in an update expression; function: {name}"
MISUSED_FUNCTION = ("The function is not allowed to be used this way in an expression; "
                    "function: {name}")
OPERAND_COUNT = ("Incorrect number of operands for operator or function; "
                 "operator or function: {name}, number of operands: {count}")
OPERAND_TYPE = ("Incorrect operand type for operator or function; "
                "operator or function: {name}, operand type: {type}")
NEEDS_PATH = "Operator or function requires a document path; operator or function: {name}"
DISTINCT = ("The first operand must be distinct from the remaining operands for this operator or "
            "function; operator: {name}, first operand: {path}")
BAD_TYPE_NAME = "Invalid attribute type name found; type: {name}, valid types: {valid}"
VALID_TYPES = "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}"
# What DynamoDB prints as the "operand type" of a document path (it could be any type).
PATH_TYPES = "{NS,SS,L,BS,N,M,B,BOOL,NULL,S}"
BETWEEN_TYPES = ("The BETWEEN operator requires same data type for lower and upper bounds; "
                 "lower bound operand: AttributeValue: {low}, upper bound operand: "
                 "AttributeValue: {high}")
BETWEEN_ORDER = ("The BETWEEN operator requires upper bound to be greater than or equal to lower "
                 "bound; lower bound operand: AttributeValue: {low}, upper bound operand: "
                 "AttributeValue: {high}")
IN_TOO_MANY = "The IN operator is provided with too many operands; number of operands: {count}"
TOO_MANY_OPERATORS = "The expression contains too many operators; operator count: {count}"
PATH_TOO_DEEP = "The document path has too many nesting levels; nesting levels: {depth}"
INDEX_RANGE = "List index is not within the allowable range; index: {index}"
# dynalab's own limit (DynamoDB bounds nesting only through the 300-operator limit); it keeps
# the recursive-descent parser far from Python's recursion limit.
NESTING_TOO_DEEP = "The expression has too many levels of nesting; nesting levels: {depth}"
SECTION_TWICE = 'The "{section}" section can only be used once in an update expression;'
OVERLAP = ("Two document paths overlap with each other; must remove or rewrite one of these "
           "paths; path one: {one}, path two: {two}")
CONFLICT = ("Two document paths conflict with each other; must remove or rewrite one of these "
            "paths; path one: {one}, path two: {two}")
ACTION_OPERAND_TYPE = ("Incorrect operand type for operator or function; operator: {action}, "
                       "operand type: {type}, typeSet: ALLOWED_FOR_{action}_OPERAND")

# Errors while applying an update to an item (no "Invalid UpdateExpression: " prefix).
MISSING_OPERAND = "The provided expression refers to an attribute that does not exist in the item"
WRONG_OPERAND_TYPE = "An operand in the update expression has an incorrect data type"
INVALID_PATH = "The document path provided in the update expression is invalid for update"
LEGACY_TYPE_MISMATCH = "Type mismatch for attribute to update"

# DynamoDB's internal type names, used by the ADD / DELETE operand messages.
_TYPE_WORDS = {"S": "STRING", "N": "NUMBER", "B": "BINARY", "BOOL": "BOOLEAN", "NULL": "NULL",
               "M": "MAP", "L": "LIST", "SS": "STRING_SET", "NS": "NUMBER_SET",
               "BS": "BINARY_SET"}


def invalid(parameter: str, message: str) -> ValidationException:
    """The error for a bad expression in request parameter `parameter`."""
    return ValidationException(f"Invalid {parameter}: {message}")


def syntax(parameter: str, token: str, near: str) -> ValidationException:
    return invalid(parameter, f'Syntax error; token: "{token}", near: "{near}"')


def type_word(type_key: str) -> str:
    """STRING, NUMBER, ... as DynamoDB names a type in ADD / DELETE operand errors."""
    return _TYPE_WORDS.get(type_key, type_key)


def av_text(av: dict[str, Any]) -> str:
    """A value as DynamoDB prints it inside messages: {N:10}, {S:abc}."""
    (type_key, payload), = av.items()
    return f"{{{type_key}:{payload}}}"
