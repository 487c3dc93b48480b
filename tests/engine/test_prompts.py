"""A1111 prompt syntax: emphasis weights, BREAK, 75-token chunks, weighted embeddings."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import pytest
import torch

from sdui.engine.prompts import (CHUNK_TOKENS, PLACEHOLDER, Chunk, EmbeddingFix, encode_chunks, encode_prompt_pair,
                                 encode_prompt_pair_sdxl, parse_emphasis, tokenize_chunks)
from sdui.models.catalog import HashCache
from sdui.models.tokenizer import load_tokenizer
from sdui.networks.embeddings import Embedding, EmbeddingSet
from sdui.networks.folders import EMBEDDING_SUFFIXES, NetworkFolder
from tests.networks.embedding_files import (vectors, write_a1111_parameter_dict_pt, write_a1111_pt,
                                            write_diffusers_bin, write_diffusers_safetensors,
                                            write_emb_params_safetensors, write_sdxl_safetensors)


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


# Textual-inversion embeddings: names found among the tokens, vectors in place of their token embeddings.

TRIO = vectors(3, 32, seed=1)  # the vectors of every "trio" file below, in each format
WORDS = "cat dog house"  # three one-token words whose table rows a copied encoder gets set to TRIO


def _set(folder: Path, tok, widths=(32,), **kwargs) -> EmbeddingSet:
    files = NetworkFolder([folder], EMBEDDING_SUFFIXES, HashCache(folder.parent / "hashes.json")).list()
    return EmbeddingSet.build(files, widths, tok, **kwargs)


@pytest.fixture(scope="module")
def ti(tmp_path_factory, tok) -> EmbeddingSet:
    folder = tmp_path_factory.mktemp("ti") / "embeddings"
    folder.mkdir()
    write_a1111_pt(folder / "trio.pt", TRIO)
    write_a1111_parameter_dict_pt(folder / "trio_old.pt", TRIO)
    write_emb_params_safetensors(folder / "trio_st.safetensors", TRIO)
    write_diffusers_bin(folder / "trio_bin.bin", TRIO)
    write_diffusers_safetensors(folder / "trio_dst.safetensors", TRIO)
    write_a1111_pt(folder / "alpha.pt", vectors(2, 32, seed=5))
    write_emb_params_safetensors(folder / "beta.safetensors", vectors(2, 32, seed=5))
    write_a1111_pt(folder / "gamma.pt", vectors(2, 32, seed=6))
    write_diffusers_bin(folder / "solo.bin", vectors(1, 32, seed=7))
    write_emb_params_safetensors(folder / "full.safetensors", vectors(75, 32, seed=8))
    result = _set(folder, tok)
    assert sorted(result.loaded) == ["alpha", "beta", "full", "gamma", "solo", "trio", "trio_bin", "trio_dst",
                                     "trio_old", "trio_st"], result.skipped
    return result


def _with_rows(encoder, tok, words: str, rows: torch.Tensor):
    """A copy of `encoder` whose token-embedding rows for `words` (one token each) are `rows`."""
    copy = deepcopy(encoder)
    ids = tok(words, add_special_tokens=False).input_ids
    with torch.no_grad():
        getattr(copy, "text_model", copy).embeddings.token_embedding.weight[ids] = rows
    return copy


@pytest.mark.parametrize("name", ["trio", "trio_old", "trio_st", "trio_bin", "trio_dst"])
@pytest.mark.parametrize("clip_skip", [1, 2])
def test_embedding_name_is_its_vectors_through_the_encoder(encoder, tok, ti, name, clip_skip):
    ours = encode_chunks(encoder, tok, tokenize_chunks(tok, f"a photo of {name}", ti), clip_skip)
    expected = encode_chunks(_with_rows(encoder, tok, WORDS, TRIO), tok,
                             tokenize_chunks(tok, f"a photo of {WORDS}"), clip_skip)
    assert torch.equal(ours, expected)
    as_text = encode_chunks(encoder, tok, tokenize_chunks(tok, f"a photo of {name}"), clip_skip)
    assert not torch.allclose(ours, as_text, atol=1e-3)


def test_chunk_records_where_the_vectors_stand(tok, ti):
    (chunk,) = tokenize_chunks(tok, "a trio, solo", ti)
    a, comma = tok("a ,", add_special_tokens=False).input_ids
    assert chunk.tokens == [a, PLACEHOLDER, PLACEHOLDER, PLACEHOLDER, comma, PLACEHOLDER]
    assert chunk.fixes == [EmbeddingFix(1, ti.loaded["trio"]), EmbeddingFix(5, ti.loaded["solo"])]
    assert tokenize_chunks(tok, "a trio, solo")[0].fixes == []


def test_same_vectors_give_the_same_conditioning_whatever_the_name(encoder, tok, ti):
    def cond(name: str) -> torch.Tensor:
        return encode_chunks(encoder, tok, tokenize_chunks(tok, f"a photo of {name}, best quality", ti))

    assert torch.equal(cond("alpha"), cond("beta"))
    assert not torch.allclose(cond("alpha"), cond("gamma"), atol=1e-3)


def test_emphasis_weights_the_embedding_positions(encoder, tok, ti):
    (strong,) = tokenize_chunks(tok, "a (trio:1.2) cat", ti)
    assert strong.weights == [1.0, 1.2, 1.2, 1.2, 1.0]
    plain = encode_chunks(encoder, tok, tokenize_chunks(tok, "a trio cat", ti))
    weighted = encode_chunks(encoder, tok, [strong])
    other = weighted[0, 1] / plain[0, 1]  # "a": only the mean restoring changes it
    for position in (2, 3, 4):  # BOS, a, then the three vectors
        ratio = weighted[0, position] / plain[0, position]
        assert torch.allclose(ratio / other, torch.full_like(ratio, 1.2), atol=1e-3)


def test_an_embedding_that_does_not_fit_moves_whole_to_the_next_chunk(tok, ti):
    trio = ti.loaded["trio"]
    chunks = tokenize_chunks(tok, "cat " * 73 + "trio", ti)
    assert [len(c.tokens) for c in chunks] == [73, 3]
    assert [c.fixes for c in chunks] == [[], [EmbeddingFix(0, trio)]]
    chunks = tokenize_chunks(tok, "cat " * 72 + "trio dog", ti)
    assert [len(c.tokens) for c in chunks] == [75, 1]
    assert [c.fixes for c in chunks] == [[EmbeddingFix(72, trio)], []]
    chunks = tokenize_chunks(tok, "a full", ti)  # 75 vectors fill a chunk of their own
    assert [len(c.tokens) for c in chunks] == [1, 75]
    assert [c.fixes for c in chunks] == [[], [EmbeddingFix(0, ti.loaded["full"])]]


def test_comma_backtrack_moves_an_embedding_with_the_tail(encoder, tok, ti):
    # 70 cats, the comma (71), the trio (74), a dog (75); the next dog cuts after the comma.
    chunks = tokenize_chunks(tok, "cat " * 70 + ", trio dog dog", ti)
    assert [len(c.tokens) for c in chunks] == [71, 5]
    assert [c.fixes for c in chunks] == [[], [EmbeddingFix(0, ti.loaded["trio"])]]
    moved = encode_chunks(encoder, tok, chunks)[:, 77:]
    alone = encode_chunks(encoder, tok, tokenize_chunks(tok, "trio dog dog", ti))
    assert torch.equal(moved, alone)


def test_vectors_in_a_later_chunk_land_in_its_rows(encoder, tok, ti):
    ours = encode_chunks(encoder, tok, tokenize_chunks(tok, "cat " * 73 + "trio", ti))
    copy = _with_rows(encoder, tok, WORDS, TRIO)
    expected_second = encode_chunks(copy, tok, tokenize_chunks(tok, WORDS))
    assert ours.shape == (1, 2 * 77, 32)
    assert torch.equal(ours[:, 77:], expected_second)
    assert torch.equal(ours[:, :77], encode_chunks(encoder, tok, tokenize_chunks(tok, "cat " * 73)))


def test_the_hook_is_gone_after_encoding_even_when_it_fails(encoder, tok, ti):
    layer = getattr(encoder, "text_model", encoder).embeddings.token_embedding
    before = encode_chunks(encoder, tok, tokenize_chunks(tok, "a trio"))
    encode_chunks(encoder, tok, tokenize_chunks(tok, "a trio", ti))
    assert not layer._forward_hooks
    bad = Chunk([10**6], [1.0], [EmbeddingFix(0, ti.loaded["solo"])])  # an id past the table: forward raises
    with pytest.raises(IndexError):
        encode_chunks(encoder, tok, [bad])
    assert not layer._forward_hooks
    assert torch.equal(encode_chunks(encoder, tok, tokenize_chunks(tok, "a trio")), before)


def test_vectors_of_the_wrong_width_are_refused(encoder, tok):
    wide = Embedding("wide", (torch.zeros(1, 768),))
    with pytest.raises(ValueError, match="'wide' has vector sets of width 768, but text encoder 1 is 32 wide"):
        encode_chunks(encoder, tok, [Chunk([PLACEHOLDER], [1.0], [EmbeddingFix(0, wide)])])


def test_used_names_come_from_prompt_and_negative(encoder, tok, ti):
    used: set[str] = set()
    pos, neg = encode_prompt_pair(encoder, tok, "a trio, (alpha:1.2) cat", "solo, blurry", embeddings=ti, used=used)
    assert used == {"trio", "alpha", "solo"}
    assert pos.shape == neg.shape == (1, 77, 32)
    plain_pos, _ = encode_prompt_pair(encoder, tok, "a trio, (alpha:1.2) cat", "solo, blurry")
    assert not torch.allclose(pos, plain_pos, atol=1e-3)
    nothing: set[str] = set()
    encode_prompt_pair(encoder, tok, "a cat", "blurry", embeddings=ti, used=nothing)
    assert nothing == set()


@pytest.fixture(scope="module")
def sdxl_pipe(sdxl_manager):
    from sdui.models.manager import Task

    return sdxl_manager.get(None, Task.TXT2IMG)


@pytest.fixture(scope="module")
def ti_xl(tmp_path_factory, tok) -> EmbeddingSet:
    folder = tmp_path_factory.mktemp("ti-xl") / "embeddings"
    folder.mkdir()
    write_sdxl_safetensors(folder / "both.safetensors", TRIO, vectors(3, 32, seed=2))
    write_sdxl_safetensors(folder / "same_l.safetensors", TRIO, vectors(3, 32, seed=3))
    write_sdxl_safetensors(folder / "same_g.safetensors", vectors(3, 32, seed=4), vectors(3, 32, seed=2))
    write_a1111_pt(folder / "sd1.pt", TRIO)
    return folder


def test_sdxl_each_encoder_gets_its_own_vectors(sdxl_pipe, tok, ti_xl):
    xl = _set(ti_xl, tok, (32, 32))
    assert sorted(xl.loaded) == ["both", "same_g", "same_l"] and "one text encoder" in xl.skipped["sd1"]
    encoders, tokenizers = [sdxl_pipe.text_encoder, sdxl_pipe.text_encoder_2], [sdxl_pipe.tokenizer,
                                                                              sdxl_pipe.tokenizer_2]
    used: set[str] = set()

    def embeds(prompt: str) -> torch.Tensor:
        return encode_prompt_pair_sdxl(encoders, tokenizers, prompt, "", embeddings=xl, used=used)["prompt_embeds"]

    both, same_l, same_g = embeds("a both"), embeds("a same_l"), embeds("a same_g")
    assert used == {"both", "same_l", "same_g"}
    assert both.shape == (1, 77, 64)
    assert torch.equal(both[..., :32], same_l[..., :32]) and not torch.allclose(both[..., 32:], same_l[..., 32:])
    assert torch.equal(both[..., 32:], same_g[..., 32:]) and not torch.allclose(both[..., :32], same_g[..., :32])
    # The first encoder's half is TRIO through it: the same as a copy whose table holds TRIO.
    first = _with_rows(sdxl_pipe.text_encoder, tok, WORDS, TRIO)
    expected = encode_prompt_pair_sdxl([first, sdxl_pipe.text_encoder_2], tokenizers, f"a {WORDS}", "")
    assert torch.equal(both[..., :32], expected["prompt_embeds"][..., :32])


def test_sdxl_refiner_like_encoder_takes_clip_g(sdxl_pipe, tok, ti_xl):
    xl = _set(ti_xl, tok, (32, 32))
    refiner = _set(ti_xl, tok, (32,), keys=("clip_g",))
    assert torch.equal(refiner.loaded["both"].vectors[0], vectors(3, 32, seed=2))
    full = encode_prompt_pair_sdxl([sdxl_pipe.text_encoder, sdxl_pipe.text_encoder_2],
                                   [sdxl_pipe.tokenizer, sdxl_pipe.tokenizer_2], "a both", "sd1", embeddings=xl)
    used: set[str] = set()
    alone = encode_prompt_pair_sdxl([sdxl_pipe.text_encoder_2], [sdxl_pipe.tokenizer_2], "a both", "sd1",
                                    embeddings=refiner, used=used)
    assert used == {"both", "sd1"}  # a refiner takes a one-set 32-wide file too
    assert torch.equal(alone["prompt_embeds"], full["prompt_embeds"][..., 32:])
    assert torch.equal(alone["pooled_prompt_embeds"], full["pooled_prompt_embeds"])
    plain = encode_prompt_pair_sdxl([sdxl_pipe.text_encoder_2], [sdxl_pipe.tokenizer_2], "a both", "sd1")
    assert not torch.allclose(alone["prompt_embeds"], plain["prompt_embeds"], atol=1e-3)
    assert not torch.allclose(alone["pooled_prompt_embeds"], plain["pooled_prompt_embeds"], atol=1e-3)
