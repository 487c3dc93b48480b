"""A1111's X/Y/Z plot value syntax: comma-separated lists (csv, quotes allowed) and number ranges.

`1-5`, `1-10 (+2)`, `10-1 (-3)` (start-end, inclusive, with a step) and `8-32 [4]` (a count of evenly spaced
values), for whole numbers and decimals alike. No generation knowledge here: the axes live in `xyz`.
"""

from __future__ import annotations

import csv
import io
import math
import re

_NUMBER = r"[+-]?\s*\d+(?:\.\d*)?"
_RANGE = re.compile(rf"\s*({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*([+-]?\s*\d+(?:\.\d*)?)\s*\)|\[\s*(\d+)\s*\])?\s*")
DECIMALS = 8  # A1111 rounds decimals to 8 places in labels; sdui rounds range values the same way
MAX_VALUES = 1000  # one axis never expands to more cells than this


def split_values(text: str) -> list[str]:
    """`a, b, "c, d"` -> ["a", "b", "c, d"]: csv with quotes, each value stripped, empty ones dropped."""
    rows = csv.reader(io.StringIO(text or ""), skipinitialspace=True)
    return [value.strip() for row in rows for value in row if value.strip()]


def join_values(values: list[str]) -> str:
    """The csv line that `split_values` reads back as `values` (what the 📒 button writes)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def expand_ints(text: str) -> list[int]:
    """Whole numbers and whole-number ranges: `1-5` -> 1..5, `1-10 (+2)` -> 1,3,..,9, `8-32 [4]` -> 8,16,24,32."""
    return [int(v) for v in _expand(text, _int)]


def expand_floats(text: str) -> list[float]:
    """Decimals and ranges of them: `0.5-1 [3]` -> 0.5, 0.75, 1.0; `1-3 (+0.5)` -> 1, 1.5, 2, 2.5, 3."""
    return _expand(text, _float)


def _expand(text: str, number) -> list:
    """The values of a list of numbers and ranges, each read with `number` (`_int` or `_float`)."""
    out: list = []
    for value in split_values(text):
        match = _RANGE.fullmatch(value)
        if match is None:
            out.append(number(value))
        elif match.group(4) is not None:
            out += _spaced(number(match.group(1)), number(match.group(2)), int(match.group(4)), value)
        else:
            start, end = number(match.group(1)), number(match.group(2))
            step = number(match.group(3)) if match.group(3) else (1 if end >= start else -1)
            out += _stepped(start, end, step, value)
        _check_size(out, text)
    return out


def _stepped(start: float, end: float, step: float, text: str) -> list[float]:
    if step == 0:
        raise ValueError(f"range {text!r}: the step must not be 0")
    if (end - start) * step < 0:
        raise ValueError(f"range {text!r}: a step of {step:g} never gets from {start:g} to {end:g}; "
                         f"use a {'negative' if step > 0 else 'positive'} step")
    count = math.floor((end - start) / step + 1e-9) + 1
    if count > MAX_VALUES:
        raise ValueError(f"range {text!r} makes {count} values; at most {MAX_VALUES}")
    return [round(start + i * step, DECIMALS) for i in range(count)]


def _spaced(start: float, end: float, count: int, text: str) -> list[float]:
    if not 1 <= count <= MAX_VALUES:
        raise ValueError(f"range {text!r}: the count in [ ] must be between 1 and {MAX_VALUES}; got {count}")
    if count == 1:
        return [start]
    return [round(start + (end - start) * i / (count - 1), DECIMALS) for i in range(count)]


def _int(text: str) -> int:
    try:
        return int(text.replace(" ", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number or a range like 1-5, 1-10 (+2) or 8-32 [4]") from None


def _float(text: str) -> float:
    try:
        value = float(text.replace(" ", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a number or a range like 0.5-1 [3] or 1-3 (+0.5)") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _check_size(values: list, text: str) -> None:
    if len(values) > MAX_VALUES:
        raise ValueError(f"{text!r} makes more than {MAX_VALUES} values")
