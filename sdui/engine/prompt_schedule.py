"""A1111's prompt editing, alternation and composable prompts: which text a prompt is at each sampling step.

- `[from:to:when]`, `[to:when]`, `[from::when]`: `when` with a decimal point is a fraction of the steps, without
  one a step number (A1111's timeline since v1.7; `use_old_scheduling`: below 1 a fraction, else a step number).
  With the hires pass the timeline goes on: fractions from 1 to 2 and step numbers past the first pass's steps
  fall in the second pass.
- `[a|b|c]`: a, b, c, a, … one per step. Nesting works; `\\[`, `\\:`, `\\|` … keep a character literal.
- `a cat AND a dog :1.2`: parts whose predictions are mixed with their weights (see engine/conditioning.py).

A schedule is a list of (end_step, text): the text holds for the sampler's calls 0…end_step (A1111 compares its
0-based call counter with `<=`). A prompt that does not parse (unbalanced brackets) is its own text at every step,
as in A1111. Emphasis and BREAK are left to engine/prompts.py.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TypeVar

import lark

# A1111's prompt-editing language (its `schedule_parser`): anything not matched here stays plain text.
_GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
           | "(" prompt ":" prompt ")"
           | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
alternate: "[" prompt ("|" [prompt])+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""

_AND = re.compile(r"\bAND\b")
_PART_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")

Schedule = list[tuple[int, str]]
T = TypeVar("T")


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(_GRAMMAR)


@lru_cache(maxsize=256)
def _parse(prompt: str) -> lark.Tree | None:
    try:
        return _parser().parse(prompt)
    except lark.exceptions.LarkError:
        return None


class _Timeline:
    """How `when` numbers map to this pass's steps."""

    def __init__(self, steps: int, hires_steps: int | None, old: bool) -> None:
        self.old = old
        self.hires = hires_steps is not None and not old
        self.steps = hires_steps if self.hires else steps
        self.first_pass_steps = steps

    def step_of(self, number: lark.Token) -> int:
        value = float(number)
        if self.old:
            at = value * self.steps if value < 1 else value
        elif "." in number:
            at = (value - (1.0 if self.hires else 0.0)) * self.steps
        else:
            at = value - (self.first_pass_steps if self.hires else 0)
        return min(self.steps, int(at))


def schedule(prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False) -> Schedule:
    """The texts `prompt` takes in a pass of `steps` (or, given `hires_steps`, in the hires pass after it)."""
    timeline = _Timeline(steps, hires_steps, use_old_scheduling)
    # Without a square bracket nothing schedules and the parser would give the text back as it is; skipping it
    # matters: its Earley parse of a long run of `(word:1.2)` takes seconds (A1111 pays that on every prompt).
    tree = _parse(prompt) if "[" in prompt else None
    if tree is None:
        return [(timeline.steps, prompt)]
    ends = {timeline.steps}
    for node in tree.iter_subtrees():
        if node.data == "scheduled":
            at = timeline.step_of(node.children[-2])
            if at >= 1:
                ends.add(at)
        elif node.data == "alternate":
            ends.update(range(1, timeline.steps + 1))
    return [(end, "".join(_text_at(tree, end, timeline))) for end in sorted(ends)]


def _text_at(node, step: int, timeline: _Timeline):
    if isinstance(node, lark.Token):
        yield str(node)
        return
    if node is None:
        return
    if node.data == "scheduled":
        before, after, _, number, _ = node.children
        yield from _text_at(before if step <= timeline.step_of(number) else after, step, timeline)
        return
    if node.data == "alternate":
        options = node.children
        yield from _text_at(options[(step - 1) % len(options)], step, timeline)
        return
    for child in node.children:
        yield from _text_at(child, step, timeline)


def at_call(timeline: list[tuple[int, T]], call: int) -> T:
    """The entry of the sampler's call `call` (0-based) in a schedule (or its encodings): the first entry with
    call <= end_step; past the end (second-order samplers make more calls than steps) A1111 falls back to the
    first entry, and so does sdui, for the same pixels."""
    return next((value for end, value in timeline if call <= end), timeline[0][1])


def composable_parts(prompt: str) -> list[tuple[str, float]]:
    """`a AND b :1.2` → [("a", 1.0), ("b", 1.2)]: A1111's AND parts and their weights (one part: no AND)."""
    parts = []
    for part in _AND.split(prompt):
        match = _PART_WEIGHT.search(part)
        text, weight = match.groups() if match is not None else (part, None)
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts


def prompt_variants(prompt: str, steps: int) -> list[str]:
    """Every distinct text `prompt` takes over `steps` steps, AND parts included (for token counting)."""
    texts = [text for part, _ in composable_parts(prompt) for _, text in schedule(part, steps)]
    return list(dict.fromkeys(texts))
