"""A1111's prompt editing, alternation and AND, parsed: the expected values are A1111's own documented examples."""

from __future__ import annotations

import pytest

from sdui.engine.prompt_schedule import at_call, composable_parts, prompt_variants, schedule


def alternating(first: str, second: str, period: int = 2, steps: int = 10) -> list[tuple[int, str]]:
    return [(step, first if step % period == 1 else second) for step in range(1, steps + 1)]


# A1111's doctests of get_learned_conditioning_prompt_schedules (10 steps).
@pytest.mark.parametrize("prompt, expected", [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", alternating("a", "(b:1.1)")),
    ("[fe|]male", alternating("female", "male")),
    ("[fe|||]male", alternating("female", "male", period=4)),
])
def test_schedules_are_a1111s(prompt, expected):
    assert schedule(prompt, 10) == expected


# The same doctests with a hires pass of 10 steps after the first 10: the timeline goes on into the second pass.
@pytest.mark.parametrize("prompt, expected", [
    ("a [b:.5] c", [(10, "a b c")]),
    ("a [b:1.5] c", [(5, "a  c"), (10, "a b c")]),
])
def test_the_hires_pass_continues_the_timeline(prompt, expected):
    assert schedule(prompt, 10, hires_steps=10) == expected


def test_step_numbers_in_the_hires_pass_count_from_the_first_pass():
    assert schedule("[cat:dog:14]", 10, hires_steps=8) == [(4, "cat"), (8, "dog")]
    assert schedule("[cat:dog:6]", 10, hires_steps=8) == [(8, "dog")]  # switched during the first pass


def test_the_old_timeline_reads_below_1_as_a_fraction_and_the_rest_as_a_step():
    assert schedule("[cat:dog:0.5]", 10, use_old_scheduling=True) == [(5, "cat"), (10, "dog")]
    assert schedule("[cat:dog:2.0]", 10, use_old_scheduling=True) == [(2, "cat"), (10, "dog")]
    assert schedule("[cat:dog:2.0]", 10) == [(10, "cat")]  # a fraction 2.0 of the steps: never


def test_the_three_forms_and_nesting_and_escapes():
    assert schedule("[from:to:2]", 4) == [(2, "from"), (4, "to")]
    assert schedule("[to:2]", 4) == [(2, ""), (4, "to")]
    assert schedule("[from::2]", 4) == [(2, "from"), (4, "")]
    assert schedule("a [b:[c|d]:2]", 4) == [(1, "a b"), (2, "a b"), (3, "a c"), (4, "a d")]
    # Escaped brackets and colons stay text (the backslash reaches the emphasis parser, as in A1111).
    assert schedule(r"a \[b:c:2\]", 4) == [(4, r"a \[b:c:2\]")]
    assert schedule(r"[a\:b:c:2]", 4) == [(2, r"a\:b"), (4, "c")]


def test_a_call_takes_the_first_entry_that_has_not_ended():
    timeline = schedule("a [b:3]", 10)
    assert [at_call(timeline, call) for call in range(6)] == ["a "] * 4 + ["a b"] * 2
    assert at_call(timeline, 25) == "a "  # past the end (second-order samplers), A1111 falls back to the first


@pytest.mark.parametrize("prompt, parts", [
    ("a cat", [("a cat", 1.0)]),
    ("a cat AND a dog", [("a cat", 1.0), (" a dog", 1.0)]),
    ("a cat :1.2 AND a dog :0.5", [("a cat", 1.2), (" a dog", 0.5)]),
    ("a cat AND a dog:-1", [("a cat", 1.0), (" a dog", -1.0)]),
    ("ANDROID", [("ANDROID", 1.0)]),  # AND only as a word
    ("(a:1.2) cat", [("(a:1.2) cat", 1.0)]),
])
def test_composable_parts(prompt, parts):
    assert composable_parts(prompt) == parts


def test_prompt_variants_lists_every_text_once():
    assert prompt_variants("a [cat|dog] AND [x:y:0.5]", 10) == ["a cat", "a dog", " x", " y"]


def test_a_prompt_without_square_brackets_skips_the_parser(monkeypatch):
    """Nothing can schedule without `[`; the Earley parse of a long run of `(word:1.2)` would take seconds."""
    from sdui.engine import prompt_schedule

    def no_parser():
        raise AssertionError("parsed")

    monkeypatch.setattr(prompt_schedule, "_parser", no_parser)
    prompt_schedule._parse.cache_clear()
    prompt = ", ".join(f"(word{i}:1.{i % 9})" for i in range(80)) + ", cat | dog"
    assert schedule(prompt, 30) == [(30, prompt)]
    with pytest.raises(AssertionError, match="parsed"):
        schedule("a [cat:dog:2]", 4)
