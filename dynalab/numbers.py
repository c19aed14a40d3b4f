"""DynamoDB numbers: exact decimals (never floats), validated and rendered as DynamoDB does.

A DynamoDB number has at most 38 significant digits and a magnitude of 1E-130 up to
9.9999999999999999999999999999999999999E+125 (or is zero). DynamoDB answers with plain decimal
notation whatever notation was sent (`1E+2` comes back as `100`, `1e100` as 1 followed by 100
zeros), without trailing zeros and without a sign on zero.

Messages are DynamoDB's (as recorded by suites that run against the real service), e.g.
"Number overflow. Attempting to store a number with magnitude larger than supported range".
"""
from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Underflow

from dynalab.errors import ValidationException

__all__ = [
    "MAX_SIGNIFICANT_DIGITS", "MAX_EXPONENT", "MIN_EXPONENT",
    "parse", "render", "canonical", "add", "subtract", "compare",
    "NOT_A_NUMBER", "OVERFLOW", "UNDERFLOW", "TOO_MANY_DIGITS",
]

MAX_SIGNIFICANT_DIGITS = 38
MAX_EXPONENT = 125  # adjusted exponent (power of ten of the first significant digit)
MIN_EXPONENT = -130

NOT_A_NUMBER = "The parameter cannot be converted to a numeric value"
OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = ("Number underflow. Attempting to store a number with magnitude smaller than supported "
             "range")
TOO_MANY_DIGITS = "Attempting to store more than 38 significant digits in a Number"

# Java BigDecimal's grammar, which DynamoDB accepts: optional sign, digits with an optional point
# (".5" and "1." are fine), optional exponent. No spaces, NaN, Infinity or underscores, all of
# which Python's Decimal would otherwise let through.
_NUMBER_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")

# Exponent strings longer than this are far outside the range; skipping int() on them also keeps
# clear of Python's limit on converting very long digit strings.
_MAX_EXPONENT_CHARS = 12

# Sums of two valid numbers need at most ~300 digits (exponents -167..125), so this context is
# exact for add/subtract; the traps make any rounding loud instead of silent.
_EXACT = Context(prec=400, Emax=10_000, Emin=-10_000,
                 traps=[InvalidOperation, Inexact, Overflow, Underflow])

_ZERO = Decimal(0)

# Integers of up to 38 digits, without leading zeros or a plus sign, and not "-0": their own
# canonical text. Most numbers clients send (counters, versions, timestamps) are such.
_PLAIN_INTEGER = re.compile(r"-?[1-9][0-9]{0,37}")


def parse(text: str) -> Decimal:
    """Validate a DynamoDB number string and return its exact value.

    Up to 38 significant digits; magnitude 1E-130 .. 9.9999999999999999999999999999999999999E+125,
    or 0. Raises ValidationException with DynamoDB's messages otherwise.
    """
    if not isinstance(text, str):
        raise ValidationException(NOT_A_NUMBER)
    match = _NUMBER_RE.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        raise ValidationException(f"{NOT_A_NUMBER}: {text}" if text else NOT_A_NUMBER)
    sign_text, int_part, frac_part, exp_text = match.groups()
    frac_part = frac_part or ""
    digits = (int_part + frac_part).lstrip("0")
    if not digits:
        return _ZERO
    significant = digits.rstrip("0")
    exponent = _exponent(exp_text) - len(frac_part) + (len(digits) - len(significant))
    _check(len(significant), exponent + len(significant) - 1)
    return Decimal((1 if sign_text == "-" else 0, tuple(map(int, significant)), exponent))


def render(value: Decimal) -> str:
    """Canonical text of a number as DynamoDB returns it (`1.0`->`1`, `-0`->`0`, `1E+2`->`100`).

    Raises ValidationException if the value is not a valid DynamoDB number.
    """
    if not value.is_finite():
        raise ValidationException(NOT_A_NUMBER)
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    significant = digits.rstrip("0")
    exponent += len(digits) - len(significant)
    _check(len(significant), exponent + len(significant) - 1)
    return ("-" if sign else "") + _plain(significant, exponent)


def canonical(text: str) -> str:
    """`render(parse(text))`."""
    if isinstance(text, str) and _PLAIN_INTEGER.fullmatch(text):
        return text  # already canonical, and within the limits: no Decimal round trip (~5 us)
    return render(parse(text))


def add(a: str, b: str) -> str:
    """Exact `a + b` (SET a = b + c, ADD); ValidationException if the result breaks the limits."""
    return _arithmetic(parse(a), parse(b))


def subtract(a: str, b: str) -> str:
    """Exact `a - b`; ValidationException if the result breaks the limits."""
    return _arithmetic(parse(a), parse(b).copy_negate())


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as the number `a` is less than, equal to or greater than `b`."""
    x, y = parse(a), parse(b)
    return -1 if x < y else (1 if x > y else 0)


def _arithmetic(x: Decimal, y: Decimal) -> str:
    total = _EXACT.add(x, y)
    sign, digit_tuple, exponent = total.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    significant = digits.rstrip("0")
    exponent += len(digits) - len(significant)
    adjusted = exponent + len(significant) - 1
    # DynamoDB reports a result that needs more than 38 digits (1e50 + 1) as an overflow, not
    # as "more than 38 significant digits" (observed by ScyllaDB's suite against DynamoDB).
    if len(significant) > MAX_SIGNIFICANT_DIGITS and MIN_EXPONENT <= adjusted:
        raise ValidationException(OVERFLOW)
    _check(len(significant), adjusted)
    return ("-" if sign else "") + _plain(significant, exponent)


def _exponent(exp_text: str | None) -> int:
    if not exp_text:
        return 0
    unsigned = exp_text.lstrip("+-").lstrip("0")
    if len(unsigned) > _MAX_EXPONENT_CHARS:
        raise ValidationException(UNDERFLOW if exp_text.startswith("-") else OVERFLOW)
    return int(exp_text)


def _check(significant_digits: int, adjusted_exponent: int) -> None:
    if adjusted_exponent > MAX_EXPONENT:
        raise ValidationException(OVERFLOW)
    if adjusted_exponent < MIN_EXPONENT:
        raise ValidationException(UNDERFLOW)
    if significant_digits > MAX_SIGNIFICANT_DIGITS:
        raise ValidationException(TOO_MANY_DIGITS)


def _plain(significant: str, exponent: int) -> str:
    """Plain notation of `significant` * 10**exponent (significant has no leading/trailing 0)."""
    if exponent >= 0:
        return significant + "0" * exponent
    point = len(significant) + exponent
    if point > 0:
        return f"{significant[:point]}.{significant[point:]}"
    return "0." + "0" * -point + significant
