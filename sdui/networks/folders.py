"""The folders of extra networks and VAEs: what files they hold, found by name or hash, hashed lazily.

Listing reads no file content; a hash is computed the first time an infotext or a lookup needs it and cached
with the checkpoints' hashes (path + size + mtime). Names are file stems, as A1111 uses them in prompts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sdui.models.catalog import HashCache

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt")


@dataclass
class NetworkFile:
    """One LoRA, embedding or VAE on disk (a diffusers VAE may be a folder)."""

    name: str  # the file stem (or folder name): what a prompt or a setting names it by
    rel: str  # the path relative to its folder, posix, suffix included
    path: Path
    _hashes: HashCache = field(repr=False, compare=False)
    hash_kind: str = "sha256"  # "addnet" for LoRA .safetensors files, as A1111

    @property
    def hash(self) -> str:
        """The full hex digest (computed on first use, then cached)."""
        return self._hashes.digest(self.path, self.hash_kind)

    @property
    def known_hash(self) -> str | None:
        return self._hashes.known(self.path, self.hash_kind)

    @property
    def is_safetensors(self) -> bool:
        return self.path.suffix.lower() == ".safetensors"


class NetworkFolder:
    """The files of one kind under one or more folders (subfolders included), rescanned on `refresh()`."""

    def __init__(self, dirs: Iterable[Path], suffixes: tuple[str, ...], hashes: HashCache, *,
                 addnet_hash: bool = False, diffusers_folders: bool = False) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.suffixes = suffixes
        self.hashes = hashes
        self.addnet_hash = addnet_hash
        self.diffusers_folders = diffusers_folders
        self._items: list[NetworkFile] | None = None
        self._lock = threading.Lock()

    def list(self) -> list[NetworkFile]:
        with self._lock:
            if self._items is None:
                self._items = self._scan()
            return list(self._items)

    def refresh(self) -> list[NetworkFile]:
        with self._lock:
            self._items = self._scan()
            return list(self._items)

    def find(self, name: str) -> NetworkFile | None:
        """By file stem, relative path (with or without suffix), file name, then stem ignoring case; None if absent."""
        wanted = name.strip().replace("\\", "/")
        items = self.list()
        for test in (lambda f: f.name == wanted, lambda f: f.rel == wanted,
                     lambda f: os.path.splitext(f.rel)[0] == wanted, lambda f: Path(f.rel).name == wanted,
                     lambda f: f.name.lower() == wanted.lower()):
            found = next((f for f in items if test(f)), None)
            if found is not None:
                return found
        return None

    def find_by_hash(self, short_hash: str) -> NetworkFile | None:
        """The file whose hash starts with `short_hash`: known hashes first, then hashing the others once."""
        wanted = short_hash.strip().lower()
        if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
            return None
        items = self.list()
        for item in items:
            if (item.known_hash or "").startswith(wanted):
                return item
        for item in items:
            if item.known_hash is None and item.hash.startswith(wanted):
                return item
        return None

    def _scan(self) -> list[NetworkFile]:
        found: list[NetworkFile] = []
        seen: set[str] = set()
        for top in self.dirs:
            if not top.is_dir():
                continue
            for root, dirs, files in os.walk(top, followlinks=False):
                root_path = Path(root)
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".partial"))
                if self.diffusers_folders and root_path != top and (root_path / "config.json").is_file():
                    found.append(self._file(root_path, top, root_path.name, "sha256"))
                    dirs[:] = []
                    continue
                for f in sorted(files):
                    if not f.lower().endswith(self.suffixes) or f.startswith("."):
                        continue
                    path = root_path / f
                    kind = "addnet" if self.addnet_hash and f.lower().endswith(".safetensors") else "sha256"
                    found.append(self._file(path, top, os.path.splitext(f)[0], kind))
        unique = []
        for item in found:  # the same file reachable from two folders (one inside the other) is listed once
            key = str(item.path.resolve())
            if key not in seen:
                seen.add(key)
                unique.append(item)
        return sorted(unique, key=lambda i: i.rel.lower())

    def _file(self, path: Path, top: Path, name: str, kind: str) -> NetworkFile:
        return NetworkFile(name=name, rel=path.relative_to(top).as_posix(), path=path, _hashes=self.hashes,
                           hash_kind=kind)
