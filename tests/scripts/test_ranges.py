"""The X/Y/Z plot's value syntax, on A1111's documented examples."""

from __future__ import annotations

import pytest

from sdui.scripts.ranges import MAX_VALUES, expand_floats, expand_ints, join_values, split_values


@pytest.mark.parametrize("text, expected", [
    ("1-5", [1, 2, 3, 4, 5]),
    ("1-10 (+2)", [1, 3, 5, 7, 9]),
    ("1-5 (+2)", [1, 3, 5]),
    ("10-5 (-3)", [10, 7]),
    ("10-1 (-3)", [10, 7, 4, 1]),
    ("8-32 [4]", [8, 16, 24, 32]),
    ("1-10 [5]", [1, 3, 5, 7, 10]),
    ("5-1", [5, 4, 3, 2, 1]),
    ("-1, 7, 12", [-1, 7, 12]),
    ("1-3, 10, 20-22", [1, 2, 3, 10, 20, 21, 22]),
])
def test_int_values(text, expected):
    assert expand_ints(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("0.5-1 [3]", [0.5, 0.75, 1.0]),
    ("0.0-1.0 [6]", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ("1-3 (+0.5)", [1.0, 1.5, 2.0, 2.5, 3.0]),
    ("5-9 (+2)", [5.0, 7.0, 9.0]),
    ("7, 7.5, 12", [7.0, 7.5, 12.0]),
    ("1-0 (-0.25)", [1.0, 0.75, 0.5, 0.25, 0.0]),
])
def test_float_values(text, expected):
    assert expand_floats(text) == pytest.approx(expected)


def test_lists_are_csv_with_quotes():
    assert split_values('Euler a, "DPM++ 2M, odd", DDIM ,, ') == ["Euler a", "DPM++ 2M, odd", "DDIM"]
    assert split_values(join_values(["a, b", "c"])) == ["a, b", "c"]


@pytest.mark.parametrize("text, message", [
    ("1-5 (-1)", "never gets from 1 to 5"),
    ("1-5 (+0)", "must not be 0"),
    ("abc", "not a whole number"),
    ("1.5", "not a whole number"),
    ("1-5 [0]", "count"),
    (f"1-{MAX_VALUES * 2}", f"at most {MAX_VALUES}"),
])
def test_bad_int_values_name_the_value(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        expand_ints(text)


def test_bad_float_value():
    with pytest.raises(ValueError, match="'seven' is not a number"):
        expand_floats("7, seven")
    with pytest.raises(ValueError, match="not a finite number"):
        expand_floats("nan")
