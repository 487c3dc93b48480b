"""Embedding files in every format, and the set that fits one model: names found on the token level."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sdui.models.catalog import HashCache
from sdui.models.errors import BrokenModel, UnrecognizedModel, UnsafeModel
from sdui.models.tokenizer import load_tokenizer
from sdui.networks.embeddings import Embedding, EmbeddingSet, read_embedding_file
from sdui.networks.folders import EMBEDDING_SUFFIXES, NetworkFolder
from tests.networks.embedding_files import (vectors, write_a1111_parameter_dict_pt, write_a1111_pt, write_corrupt,
                                            write_diffusers_bin, write_diffusers_safetensors,
                                            write_emb_params_safetensors, write_pickle_with_code,
                                            write_sdxl_safetensors)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def listed(folder: Path):
    """The folder's files as the app lists them (NetworkFile, name = stem)."""
    return NetworkFolder([folder], EMBEDDING_SUFFIXES, HashCache(folder.parent / "hashes.json")).list()


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "embeddings").mkdir()
    return tmp_path / "embeddings"


@pytest.mark.parametrize("writer, suffix", [
    (write_a1111_pt, ".pt"), (write_a1111_parameter_dict_pt, ".pt"), (write_emb_params_safetensors, ".safetensors"),
    (write_diffusers_bin, ".bin"), (write_diffusers_safetensors, ".safetensors")])
@pytest.mark.parametrize("n", [1, 3])
def test_every_format_reads_as_n_vectors(tmp_path, writer, suffix, n):
    vecs = vectors(n, 32, seed=n)
    data = read_embedding_file(writer(tmp_path / f"emb{suffix}", vecs))
    assert list(data.vectors) == ["emb_params"]
    assert data.vectors["emb_params"].shape == (n, 32)
    assert torch.equal(data.vectors["emb_params"], vecs)


def test_a1111_training_details_are_kept(tmp_path):
    data = read_embedding_file(write_a1111_pt(tmp_path / "e.pt", vectors(2), step=1234, checkpoint="0123abcd",
                                              checkpoint_name="v1-5"))
    assert (data.step, data.checkpoint, data.checkpoint_name) == (1234, "0123abcd", "v1-5")
    assert read_embedding_file(write_emb_params_safetensors(tmp_path / "e.safetensors", vectors(2))).step is None


def test_sdxl_file_has_both_sets(tmp_path):
    data = read_embedding_file(write_sdxl_safetensors(tmp_path / "x.safetensors", vectors(2, 768), vectors(2, 1280)))
    assert {k: tuple(v.shape) for k, v in data.vectors.items()} == {"clip_l": (2, 768), "clip_g": (2, 1280)}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_broken_and_hostile_files_raise_naming_the_file(tmp_path):
    for suffix in (".pt", ".bin", ".safetensors"):
        path = write_corrupt(tmp_path / f"bad{suffix}")
        with pytest.raises(BrokenModel, match=f"bad\\{suffix}"):
            read_embedding_file(path)
    marker = tmp_path / "pwned"
    for i, kind in enumerate([{}, {"plain_pickle": True}, {"parameter_dict": True}]):
        path = write_pickle_with_code(tmp_path / f"evil{i}.pt", marker, **kind)
        with pytest.raises(UnsafeModel, match=f"evil{i}.pt.*(posix|os).system"):
            read_embedding_file(path)
    assert not marker.exists()
    torch.save({"a": torch.zeros(2), "b": torch.zeros(2)}, tmp_path / "two.bin")
    with pytest.raises(UnrecognizedModel, match="two.bin: not an embedding: it holds a, b"):
        read_embedding_file(tmp_path / "two.bin")
    huge = tmp_path / "huge.safetensors"
    with huge.open("wb") as f:  # sparse: 65 MB on paper, nothing read
        f.truncate(65 * 2**20)
    with pytest.raises(UnrecognizedModel, match="huge.safetensors: 65 MiB is too big for an embedding"):
        read_embedding_file(huge)
    torch.save({"emb_params": torch.zeros(2, 3, 4)}, tmp_path / "cube.pt")
    with pytest.raises(BrokenModel, match=r"cube.pt: emb_params has shape \[2, 3, 4\]"):
        read_embedding_file(tmp_path / "cube.pt")


def test_set_loads_what_fits_and_says_why_the_rest_is_skipped(folder, tok):
    write_a1111_pt(folder / "good.pt", vectors(2, 768))
    write_a1111_pt(folder / "sd2.pt", vectors(1, 1024))
    write_sdxl_safetensors(folder / "xl.safetensors", vectors(1, 768), vectors(1, 1280))
    write_emb_params_safetensors(folder / "huge.safetensors", vectors(76, 768))
    write_emb_params_safetensors(folder / "full.safetensors", vectors(75, 768))
    write_corrupt(folder / "broken.safetensors")
    marker = folder.parent / "pwned"
    write_pickle_with_code(folder / "evil.pt", marker)
    before = len(tok)
    result = EmbeddingSet.build(listed(folder), (768,), tok)
    assert sorted(result.loaded) == ["full", "good"]
    assert result.loaded["good"].n_vectors == 2 and result.loaded["full"].n_vectors == 75
    assert result.skipped["sd2"] == "made for width 1024, this model's text encoder is 768"
    assert result.skipped["xl"] == "made for SDXL (clip_l and clip_g vectors); this model has one text encoder"
    assert result.skipped["huge"] == "has 76 vectors, more than the 75 tokens of a prompt chunk"
    assert "broken.safetensors" in result.skipped["broken"] and "not a valid safetensors" in result.skipped["broken"]
    assert "evil.pt" in result.skipped["evil"] and "refusing" in result.skipped["evil"]
    assert not marker.exists()
    assert len(tok) == before == 49408


def test_width_is_checked_per_encoder(folder, tok):
    write_a1111_pt(folder / "sd1.pt", vectors(1, 768))
    write_sdxl_safetensors(folder / "xl.safetensors", vectors(1, 768), vectors(1, 1280))
    write_sdxl_safetensors(folder / "odd.safetensors", vectors(1, 768), vectors(1, 1024))
    files = listed(folder)
    sd2 = EmbeddingSet.build(files, (1024,), tok)
    assert sd2.skipped["sd1"] == "made for width 768, this model's text encoder is 1024"
    sdxl = EmbeddingSet.build(files, (768, 1280), tok)
    assert list(sdxl.loaded) == ["xl"]
    assert [tuple(v.shape) for v in sdxl.loaded["xl"].vectors] == [(1, 768), (1, 1280)]
    assert sdxl.skipped["sd1"] == ("made for a model with one text encoder (emb_params vectors); this SDXL model "
                                   "needs clip_l and clip_g")
    assert sdxl.skipped["odd"] == "made for width 1024, this model's text encoder 2 (clip_g) is 1280"
    for keys in (("clip_g",), None):  # a lone 1280-wide encoder is the refiner's: clip_g by default
        refiner = EmbeddingSet.build(files, (1280,), tok, keys=keys)
        assert list(refiner.loaded) == ["xl"]
        assert [tuple(v.shape) for v in refiner.loaded["xl"].vectors] == [(1, 1280)]
        assert refiner.skipped["odd"] == "made for width 1024, this model's text encoder is 1280"


def test_read_is_injectable_so_a_caller_can_cache_reads(folder, tok):
    write_a1111_pt(folder / "good.pt", vectors(2, 768))
    write_a1111_pt(folder / "sd2.pt", vectors(1, 1024))
    reads: list[str] = []

    def read(path: Path):
        reads.append(path.name)
        return read_embedding_file(path)

    files = listed(folder)
    assert list(EmbeddingSet.build(files, (768,), tok, read=read).loaded) == ["good"]
    assert list(EmbeddingSet.build(files, (1024,), tok, read=read).loaded) == ["sd2"]
    assert reads == ["good.pt", "sd2.pt"] * 2


def test_names_are_found_on_the_token_level_longest_first(folder, tok):
    write_a1111_pt(folder / "bad.pt", vectors(1, 32))
    write_a1111_pt(folder / "bad hands.pt", vectors(2, 32))
    write_a1111_pt(folder / "EasyNegative.pt", vectors(3, 32))
    result = EmbeddingSet.build(listed(folder), (32,), tok)
    ids = tok("a bad hands, easynegative bad", add_special_tokens=False).input_ids
    bad, hands = tok("bad hands", add_special_tokens=False).input_ids
    easy = tok("easynegative", add_special_tokens=False).input_ids
    assert ids[1:3] == [bad, hands]
    found = result.find_at(ids, 1)
    assert found is not None and (found[0].name, found[1]) == ("bad hands", 2)
    found = result.find_at(ids, 4)  # the prompt lower-cases as CLIP does; the name's case does not matter
    assert found is not None and (found[0].name, found[1]) == ("EasyNegative", len(easy))
    found = result.find_at(ids, len(ids) - 1)
    assert found is not None and (found[0].name, found[1]) == ("bad", 1)
    assert result.find_at(ids, 0) is None and result.find_at(ids, 2) is None


def test_same_name_twice_and_names_of_the_same_tokens(folder, tok):
    (folder / "sub").mkdir()
    write_a1111_pt(folder / "alpha.pt", vectors(1, 32))
    write_a1111_pt(folder / "sub" / "alpha.pt", vectors(2, 32))
    write_a1111_pt(folder / "Beta.pt", vectors(1, 32))
    write_emb_params_safetensors(folder / "beta.safetensors", vectors(1, 32))
    result = EmbeddingSet.build(listed(folder), (32,), tok)
    assert sorted(result.loaded) == ["Beta", "alpha"]
    assert result.loaded["alpha"].n_vectors == 1
    assert result.skipped == {"sub/alpha.pt": "another embedding named 'alpha' is already listed",
                              "beta": "its name reads as the same tokens as 'Beta', which is used"}


def test_for_pipeline_reads_the_encoders_widths(folder, tok, tiny_pipeline):
    from types import SimpleNamespace

    write_a1111_pt(folder / "sd.pt", vectors(1, 32))
    write_sdxl_safetensors(folder / "xl.safetensors", vectors(1, 32, seed=1), vectors(1, 32, seed=2))
    files = listed(folder)
    encoder = tiny_pipeline.text_encoder
    plain = EmbeddingSet.for_pipeline(files, tiny_pipeline)
    assert plain.widths == (32,) and list(plain.loaded) == ["sd"] and "made for SDXL" in plain.skipped["xl"]
    xl = EmbeddingSet.for_pipeline(files, SimpleNamespace(text_encoder=encoder, tokenizer=tok, text_encoder_2=encoder,
                                                          tokenizer_2=tok))
    assert xl.widths == (32, 32) and list(xl.loaded) == ["xl"]
    refiner = EmbeddingSet.for_pipeline(files, SimpleNamespace(text_encoder=None, tokenizer=None,
                                                               text_encoder_2=encoder, tokenizer_2=tok))
    assert sorted(refiner.loaded) == ["sd", "xl"]
    assert torch.equal(refiner.loaded["xl"].vectors[0], vectors(1, 32, seed=2))  # clip_g, not clip_l


def test_embedding_compares_by_identity():
    one = Embedding("a", (torch.zeros(1, 4),))
    assert one == one and one != Embedding("a", (torch.zeros(1, 4),))
