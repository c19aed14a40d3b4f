"""dynalab.numbers: DynamoDB's number syntax, limits, canonical text and exact arithmetic."""
from __future__ import annotations

import re
from decimal import Context, Decimal

import pytest
from hypothesis import given, strategies as st

from dynalab import numbers
from dynalab.errors import ValidationException

MAX = "9.9999999999999999999999999999999999999E+125"
_REFERENCE = Context(prec=1000, Emax=100_000, Emin=-100_000)


@st.composite
def dynamo_decimals(draw: st.DrawFn) -> Decimal:
    """Any valid DynamoDB number: 1..38 significant digits, adjusted exponent -130..125, or 0."""
    if draw(st.integers(0, 20)) == 0:
        return Decimal(0)
    count = draw(st.integers(1, 38))
    middle = draw(st.lists(st.integers(0, 9), min_size=max(0, count - 2), max_size=max(0, count - 2)))
    edge = st.integers(1, 9)
    digits = [draw(edge)] + (middle + [draw(edge)] if count > 1 else [])
    adjusted = draw(st.one_of(st.integers(-130, 125), st.sampled_from([-130, -129, 124, 125])))
    return Decimal((draw(st.integers(0, 1)), tuple(digits), adjusted - count + 1))


def is_canonical_text(text: str) -> bool:
    """Plain notation, no exponent, no superfluous zeros, no '+', no '-0'."""
    return re.fullmatch(r"0|-?(0\.0*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]*[1-9])?)", text) is not None


# ---------------------------------------------------------------------------------- canonical form

@pytest.mark.parametrize("text, expected", [
    ("1.0", "1"), ("-0", "0"), ("1E+2", "100"), ("0.00010", "0.0001"), ("+3", "3"),
    (".123", "0.123"), ("0001.23", "1.23"), ("1e+5", "100000"), ("0e1000", "0"), ("1.", "1"),
    ("-17.4E37", "-174" + "0" * 36), ("-0.0e-5", "0"), ("12.3400", "12.34"), ("1e100", "1" + "0" * 100),
    ("1e-130", "0." + "0" * 129 + "1"), (MAX, "9" * 38 + "0" * 88),
])
def test_canonical_examples(text: str, expected: str) -> None:
    assert numbers.canonical(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "The parameter cannot be converted to a numeric value"),
    ("dog", "The parameter cannot be converted to a numeric value: dog"),
    ("NaN", "The parameter cannot be converted to a numeric value: NaN"),
    ("Infinity", "The parameter cannot be converted to a numeric value: Infinity"),
    ("-Infinity", "The parameter cannot be converted to a numeric value: -Infinity"),
    (" 1", "The parameter cannot be converted to a numeric value:  1"),
    ("1 ", "The parameter cannot be converted to a numeric value: 1 "),
    ("1_000", "The parameter cannot be converted to a numeric value: 1_000"),
    (".", "The parameter cannot be converted to a numeric value: ."),
    ("e5", "The parameter cannot be converted to a numeric value: e5"),
    ("١", "The parameter cannot be converted to a numeric value: ١"),  # Arabic-Indic one
    ("1e126", numbers.OVERFLOW), ("-1e126", numbers.OVERFLOW), ("11e125", numbers.OVERFLOW),
    ("1e-131", numbers.UNDERFLOW), ("-1e-131", numbers.UNDERFLOW), ("0.9e-130", numbers.UNDERFLOW),
    ("1e99999999999999999999999", numbers.OVERFLOW),
    ("1e-99999999999999999999999", numbers.UNDERFLOW),
    ("123456789012345678901234567890123456789", numbers.TOO_MANY_DIGITS),
    ("-1.23456789012345678901234567890123456789", numbers.TOO_MANY_DIGITS),
    ("314159265358979323846264338327950288419e30", numbers.TOO_MANY_DIGITS),
])
def test_invalid_numbers_carry_dynamodb_messages(text: str, message: str) -> None:
    with pytest.raises(ValidationException) as info:
        numbers.parse(text)
    assert info.value.message == message


@pytest.mark.parametrize("text", [
    "1e125", "-1e125", MAX, "-" + MAX, "1e-130", "-1e-130",
    "3.1415926535897932384626433832795028841", "31415926535897932384626433832795028841e30",
    "1" + "0" * 125, "0" * 500 + "1",
])
def test_numbers_at_the_limits_are_accepted(text: str) -> None:
    assert numbers.parse(text) == Decimal(text)


def test_zero_with_any_exponent_is_zero() -> None:
    assert numbers.canonical("0e99999999999999999999") == "0"
    assert numbers.canonical("-000.000e-99999999999999999999") == "0"


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValidationException):
        numbers.parse(5)  # type: ignore[arg-type]


def test_render_rejects_values_outside_dynamodb() -> None:
    for value in (Decimal("NaN"), Decimal("Infinity"), Decimal("1e126"), Decimal("1" + "0" * 39 + "1")):
        with pytest.raises(ValidationException):
            numbers.render(value)


@given(dynamo_decimals())
def test_canonical_text_is_exact_plain_and_idempotent(value: Decimal) -> None:
    text = numbers.render(value)
    assert is_canonical_text(text)
    assert Decimal(text) == value
    assert numbers.canonical(text) == text


@given(dynamo_decimals(), st.integers(0, 5), st.integers(0, 5), st.sampled_from(["e", "E"]))
def test_every_spelling_of_a_number_has_one_canonical_form(
        value: Decimal, leading_zeros: int, trailing_zeros: int, e: str) -> None:
    expected = numbers.render(value)
    spellings = [
        str(value), f"{value:e}".replace("e", e), f"{value:f}",
        ("-" if value < 0 else "") + "0" * leading_zeros + f"{value.copy_abs():f}"
        + ("" if "." in f"{value:f}" else ".") + "0" * trailing_zeros,
    ]
    for spelling in spellings:
        assert numbers.canonical(spelling) == expected, spelling


# ------------------------------------------------------------------------------------- arithmetic

def fits_dynamodb(value: Decimal) -> bool:
    if value == 0:
        return True
    digits = len(value.copy_abs().normalize(_REFERENCE).as_tuple().digits)
    return digits <= 38 and -130 <= value.adjusted() <= 125


@given(dynamo_decimals(), dynamo_decimals())
def test_add_and_subtract_are_exact_or_refused(a: Decimal, b: Decimal) -> None:
    for operation, reference in ((numbers.add, _REFERENCE.add(a, b)),
                                 (numbers.subtract, _REFERENCE.subtract(a, b))):
        if fits_dynamodb(reference):
            result = operation(numbers.render(a), numbers.render(b))
            assert Decimal(result) == reference
            assert is_canonical_text(result)
        else:
            with pytest.raises(ValidationException):
                operation(numbers.render(a), numbers.render(b))


@pytest.mark.parametrize("a, b, expected", [
    ("1", "10000000000000000000000", "10000000000000000000001"),
    ("0.1", "0.2", "0.3"), ("-5", "5", "0"), ("1.5", "-0.5", "1"),
    (MAX, "-" + MAX, "0"), ("1e-130", "1e-130", "0." + "0" * 129 + "2"),
])
def test_add_examples(a: str, b: str, expected: str) -> None:
    assert numbers.add(a, b) == expected


@pytest.mark.parametrize("a, b, message", [
    ("9e125", "9e125", numbers.OVERFLOW),
    ("1e50", "1", numbers.OVERFLOW),  # needs 51 digits: DynamoDB calls this an overflow too
    ("1.1e-130", "-1e-130", numbers.UNDERFLOW),
])
def test_add_out_of_range(a: str, b: str, message: str) -> None:
    with pytest.raises(ValidationException) as info:
        numbers.add(a, b)
    assert info.value.message == message


def test_subtract_overflow_and_precision() -> None:
    assert numbers.subtract("10000000000000000000000", "1") == "9999999999999999999999"
    with pytest.raises(ValidationException, match="overflow"):
        numbers.subtract("9e125", "-9e125")


@given(dynamo_decimals(), dynamo_decimals())
def test_compare_matches_decimal_order(a: Decimal, b: Decimal) -> None:
    expected = (a > b) - (a < b)
    assert numbers.compare(numbers.render(a), numbers.render(b)) == expected
    assert numbers.compare(str(a), f"{a:e}") == 0


@given(st.integers(min_value=-(10**39), max_value=10**39)
       | st.from_regex(r"[+-]?0*[0-9]{1,40}", fullmatch=True))
def test_integer_texts_canonicalize_as_through_decimal(text: object) -> None:
    # canonical() returns plain integers as they are; everything else goes through Decimal.
    spelled = str(text)
    try:
        slow = numbers.render(numbers.parse(spelled))
    except ValidationException as error:
        with pytest.raises(ValidationException, match=re.escape(error.message)):
            numbers.canonical(spelled)
        return
    assert numbers.canonical(spelled) == slow


def test_canonical_rejects_non_strings_like_parse() -> None:
    with pytest.raises(ValidationException, match=numbers.NOT_A_NUMBER):
        numbers.canonical(5)  # type: ignore[arg-type]
