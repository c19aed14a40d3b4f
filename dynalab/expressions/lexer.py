"""Tokens of the DynamoDB expression language.

One lexer serves every expression kind. Keywords (AND, SET, ...) are NAME tokens that the parser
recognises case-insensitively, because the same word is a keyword in one position and a
(reserved) attribute name in another. A character that starts no token becomes a one-character
OTHER token, so the parser reports it as DynamoDB does: 'Syntax error; token: "$", near: ...'.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Token", "tokenize", "NAME", "NAME_REF", "VALUE_REF", "INT", "PUNCT", "OTHER", "EOF",
           "near"]

NAME = "name"            # a or attribute_exists or AND
NAME_REF = "name_ref"    # #alias
VALUE_REF = "value_ref"  # :value
INT = "int"              # 12 (list indexes only)
PUNCT = "punct"          # ( ) [ ] . , = <> < <= > >= + -
OTHER = "other"          # anything else, one character
EOF = "eof"

_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<name_ref>\#[A-Za-z0-9_]+)
  | (?P<value_ref>:[A-Za-z0-9_]+)
  | (?P<int>[0-9]+)
  | (?P<punct><>|<=|>=|[()\[\].,=<>+\-])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int


@lru_cache(maxsize=4096)
def tokenize(text: str) -> tuple[Token, ...]:
    """All tokens of `text`, whitespace dropped, ending with one EOF token."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            tokens.append(Token(OTHER, text[position], position, position + 1))
            position += 1
            continue
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        position = match.end()
    tokens.append(Token(EOF, "<EOF>", len(text), len(text)))
    return tuple(tokens)


def near(text: str, tokens: tuple[Token, ...], index: int) -> str:
    """DynamoDB's "near" for a syntax error at tokens[index]: the source from the previous token
    through the next one ("a-b" for the "-" in a-b; just the previous token at the end)."""
    first = tokens[index - 1] if index > 0 else tokens[index]
    bad = tokens[index]
    if bad.kind == EOF:
        return text[first.start:first.end]
    last = tokens[index + 1] if tokens[index + 1].kind != EOF else bad
    return text[first.start:last.end]
