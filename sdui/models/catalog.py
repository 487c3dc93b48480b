"""The catalog of checkpoints in the models dir: scanning, A1111-style titles and cached sha256 hashes.

It only looks at names, sizes and (for .pt/.bin) a static scan of the pickle: a broken file is still
listed, and loading it gives the clear error. Listing reads no file: a hash is computed when first
needed (the first image's infotext) and cached by path + size + mtime in `<cache_dir>/hashes.json`; titles
show it from the next scan on, as AUTOMATIC1111's do.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from collections.abc import Iterable
from pathlib import Path

from sdui.models.errors import ModelNotFound
from sdui.models.files import pickle_mentions

MAYBE_CHECKPOINT_SUFFIXES = (".pt", ".bin")
# AUTOMATIC1111's folders under models/ that hold other kinds of models: never listed as checkpoints.
NOT_CHECKPOINT_DIRS = frozenset({"Lora", "LyCORIS", "VAE", "VAE-approx", "ESRGAN", "RealESRGAN", "SwinIR", "DAT",
                                 "HAT", "BSRGAN", "ScuNET", "LDSR", "GFPGAN", "Codeformer", "hypernetworks",
                                 "ControlNet", "embeddings", "deepbooru", "BLIP", "torch_deepdanbooru", "karlo"})
# A VAE kept beside its checkpoint (`model.vae.safetensors`, A1111's convention) is not a checkpoint either.
VAE_SUFFIXES = (".vae.safetensors", ".vae.pt", ".vae.ckpt")


@dataclass
class CheckpointInfo:
    """One checkpoint: a diffusers folder or a single file. Hashes are computed lazily, once."""

    name: str
    filename: str
    path: Path
    format: str
    rel: str
    _hashes: HashCache = field(repr=False, compare=False)
    # sha256[:10] when the hash was already known at scan time: titles stay the same until the next scan, so a
    # title a page holds in its dropdown keeps matching.
    listed_hash: str | None = None

    @property
    def sha256(self) -> str:
        """Computed on first use (reads the whole file), then cached."""
        return self._hashes.sha256(self.path)

    @property
    def short_hash(self) -> str:
        return self.sha256[:10]

    @property
    def known_sha256(self) -> str | None:
        """The hash if it was ever computed for this file as it is now; never reads the file."""
        return self._hashes.known(self.path)

    @property
    def title(self) -> str:
        """`name.safetensors [0123456789]` for files, `name [0123456789]` for folders, without the hash until known
        (as AUTOMATIC1111)."""
        return f"{self.rel} [{self.listed_hash}]" if self.listed_hash else self.rel


class HashCache:
    """sha256 of files and folders, cached on disk by path + size + mtime."""

    def __init__(self, cache_file: Path) -> None:
        self.cache_file = cache_file
        self._lock = threading.Lock()
        self._entries: dict[str, dict] | None = None
        self.computed = 0  # how many hashes were really computed (not served from the cache)

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            try:
                self._entries = json.loads(self.cache_file.read_text(encoding="utf-8"))
                if not isinstance(self._entries, dict):
                    self._entries = {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def known(self, path: Path, kind: str = "sha256") -> str | None:
        """The cached hash of `path` if its size and mtime still match, else None; never hashes."""
        try:
            stamp = _stamp(path)
        except OSError:
            return None
        return self._cached(_key(path, kind), stamp)

    def _cached(self, key: str, stamp: tuple[int, int]) -> str | None:
        with self._lock:
            entry = self._load().get(key)
            if entry and entry.get("size") == stamp[0] and entry.get("mtime") == stamp[1]:
                return entry["sha256"]
        return None

    def sha256(self, path: Path) -> str:
        """The hex sha256 of a file (or of a folder's files, in sorted order), cached."""
        return self.digest(path, "sha256")

    def addnet(self, path: Path) -> str:
        """kohya's "addnet" hash of a .safetensors file: sha256 of its bytes after the header (A1111's LoRA hash)."""
        return self.digest(path, "addnet")

    def digest(self, path: Path, kind: str = "sha256") -> str:
        """`kind` ("sha256" or "addnet") of `path`, computed once and cached by path + size + mtime."""
        try:
            stamp = _stamp(path)
            cached = self._cached(_key(path, kind), stamp)
            if cached:
                return cached
            digest = _hash_path(path) if kind == "sha256" else _addnet_hash(path)
        except OSError as e:
            raise ModelNotFound(f"{path}: cannot read the file ({e.strerror or e}); refresh the list", path) from e
        with self._lock:
            self.computed += 1
            self._load()[_key(path, kind)] = {"size": stamp[0], "mtime": stamp[1], "sha256": digest}
            self._save()
        return digest

    def _save(self) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_name(self.cache_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.cache_file)


class Catalog:
    """Checkpoints found under `ckpt_dir` (subfolders too), refreshed on demand.

    Skipped: the folders in `exclude` (the LoRA, VAE and embeddings folders), A1111's non-checkpoint folders
    directly under `ckpt_dir`, and `*.vae.*` files.
    """

    def __init__(self, ckpt_dir: Path, cache_dir: Path, exclude: Iterable[Path] = ()) -> None:
        self.ckpt_dir = Path(ckpt_dir).resolve()
        self.exclude = {Path(p).resolve() for p in exclude}
        self.hashes = HashCache(Path(cache_dir) / "hashes.json")
        self._items: list[CheckpointInfo] | None = None
        self._lock = threading.Lock()

    def list(self) -> list[CheckpointInfo]:
        """The checkpoints from the last scan (scanning once if never scanned)."""
        with self._lock:
            if self._items is None:
                self._items = self._scan()
            return list(self._items)

    def refresh(self) -> list[CheckpointInfo]:
        """Rescan the models dir (new, removed and renamed files)."""
        with self._lock:
            self._items = self._scan()
            return list(self._items)

    def find(self, name_or_title: str) -> CheckpointInfo:
        """Look a checkpoint up by title, title without hash, file name, model name or hash."""
        wanted = name_or_title.strip()
        candidate = Path(wanted.split(" [")[0])
        if candidate.is_absolute() or ".." in candidate.parts:
            resolved = (self.ckpt_dir / candidate).resolve()
            if not resolved.is_relative_to(self.ckpt_dir):
                raise ModelNotFound(f"checkpoint {wanted!r} is outside the models dir {self.ckpt_dir}", wanted)
        items = self.list()
        match = self._match(items, wanted)
        if match is None:
            items = self.refresh()
            match = self._match(items, wanted)
        if match is None:
            known = ", ".join(i.rel for i in items[:10]) or "none"
            raise ModelNotFound(f"no checkpoint named {wanted!r} in {self.ckpt_dir} (known: {known})", wanted)
        return match

    def _match(self, items: list[CheckpointInfo], wanted: str) -> CheckpointInfo | None:
        bare = wanted.split(" [")[0]
        for test in (lambda i: i.rel == bare, lambda i: i.name == bare, lambda i: Path(i.rel).name == bare,
                     lambda i: i.path == self.ckpt_dir / bare, lambda i: Path(i.rel).stem == bare):
            found = [i for i in items if test(i)]
            if found:
                return found[0]
        if len(bare) in (8, 10, 64) and all(c in "0123456789abcdef" for c in bare.lower()):
            for i in items:  # only hashes already computed: matching must not read every file
                if (i.known_sha256 or "").startswith(bare.lower()):
                    return i
        return None

    def _scan(self) -> list[CheckpointInfo]:
        found: list[CheckpointInfo] = []
        if not self.ckpt_dir.is_dir():
            return found
        for root, dirs, files in os.walk(self.ckpt_dir, followlinks=False):
            root_path = Path(root)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".partial")
                             and not (root_path == self.ckpt_dir and d in NOT_CHECKPOINT_DIRS)
                             and (root_path / d).resolve() not in self.exclude)
            if (root_path / "model_index.json").is_file() and root_path != self.ckpt_dir:
                found.append(self._info(root_path, "diffusers"))
                dirs[:] = []
                continue
            for f in sorted(files):
                p = root_path / f
                low = f.lower()
                if low.endswith(VAE_SUFFIXES):
                    continue
                if low.endswith(".safetensors"):
                    found.append(self._info(p, "safetensors"))
                elif low.endswith(".ckpt"):
                    found.append(self._info(p, "ckpt"))
                elif low.endswith(MAYBE_CHECKPOINT_SUFFIXES) and pickle_mentions(p, "model.diffusion_model."):
                    found.append(self._info(p, "ckpt"))
        return sorted(found, key=lambda i: i.rel.lower())

    def _info(self, path: Path, fmt: str) -> CheckpointInfo:
        rel = path.relative_to(self.ckpt_dir).as_posix()
        stem = rel if fmt == "diffusers" else os.path.splitext(rel)[0]
        known = self.hashes.known(path)
        return CheckpointInfo(name=stem.replace("/", "_"), filename=str(path), path=path, format=fmt, rel=rel,
                              _hashes=self.hashes, listed_hash=known[:10] if known else None)


def _stamp(path: Path) -> tuple[int, int]:
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files), max((p.stat().st_mtime_ns for p in files), default=0)
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _key(path: Path, kind: str) -> str:
    return str(path) if kind == "sha256" else f"{path}#{kind}"


def _addnet_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        f.seek(8 + header_len)
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _hash_path(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(p.relative_to(path).as_posix().encode())
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
