"""A1111 prompt syntax: emphasis weights, BREAK, 75-token chunks, weighted embeddings."""

from __future__ import annotations

import pytest
import torch

from sdui.engine.prompts import (CHUNK_TOKENS, encode_chunks, encode_prompt_pair, parse_emphasis,
                                 tokenize_chunks)
from sdui.models.tokenizer import load_tokenizer


def weights(text: str) -> dict[str, float]:
    return {t: round(w, 6) for t, w in parse_emphasis(text)}


@pytest.mark.parametrize("text, expected", [
    ("a cat", {"a cat": 1.0}),
    ("(cat)", {"cat": 1.1}),
    ("[cat]", {"cat": round(1 / 1.1, 6)}),
    ("((cat))", {"cat": 1.21}),
    ("(cat:1.3)", {"cat": 1.3}),
    ("((cat:1.5))", {"cat": 1.65}),
    ("[(cat:2)]", {"cat": round(2 / 1.1, 6)}),
    ("(a (b) c:0.5)", {"a ": 0.5, "b": 0.55, " c": 0.5}),
    (r"\(cat\)", {"(cat)": 1.0}),
    ("(unclosed", {"unclosed": 1.1}),
    ("x ) y", {"x ) y": 1.0}),
    ("a:b (c:bad)", {"a:b ": 1.0, "c:bad": 1.1}),
])
def test_emphasis_weights(text, expected):
    assert weights(text) == expected


def test_break_is_its_own_marker():
    assert parse_emphasis("one BREAK two") == [("one", 1.0), ("BREAK", -1.0), ("two", 1.0)]
    assert parse_emphasis("BREAKFAST") == [("BREAKFAST", 1.0)]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def test_chunks_hold_75_tokens_and_keep_every_token(tok):
    chunks = tokenize_chunks(tok, "cat " * 200)
    assert [len(c.tokens) for c in chunks] == [75, 75, 50]
    assert sum(len(c.tokens) for c in chunks) == 200


def test_break_starts_a_new_chunk_and_weights_follow_tokens(tok):
    chunks = tokenize_chunks(tok, "a (red:1.5) cat BREAK dog")
    assert len(chunks) == 2
    red = tok.convert_tokens_to_ids("red</w>")
    assert chunks[0].weights[chunks[0].tokens.index(red)] == 1.5
    assert chunks[1].tokens == [tok.convert_tokens_to_ids("dog</w>")]


def test_comma_near_the_chunk_end_moves_the_tail_to_the_next_chunk(tok):
    prompt = "cat " * 70 + ", dog dog dog dog dog dog dog dog"
    chunks = tokenize_chunks(tok, prompt)
    assert len(chunks[0].tokens) == 71  # 70 cats and the comma
    assert chunks[1].tokens == [tok.convert_tokens_to_ids("dog</w>")] * 8


@pytest.fixture(scope="module")
def encoder(tiny_pipeline):
    return tiny_pipeline.text_encoder


def test_200_token_prompt_is_3x77_long_and_not_truncated(encoder, tok):
    words = ["cat"] * 199
    prompt = " ".join(words + ["dog"])
    other = " ".join(words + ["house"])
    a = encode_chunks(encoder, tok, tokenize_chunks(tok, prompt))
    b = encode_chunks(encoder, tok, tokenize_chunks(tok, other))
    assert a.shape == (1, 3 * 77, 32)
    # Only the last word differs: the first two chunks are equal, the third is not.
    assert torch.equal(a[:, :154], b[:, :154])
    assert not torch.allclose(a[:, 154:], b[:, 154:])


def test_plain_prompt_matches_diffusers_encode_prompt(tiny_pipeline, encoder, tok):
    ours = encode_chunks(encoder, tok, tokenize_chunks(tok, "a photo of an astronaut"))
    theirs, _ = tiny_pipeline.encode_prompt("a photo of an astronaut", "cpu", 1, False)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_weights_scale_the_token_and_keep_the_chunk_mean(encoder, tok):
    plain = encode_chunks(encoder, tok, tokenize_chunks(tok, "a red cat"))
    strong = encode_chunks(encoder, tok, tokenize_chunks(tok, "a (red:1.5) cat"))
    assert torch.allclose(plain.mean(), strong.mean(), atol=1e-5)
    position = 2  # BOS, a, red
    ratio = strong[0, position] / plain[0, position]
    other_ratio = strong[0, 1] / plain[0, 1]
    assert torch.allclose(ratio / other_ratio, torch.full_like(ratio, 1.5), atol=1e-3)


def test_negative_is_padded_to_the_prompts_chunk_count(encoder, tok):
    pos, neg = encode_prompt_pair(encoder, tok, "cat " * 100, "blurry")
    assert pos.shape == neg.shape == (1, 2 * 77, 32)
    pos, neg = encode_prompt_pair(encoder, tok, "", "ugly " * CHUNK_TOKENS * 2)
    assert pos.shape == neg.shape == (1, 2 * 77, 32)


def test_clip_skip_uses_an_earlier_layer(encoder, tok):
    chunks = tokenize_chunks(tok, "a cat")
    assert not torch.allclose(encode_chunks(encoder, tok, chunks, 1), encode_chunks(encoder, tok, chunks, 2))


def test_sdxl_plain_prompt_matches_diffusers_and_long_prompts_are_chunked(sdxl_manager):
    from sdui.engine.prompts import encode_prompt_pair_sdxl
    from sdui.models.manager import Task

    pipe = sdxl_manager.get(None, Task.TXT2IMG)
    encoders, tokenizers = [pipe.text_encoder, pipe.text_encoder_2], [pipe.tokenizer, pipe.tokenizer_2]
    ours = encode_prompt_pair_sdxl(encoders, tokenizers, "a photo of an astronaut", "blurry")
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
        "a photo of an astronaut", device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True,
        negative_prompt="blurry")
    assert ours["prompt_embeds"].shape == (1, 77, 64)
    assert torch.allclose(ours["prompt_embeds"], embeds, atol=1e-5)
    assert torch.allclose(ours["negative_prompt_embeds"], negative, atol=1e-5)
    assert torch.allclose(ours["pooled_prompt_embeds"], pooled, atol=1e-5)
    assert torch.allclose(ours["negative_pooled_prompt_embeds"], negative_pooled, atol=1e-5)
    long = encode_prompt_pair_sdxl(encoders, tokenizers, "cat " * 200, "")
    assert long["prompt_embeds"].shape == long["negative_prompt_embeds"].shape == (1, 3 * 77, 64)
    assert long["pooled_prompt_embeds"].shape == (1, 32)
