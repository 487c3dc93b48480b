"""Catalog: scanning, A1111 titles, cached hashes, refresh, and names that walk out of the models dir."""

import hashlib
import json
import os
import shutil

import pytest
import torch

from sdui.models.catalog import Catalog
from sdui.models.errors import ModelNotFound


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_titles_names_and_formats(tmp_path, models_dir, tiny_single_files):
    sub = models_dir / "sub"
    sub.mkdir()
    shutil.copyfile(tiny_single_files["ckpt"], sub / "c.ckpt")
    shutil.copytree(tiny_single_files["diffusers"], models_dir / "folder-model")
    cat = Catalog(models_dir, tmp_path / "cache")
    for item in cat.list():
        item.short_hash  # hashed once (as the first image's infotext would)
    by_name = {i.name: i for i in cat.refresh()}
    assert sorted(by_name) == ["a", "b", "folder-model", "sub_c"]
    a = by_name["a"]
    assert a.title == f"a.safetensors [{_sha(models_dir / 'a.safetensors')[:10]}]"
    assert a.format == "safetensors" and a.filename == str(models_dir / "a.safetensors")
    assert by_name["sub_c"].title.startswith("sub/c.ckpt [") and by_name["sub_c"].format == "ckpt"
    folder = by_name["folder-model"]
    assert folder.format == "diffusers" and folder.title == f"folder-model [{folder.short_hash}]"


def test_listing_reads_no_file_and_titles_show_the_hash_from_the_scan_after_it_is_known(tmp_path, models_dir):
    """As A1111: a big models dir lists at once; a hash is computed when first needed, then cached on disk."""
    cache = tmp_path / "cache"
    cat = Catalog(models_dir, cache)
    assert [i.title for i in cat.list()] == ["a.safetensors", "b.safetensors"] and cat.hashes.computed == 0
    assert all(i.known_sha256 is None for i in cat.list())
    with pytest.raises(ModelNotFound):  # matching by hash uses known hashes only: it must not read every file
        cat.find(_sha(models_dir / "a.safetensors")[:10])
    a = cat.find("a.safetensors")
    assert a.short_hash == _sha(models_dir / "a.safetensors")[:10] and cat.hashes.computed == 1
    assert a.title == "a.safetensors"  # stable until the next scan: a page's dropdown value keeps matching
    assert a.known_sha256 == _sha(models_dir / "a.safetensors") and cat.find(a.short_hash).path == a.path
    assert [i.title for i in cat.refresh()] == [f"a.safetensors [{a.short_hash}]", "b.safetensors"]
    assert cat.hashes.computed == 1
    stored = json.loads((cache / "hashes.json").read_text())
    assert stored[str(models_dir / "a.safetensors")]["sha256"] == _sha(models_dir / "a.safetensors")
    again = Catalog(models_dir, cache)  # a new process reads the cache file instead of the model
    assert again.list()[0].title == f"a.safetensors [{a.short_hash}]" and again.hashes.computed == 0
    path = models_dir / "a.safetensors"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert again.find("a.safetensors").known_sha256 is None  # a changed file: the old hash no longer counts
    again.find("a.safetensors").short_hash
    assert again.hashes.computed == 1  # a changed mtime means re-hash


def test_refresh_picks_up_new_and_removed_files(tmp_path, models_dir):
    cat = Catalog(models_dir, tmp_path / "cache")
    assert len(cat.list()) == 2
    shutil.copyfile(models_dir / "a.safetensors", models_dir / "new.safetensors")
    (models_dir / "b.safetensors").unlink()
    assert [i.name for i in cat.refresh()] == ["a", "new"]
    assert cat.find("new").name == "new"  # find() also rescans on a miss


def test_find_by_title_name_filename_and_hash(tmp_path, models_dir):
    cat = Catalog(models_dir, tmp_path / "cache")
    a = cat.find("a")
    a.short_hash  # known from now on
    for key in (a.title, f"a.safetensors [{a.short_hash}]", "a.safetensors", "a", a.short_hash,
                str(models_dir / "a.safetensors")):
        assert cat.find(key).path == a.path, key


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "../models/../../x.safetensors",
                                  "sub/../../outside.safetensors", "nothing-here"])
def test_traversal_and_unknown_names_are_not_found(tmp_path, models_dir, name):
    (tmp_path / "outside.safetensors").write_bytes(b"x")
    with pytest.raises(ModelNotFound) as info:
        Catalog(models_dir, tmp_path / "cache").find(name)
    assert name in str(info.value)
    # A path leading out of the models dir is refused as such (before any lookup), not merely not found.
    outside = name != "nothing-here"
    assert ("outside the models dir" in str(info.value)) == outside, str(info.value)


def test_broken_files_are_listed_beside_the_good_ones(tmp_path, models_dir):
    (models_dir / "empty.safetensors").write_bytes(b"")
    (models_dir / "random.ckpt").write_bytes(os.urandom(256))
    torch.save({"weights": torch.zeros(2)}, models_dir / "optimizer.pt")  # a .pt that is no checkpoint
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(2)}}, models_dir / "model.bin")
    (models_dir / "notes.txt").write_text("hi")
    names = [i.name for i in Catalog(models_dir, tmp_path / "cache").list()]
    assert names == ["a", "b", "empty", "model", "random"]


def test_missing_models_dir_is_an_empty_catalog(tmp_path):
    assert Catalog(tmp_path / "nope", tmp_path / "cache").list() == []


def test_network_folders_and_vae_files_are_never_listed_as_checkpoints(tmp_path, tiny_single_files):
    """A1111's layout: models/Stable-diffusion and loose files list; Lora, VAE, ESRGAN, ... and *.vae.* do not."""
    models = tmp_path / "models"
    checkpoint = tiny_single_files["safetensors"]
    for rel in ("Stable-diffusion/real.safetensors", "ldm/stable-diffusion-1/model.ckpt", "loose.safetensors",
                "Lora/style.safetensors", "LyCORIS/loha.safetensors", "VAE/vae.safetensors",
                "ESRGAN/4x.safetensors", "loose.vae.safetensors", "Stable-diffusion/real.vae.pt",
                "custom-loras/x.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint if not rel.endswith(".ckpt") else tiny_single_files["ckpt"], models / rel)
    listed = Catalog(models, tmp_path / "cache", exclude=[models / "custom-loras"]).list()
    assert [i.rel for i in listed] == ["ldm/stable-diffusion-1/model.ckpt", "loose.safetensors",
                                       "Stable-diffusion/real.safetensors"]
    # The reserved names count only directly under the models dir: a user's own "sub/Lora" folder is theirs.
    (models / "sub" / "Lora").mkdir(parents=True)
    shutil.copyfile(checkpoint, models / "sub" / "Lora" / "kept.safetensors")
    assert "sub/Lora/kept.safetensors" in [i.rel for i in Catalog(models, tmp_path / "cache").list()]


def test_addnet_hash_skips_the_header_and_is_cached_apart_from_sha256(tmp_path):
    from safetensors.torch import save_file

    from sdui.models.catalog import HashCache

    path = tmp_path / "lora.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32)}, str(path), metadata={"ss_output_name": "x"})
    data = path.read_bytes()
    body = data[8 + int.from_bytes(data[:8], "little"):]
    hashes = HashCache(tmp_path / "hashes.json")
    assert hashes.addnet(path) == hashlib.sha256(body).hexdigest() != hashes.sha256(path) == _sha(path)
    again = HashCache(tmp_path / "hashes.json")  # from the cache file: nothing is read again
    assert again.known(path, "addnet") == hashlib.sha256(body).hexdigest() and again.known(path) == _sha(path)
    assert again.computed == 0
