"""Dollar amounts typed by people: read carefully into integer cents, or refused in plain words."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.estimates.money import (
    MAX_CHARGE_CENTS,
    AmountError,
    cents_input,
    parse_cents,
    parse_count,
)


@pytest.mark.parametrize(("text", "cents"), [
    ("160", 16000),
    ("160.00", 16000),
    ("$160", 16000),
    ("$1,234.50", 123450),
    ("1,234.5", 123450),
    ("1234.5", 123450),
    ("  $ 80.05 ", 8005),
    (".5", 50),
    ("0", 0),
    ("0.01", 1),
    ("1.", 100),
    ("1,000,000", 100_000_000),
    ("", None),
    ("   ", None),
    (None, None),
])
def test_parse_cents_reads_what_people_type(text, cents):
    assert parse_cents(text, max_cents=10**12) == cents


@pytest.mark.parametrize(("text", "message"), [
    ("-5", "negative"),
    ("-$5.00", "negative"),
    ("$-5", "negative"),
    ("(5.00)", "negative"),
    ("\u22125", "negative"),
    ("5.001", "two digits"),
    ("1,23", "dollars"),
    ("12,34.5", "dollars"),
    ("1e5", "dollars"),
    ("five", "dollars"),
    ("$", "dollars"),
    (".", "dollars"),
    ("1.2.3", "dollars"),
    ("١٢٣", "dollars"),  # Arabic-Indic digits are not read as money
    ("\uff15", "dollars"),  # a fullwidth 5
    ("100000.01", "larger"),
    ("9" * 40, "too large"),
    ("NaN", "dollars"),
    ("inf", "dollars"),
])
def test_parse_cents_refuses_doubtful_amounts(text, message):
    with pytest.raises(AmountError, match=message):
        parse_cents(text)


def test_the_largest_charge_is_accepted_and_one_cent_more_is_not():
    assert parse_cents(cents_input(MAX_CHARGE_CENTS)) == MAX_CHARGE_CENTS
    with pytest.raises(AmountError):
        parse_cents(cents_input(MAX_CHARGE_CENTS + 1))


@given(st.integers(min_value=0, max_value=MAX_CHARGE_CENTS))
def test_cents_round_trip_through_the_form(cents):
    assert parse_cents(cents_input(cents)) == cents
    assert parse_cents("$" + cents_input(cents)) == cents


@given(st.text(max_size=30))
def test_parse_cents_never_fails_with_anything_but_amount_error(text):
    try:
        result = parse_cents(text)
    except AmountError:
        return
    assert result is None or (isinstance(result, int) and 0 <= result <= MAX_CHARGE_CENTS)


@pytest.mark.parametrize(("text", "value"), [("1", 1), (" 26 ", 26), ("999", 999), ("", None)])
def test_parse_count_reads_whole_numbers(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("0", "at least 1"), ("1000", "at most 999"), ("-1", "negative"), ("2.5", "whole number"),
    ("ten", "whole number"), ("1e3", "whole number"), ("1234567", "whole number"),
])
def test_parse_count_refuses_other_numbers(text, message):
    with pytest.raises(AmountError, match=message):
        parse_count(text)
