"""The token counter's numbers (A1111's rules over sdui's own chunking) and styles applied at Generate time."""

from __future__ import annotations

import pytest

from sdui.models.tokenizer import load_tokenizer
from sdui.ui import txt2img
from sdui.ui.prompt_tools import count_tokens, counter_html, with_styles


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def words(n: int) -> str:
    return " ".join(["cat"] * n)  # "cat" is one CLIP token


def test_one_chunk_holds_75_tokens(tokenizer):
    assert count_tokens("", tokenizer=tokenizer) == (0, 75)
    assert count_tokens(words(12), tokenizer=tokenizer) == (12, 75)
    assert count_tokens(words(75), tokenizer=tokenizer) == (75, 75)


def test_past_each_chunk_the_limit_grows(tokenizer):
    assert count_tokens(words(76), tokenizer=tokenizer) == (76, 150)
    assert count_tokens(words(151), tokenizer=tokenizer) == (151, 225)


def test_break_fills_the_chunk_it_ends(tokenizer):
    # A1111 counts a chunk closed by BREAK as its full 75.
    assert count_tokens("cat BREAK dog", tokenizer=tokenizer) == (76, 150)


def test_emphasis_markup_and_network_tags_are_not_counted(tokenizer):
    plain = count_tokens("a cat on a mat", tokenizer=tokenizer)
    assert plain == (5, 75)
    assert count_tokens("a (cat:1.3) on [a] ((mat))", tokenizer=tokenizer) == plain
    assert count_tokens("a cat <lora:detail:0.8> on a mat", tokenizer=tokenizer) == plain


def test_prompt_editing_counts_its_longest_variant(tokenizer):
    assert count_tokens(f"[cat:{words(80)}:0.5]", steps=10, tokenizer=tokenizer) == (80, 150)
    assert count_tokens(f"[{words(3)}|cat]", steps=4, tokenizer=tokenizer) == (3, 75)


def test_counter_shows_used_over_limit():
    assert ">76/150<" in counter_html(76, 150)


BOOK = {"Rainy": ["{prompt}, in the rain", "sunny"], "Best": ["masterpiece", ""]}


def test_generate_expands_the_selected_styles():
    values = {"prompt": "a cat", "negative_prompt": "blurry", "styles": ["Rainy", "Best"], "style_book": BOOK,
              "steps": 2.0, "width": 64, "height": 64}
    params = txt2img.to_params(values)
    assert params.prompt == "a cat, in the rain, masterpiece" and params.negative_prompt == "blurry, sunny"
    plain = txt2img.to_params({**values, "styles": []})
    assert plain.prompt == "a cat" and plain.negative_prompt == "blurry"


def test_a_style_gone_from_the_list_is_named():
    with pytest.raises(ValueError, match="style 'Gone' is not in styles.csv"):
        with_styles({"prompt": "a cat", "styles": ["Gone"], "style_book": BOOK})


def test_styles_reach_a_hires_prompt_of_its_own_only():
    values = {"prompt": "a cat", "hr_prompt": "a sharp cat", "hr_negative_prompt": "", "styles": ["Best"],
              "style_book": BOOK}
    styled = with_styles(values)
    assert (styled["prompt"], styled["hr_prompt"], styled["hr_negative_prompt"]) == \
        ("a cat, masterpiece", "a sharp cat, masterpiece", "")
