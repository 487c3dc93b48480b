"""Network folders: listing without reading, lookups by name, path and hash, diffusers VAE folders."""

import hashlib

from sdui.models.catalog import HashCache
from sdui.networks.folders import LORA_SUFFIXES, VAE_SUFFIXES, NetworkFolder


def _write(path, data: bytes = b"\0" * 16):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_lists_subfolders_by_stem_and_finds_by_name_path_and_case(tmp_path):
    lora, lyco = tmp_path / "Lora", tmp_path / "LyCORIS"
    _write(lora / "style.safetensors")
    _write(lora / "chars" / "Alice.pt")
    _write(lora / ".hidden" / "h.safetensors")
    _write(lora / "half.safetensors.partial")
    _write(lora / "notes.txt")
    _write(lyco / "loha.ckpt")
    folder = NetworkFolder([lora, lyco], LORA_SUFFIXES, HashCache(tmp_path / "h.json"), addnet_hash=True)
    assert [(f.name, f.rel) for f in folder.list()] == [
        ("Alice", "chars/Alice.pt"), ("loha", "loha.ckpt"), ("style", "style.safetensors")]
    assert folder.find("Alice").rel == "chars/Alice.pt"
    assert folder.find("chars/Alice").name == folder.find("chars/Alice.pt").name == "Alice"
    assert folder.find("alice").name == "Alice" and folder.find("missing") is None
    assert [f.hash_kind for f in folder.list()] == ["sha256", "sha256", "addnet"]
    _write(lora / "new.safetensors")
    assert folder.find("new") is None, "files added while running appear after a refresh"
    assert folder.refresh()[-1].name == "style" and folder.find("new") is not None


def test_a_folder_inside_another_is_listed_once(tmp_path):
    _write(tmp_path / "Lora" / "LyCORIS" / "x.safetensors")
    folder = NetworkFolder([tmp_path / "Lora", tmp_path / "Lora" / "LyCORIS"], LORA_SUFFIXES,
                           HashCache(tmp_path / "h.json"))
    assert [f.rel for f in folder.list()] == ["LyCORIS/x.safetensors"]


def test_find_by_hash_uses_known_hashes_then_hashes_the_rest_once(tmp_path):
    hashes = HashCache(tmp_path / "h.json")
    a = _write(tmp_path / "VAE" / "a.pt", b"a" * 100)
    b = _write(tmp_path / "VAE" / "b.pt", b"b" * 100)
    folder = NetworkFolder([tmp_path / "VAE"], VAE_SUFFIXES, hashes)
    want = hashlib.sha256(b.read_bytes()).hexdigest()
    assert folder.find_by_hash(want[:10]).path == b and hashes.computed == 2
    assert folder.find_by_hash(want[:12]).path == b and hashes.computed == 2, "known hashes are not recomputed"
    assert folder.find_by_hash(hashlib.sha256(a.read_bytes()).hexdigest()[:8]).path == a
    assert folder.find_by_hash("zz12345678") is None and folder.find_by_hash("abc") is None


def test_diffusers_vae_folders_are_one_entry(tmp_path):
    _write(tmp_path / "VAE" / "sdxl-vae-fp16-fix" / "config.json", b"{}")
    _write(tmp_path / "VAE" / "sdxl-vae-fp16-fix" / "diffusion_pytorch_model.safetensors")
    _write(tmp_path / "VAE" / "ft-mse.safetensors")
    folder = NetworkFolder([tmp_path / "VAE"], VAE_SUFFIXES, HashCache(tmp_path / "h.json"), diffusers_folders=True)
    assert [(f.name, f.rel) for f in folder.list()] == [("ft-mse", "ft-mse.safetensors"),
                                                        ("sdxl-vae-fp16-fix", "sdxl-vae-fp16-fix")]
    assert folder.find("ft-mse.safetensors").name == "ft-mse"
