"""The manager's extra networks: the LoRA, embedding and VAE folders, what is read from them, and one job's choice.

`ExtraNetworks` finds what a job's prompts and VAE setting name, reads it once (LoRA files, embedding vectors and
VAEs are cached by path + size + mtime) and says, as warnings, whatever it could not apply. The manager owns the
loaded models; this module only hands it LoraUses, EmbeddingSets and VAE modules.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdui.models.catalog import CheckpointInfo, HashCache
from sdui.models.errors import ModelError, WrongFamily
from sdui.networks import embeddings as embedding_files
from sdui.networks.embeddings import EmbeddingSet
from sdui.networks.folders import (EMBEDDING_SUFFIXES, LORA_SUFFIXES, VAE_SUFFIXES, NetworkFile, NetworkFolder)
from sdui.networks.lora import LoraNetwork, read_lora
from sdui.networks.patch import LoraUse
from sdui.networks.tags import NetworkTag, hash_entry_name
from sdui.networks.vae import check_latent_space, read_vae, vae_beside
from sdui.settings import Settings

LORA_FILES_CACHED = 8
EMBEDDING_FILES_CACHED = 512
VAES_CACHED = 2
VAE_AUTOMATIC, VAE_NONE = "Automatic", "None"


class FileCache:
    """What `read(path)` returned, kept for the most recently used files while their size and mtime stay."""

    def __init__(self, read: Callable[[Path], Any], limit: int) -> None:
        self.read, self.limit = read, limit
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, key: Hashable = (), read: Callable[[Path], Any] | None = None) -> Any:
        """The cached value for `path` (+ `key`), read with `read` (default: the cache's reader) when missing."""
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, key)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = (read or self.read)(path)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return value


@dataclass
class LoraChoice:
    """The LoRAs a job's tags found, the `Lora hashes` infotext entries and what could not be applied."""

    uses: list[LoraUse] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # one `name: hash` per use, in order
    warnings: list[str] = field(default_factory=list)

    def hashes_of(self, applied: tuple[LoraUse, ...]) -> str:
        """A1111's `Lora hashes` value for the uses the patcher applied (a refused LoRA is not named)."""
        return ", ".join(h for use, h in zip(self.uses, self.hashes) if h and any(use is a for a in applied))


@dataclass
class VaeChoice:
    """The VAE module a job decodes with (None: the checkpoint's own) and its infotext keys."""

    module: Any = None
    infotext: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class ExtraNetworks:
    """The LoRA (models/Lora, models/LyCORIS), embedding (embeddings/) and VAE (models/VAE) folders of one process."""

    def __init__(self, settings: Settings, hashes: HashCache, tune_vae: Callable[[Any], Any] = lambda vae: vae) -> None:
        self.hashes = hashes
        self.tune_vae = tune_vae  # the fast path's VAE tuning (channels_last, compile), once per loaded VAE
        self.loras = NetworkFolder([settings.lora_dir, settings.lyco_dir], LORA_SUFFIXES, hashes, addnet_hash=True)
        self.embeddings = NetworkFolder([settings.embeddings_dir], EMBEDDING_SUFFIXES, hashes)
        self.vaes = NetworkFolder([settings.vae_dir], VAE_SUFFIXES, hashes, diffusers_folders=True)
        self.vae_dir = settings.vae_dir
        self.lora_files = FileCache(read_lora, LORA_FILES_CACHED)
        self.embedding_files = FileCache(lambda path: embedding_files.read_embedding_file(path), EMBEDDING_FILES_CACHED)
        self.vae_modules = FileCache(read_vae, VAES_CACHED)
        self._fits: dict[tuple, bool] = {}  # (vae file key, checkpoint) -> latent-space check passed
        self._embedding_sets: dict[tuple, EmbeddingSet] = {}
        self.generation = 0  # bumped by every refresh: cached per-model embedding sets are rebuilt

    def refresh(self) -> None:
        """Rescan all three folders (new, removed and changed files show up; no restart)."""
        self.loras.refresh()
        self.embeddings.refresh()
        self.vaes.refresh()
        self.generation += 1
        self._embedding_sets.clear()

    # LoRA
    def lora_choice(self, tags: list[NetworkTag], known_hashes: dict[str, str]) -> LoraChoice:
        """LoraUses for a job's tags: by name, then by a pasted infotext's hash; the rest become warnings.

        A LoRA that is corrupt or tries to run code raises its ModelError: such a job must not run.
        """
        choice = LoraChoice()
        for tag in tags:
            if not tag.is_lora:
                choice.warnings.append(f"{tag.text}: {tag.kind} networks are not supported by sdui: not applied")
                continue
            for setting in tag.unknown_settings:
                choice.warnings.append(f"{tag.text}: the setting {setting!r} (an extension's) is not supported: "
                                       "ignored")
            file, by_hash = self.find_lora(tag.name, known_hashes.get(tag.name))
            if file is None:
                where = " or by its hash" if tag.name in known_hashes else ""
                choice.warnings.append(f"LoRA '{tag.name}' not found in the LoRA folders (by name{where}): "
                                       "not applied")
                continue
            if by_hash:
                choice.warnings.append(f"LoRA '{tag.name}' not found by name: used '{file.rel}', which has its hash")
            network = self.read_lora(file)
            if network.embeddings:
                choice.warnings.append(f"LoRA '{tag.name}' bundles embeddings ({', '.join(sorted(network.embeddings))})"
                                       ", which sdui does not use yet: their names are encoded as plain words")
            choice.uses.append(LoraUse(network=network, te=tag.te, unet=tag.unet, dyn=tag.dyn, label=tag.name))
            short = _lora_short_hash(file, network)
            choice.hashes.append(f"{hash_entry_name(tag.name)}: {short}" if short else "")
        return choice

    def find_lora(self, name: str, short_hash: str | None = None) -> tuple[NetworkFile | None, bool]:
        """A LoRA file by file name, then by its `ss_output_name` alias, then by hash; and whether by hash."""
        file = self.loras.find(name)
        if file is None:
            file = next((f for f in self.loras.list() if f.is_safetensors and _alias(f) == name), None)
        if file is None and short_hash:
            return self.loras.find_by_hash(short_hash), True
        return file, False

    def read_lora(self, file: NetworkFile) -> LoraNetwork:
        try:
            return self.lora_files.get(file.path)
        except OSError as e:
            raise ModelError(f"{file.path}: cannot read the LoRA ({e.strerror or e})", file.path, "prompt") from e
        except ModelError as e:
            e.field = e.field or "prompt"
            raise

    # Embeddings
    def embedding_set(self, model_key: str, pipe) -> EmbeddingSet:
        """The embeddings that fit this model's text encoders; built once per model and folder scan."""
        key = (model_key, self.generation)
        found = self._embedding_sets.get(key)
        if found is None:
            found = EmbeddingSet.for_pipeline(self.embeddings.list(), pipe, read=self.embedding_files.get)
            self._embedding_sets[key] = found
        return found

    def forget(self, model_key: str) -> None:
        """Drop what was built for an unloaded model."""
        for key in [k for k in self._embedding_sets if k[0] == model_key]:
            del self._embedding_sets[key]
        self._fits = {k: v for k, v in self._fits.items() if k[-1] != model_key}

    # VAE
    def vae_choice(self, setting: str, info: CheckpointInfo, own) -> VaeChoice:
        """The VAE for A1111's `sd_vae` setting: "Automatic" (a `<checkpoint>.vae.*` beside it, else its own),
        "None" (its own) or a file of the VAE folder. One for another model family raises WrongFamily."""
        setting = (setting or VAE_AUTOMATIC).strip()
        if setting == VAE_NONE:
            return VaeChoice()
        if setting == VAE_AUTOMATIC:
            beside = vae_beside(info.path) if info.path.is_file() else None
            if beside is None:
                return VaeChoice()
            file = NetworkFile(name=beside.name, rel=beside.name, path=beside, _hashes=self.hashes)
            return self._vae(file, info, own)
        file = self.vaes.find(setting)
        if file is None:
            return VaeChoice(warnings=[f"VAE '{setting}' not found in {self.vae_dir}: used the checkpoint's own VAE"])
        return self._vae(file, info, own)

    def _vae(self, file: NetworkFile, info: CheckpointInfo, own) -> VaeChoice:
        # One cached module per file and config/device/dtype (SD1 and SD2 share one; SDXL scales differently).
        like = (json.dumps(dict(own.config), sort_keys=True, default=str), str(own.device), str(own.dtype))
        try:
            module = self.vae_modules.get(file.path, like, lambda path: self.tune_vae(read_vae(path, own)))
        except ModelError as e:
            e.field = e.field or "sd_vae"
            raise
        fit_key = (str(file.path), file.path.stat().st_mtime_ns, info.filename)
        if fit_key not in self._fits:
            try:
                check_latent_space(module, own, file.rel)
            except WrongFamily as e:
                e.field = "sd_vae"
                raise
            self._fits[fit_key] = True
        name = Path(file.rel).name
        return VaeChoice(module=module, infotext={"VAE hash": file.hash[:10], "VAE": name})


def _alias(file: NetworkFile) -> str | None:
    from sdui.models.files import read_safetensors_header

    try:
        return read_safetensors_header(file.path)[1].get("ss_output_name")
    except (ModelError, OSError):
        return None


def _lora_short_hash(file: NetworkFile, network: LoraNetwork) -> str:
    """A1111's LoRA hash: the file's `sshs_model_hash` metadata, else its addnet hash (safetensors) or sha256."""
    stored = network.metadata.get("sshs_model_hash", "")
    if re.fullmatch(r"[0-9a-fA-F]{12,64}", stored):
        return stored[:12].lower()
    return file.hash[:12]
