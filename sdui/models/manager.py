"""The model manager: the one owner of loaded pipelines (lazy loading, LRU by count and bytes, task variants).

Created once in app.py and passed down. A job runs inside `with manager.prepare(params, task) as job:`, which
applies its VAE, LoRAs and embeddings and puts the cached pipeline back on exit (`prepared.py`). `get(checkpoint,
task)` returns a cached pipeline as loaded. The txt2img / img2img / inpaint variants of one checkpoint share their
weights (diffusers `from_pipe`) and also the scheduler object, so each run sets its own scheduler.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import torch

from sdui.models.catalog import Catalog, CheckpointInfo
from sdui.models.device import choose_device
from sdui.models.errors import ModelError, ModelNotFound
from sdui.models.extras import ExtraNetworks
from sdui.models.fast import apply_fast_path, tune_vae
from sdui.models.load import load_pipeline, model_bytes, place
from sdui.models.memory import release_memory
from sdui.models.prepared import PreparedJob, open_job, patcher_for
from sdui.networks.embeddings import EmbeddingSet
from sdui.networks.patch import LoraPatcher
from sdui.params import GenerationParams
from sdui.settings import Settings
from sdui.upscalers import Upscalers


class Task(str, Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"


DEMO_MESSAGE = ("No checkpoint found in {dir}: using the built-in demo model '{name}'. It has random weights and "
                "makes noise-like images. Put a real Stable Diffusion checkpoint (.safetensors, .ckpt or a diffusers "
                "folder) in {dir} and refresh the list, or start with --download-default while online.")


@dataclass
class _Entry:
    info: CheckpointInfo
    base: object
    nbytes: int
    scheduler_config: dict
    variants: dict[Task, object] = field(default_factory=dict)
    patcher: LoraPatcher | None = None  # created with the first LoRA job; holds the backups while fused
    # Held while a job runs on this model: weights are never restored under a running job.
    in_use: threading.RLock = field(default_factory=threading.RLock)
    jobs: int = 0  # prepared jobs open on this model: it is never evicted under them


class ModelManager:
    """Lazy, cached access to pipelines; thread-safe (one model is never loaded twice at once)."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self.plan = choose_device(settings)
        self.device: torch.device = self.plan.device
        self.dtype: torch.dtype = self.plan.dtype
        self.on_status: Callable[[str], None] | None = None
        self.extras = ExtraNetworks(settings, catalog.hashes,
                                    tune_vae=lambda vae: tune_vae(vae, self.device, settings))
        self.upscalers = Upscalers(settings, self.device)
        self.load_count = 0  # pipelines really loaded from disk since start
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._current: str | None = None

    def get(self, checkpoint: str | None, task: Task | str = Task.TXT2IMG):
        """The cached pipeline for `task` with its weights as loaded; None means the current model (or the first).

        LoRA weights a previous job left fused are restored first (waiting for a job that runs on it).
        """
        task = _task(task)
        entry = self._entry(self.info(checkpoint))
        if entry.patcher is not None and entry.patcher.fused:
            with entry.in_use:
                entry.patcher.restore()
        return self._variant_of(entry, task)

    @contextlib.contextmanager
    def prepare(self, params: GenerationParams, task: Task | str, *, current: bool = True) -> Iterator[PreparedJob]:
        """The pipeline for one job: its checkpoint for `task` with the job's VAE, LoRAs and embeddings.

        A model stays loaded while a job is open on it, beyond models_in_memory if need be: a refiner prepared
        inside its job (`current=False`: it does not become the current model) loads beside it.
        Raises ModelError (a LoRA or VAE that is broken, unsafe or for another model family) before any work.
        """
        task = _task(task)
        with self._lock:
            before = self._current
        entry = self._entry(self.info(params.checkpoint))
        with self._lock:
            entry.jobs += 1
            if not current and before in self._cache:
                self._current = before
        try:
            with entry.in_use:
                pipe = self._variant_of(entry, task)
                if entry.patcher is None:
                    entry.patcher = patcher_for(entry.base)
                with open_job(pipe, entry.info, copy.deepcopy(entry.scheduler_config), entry.patcher, self.extras,
                              params, own_vae=entry.base.vae) as job:
                    yield job
        finally:
            with self._lock:
                entry.jobs -= 1

    def in_channels(self, checkpoint: str | None) -> int:
        """The UNet input channels of a checkpoint (loading it if needed): 9 for inpainting models."""
        return int(self._entry(self.info(checkpoint)).base.unet.config.in_channels)

    def check_vae(self, setting: str, checkpoint: str | None = None) -> None:
        """Raise what a job would (WrongFamily, a broken file) for this `sd_vae` with this checkpoint (loads both)."""
        entry = self._entry(self.info(checkpoint))
        self.extras.vae_choice(setting, entry.info, entry.base.vae)

    def embeddings(self, checkpoint: str | None = None) -> EmbeddingSet:
        """The embeddings that fit a checkpoint's text encoders (loading it if needed), and the skipped ones."""
        entry = self._entry(self.info(checkpoint))
        return self.extras.embedding_set(entry.info.filename, entry.base)

    def _variant_of(self, entry: _Entry, task: Task):
        with self._lock:
            pipe = entry.variants.get(task)
            if pipe is None:
                pipe = self._variant(entry, task)
                entry.variants[task] = pipe
            return pipe

    def info(self, checkpoint: str | None) -> CheckpointInfo:
        """The catalog entry for a name/title; None means the current model or the default one."""
        if checkpoint:
            return self.catalog.find(checkpoint)
        with self._lock:
            if self._current is not None and self._current in self._cache:
                return self._cache[self._current].info
        items = self.catalog.list() or self.catalog.refresh()
        if items:
            return items[0]
        return self._default_model()

    def base_scheduler_config(self, checkpoint: str | None) -> dict:
        """The checkpoint's own scheduler config as loaded (a fresh copy, never the live one)."""
        return copy.deepcopy(self._entry(self.info(checkpoint)).scheduler_config)

    def loaded(self) -> list[str]:
        """Titles of the loaded checkpoints, least recently used first."""
        with self._lock:
            return [e.info.title for e in self._cache.values()]

    def loaded_bytes(self) -> int:
        """Bytes of weights held by the loaded checkpoints (what the byte bound counts)."""
        with self._lock:
            return sum(e.nbytes for e in self._cache.values())

    def unload_all(self) -> None:
        """Drop every loaded pipeline and give the memory back to the system."""
        with self._lock:
            keys = list(self._cache)
            for key in keys:
                self._evict(key)
        self.upscalers.unload()
        release_memory(self.device)

    def _entry(self, info: CheckpointInfo) -> _Entry:
        key = info.filename
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self._current = key
                return self._cache[key]
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                if key in self._cache:  # another thread loaded it while we waited
                    self._cache.move_to_end(key)
                    self._current = key
                    return self._cache[key]
                self._make_room(incoming=_estimate_bytes(info), keep=None)
            self._status(f"Loading model {info.title}…")
            loaded = load_pipeline(info.path, self.plan)
            pipe = loaded.pipe
            # Before counting bytes: on a bf16 CPU the fast path stores the UNet in bf16.
            self._status(apply_fast_path(pipe, self.device, self.dtype, self.settings).describe())
            entry = _Entry(info=info, base=pipe, nbytes=model_bytes(pipe),
                           scheduler_config=copy.deepcopy(dict(pipe.scheduler.config)))
            entry.variants[_native_task(pipe)] = pipe
            with self._lock:
                self.load_count += 1
                self._cache[key] = entry
                self._current = key
                self._make_room(incoming=0, keep=key)
            self._status(f"Loaded model {info.title}: {loaded.describe()}")
            return entry

    def _make_room(self, incoming: int, keep: str | None) -> None:
        """Evict least recently used models until count and bytes limits hold (never `keep`, nor a model a job
        is open on)."""
        limit = max(1, self.settings.models_in_memory) - (1 if keep is None else 0)
        max_bytes = self.settings.models_max_bytes
        freed = False
        while True:
            others = [k for k, e in self._cache.items() if k != keep and not e.jobs]
            over_count = len(self._cache) > limit
            over_bytes = max_bytes is not None and self.loaded_bytes() + incoming > max_bytes
            if not others or not (over_count or over_bytes):
                break
            self._evict(others[0])
            freed = True
        if freed:
            release_memory(self.device)

    def _evict(self, key: str) -> None:
        entry = self._cache.pop(key)
        self.extras.forget(entry.info.filename)
        self._status(f"Unloading model {entry.info.title}")
        if self._current == key:
            self._current = None
        entry.variants.clear()
        entry.base = None

    def _variant(self, entry: _Entry, task: Task):
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

        auto = {Task.TXT2IMG: AutoPipelineForText2Image, Task.IMG2IMG: AutoPipelineForImage2Image,
                Task.INPAINT: AutoPipelineForInpainting}[task]
        if task is Task.TXT2IMG and getattr(entry.base.config, "requires_aesthetics_score", False):
            raise ModelError(f"{entry.info.title} is an SDXL refiner: it does not make pictures from text on its own. "
                             "Use it as the Refiner of an SDXL checkpoint, or in img2img / inpaint", entry.info.path)
        try:
            pipe = auto.from_pipe(entry.base)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ModelError(f"{entry.info.path}: this {type(entry.base).__name__} cannot run {task.value} ({e})",
                             entry.info.path) from e
        return place(pipe, self.plan, entry.info.path) if self.plan.offload else pipe

    def _default_model(self) -> CheckpointInfo:
        from sdui.models.tiny import DEMO_NAME, ensure_demo_model

        ckpt_dir = self.catalog.ckpt_dir
        if self.settings.download_default:
            from sdui.models.download import download_default

            if download_default(ckpt_dir, on_status=self._status) is not None:
                items = self.catalog.refresh()
                if items:
                    return items[0]
        ensure_demo_model(ckpt_dir)
        self._status(DEMO_MESSAGE.format(dir=ckpt_dir, name=DEMO_NAME))
        items = self.catalog.refresh()
        if not items:
            raise ModelNotFound(f"could not create the demo model in {ckpt_dir}", ckpt_dir)
        return items[0]

    def _status(self, text: str) -> None:
        if self.on_status is not None:
            self.on_status(text)


def _task(task: Task | str) -> Task:
    try:
        return Task(task)
    except ValueError:
        raise ValueError(f"task must be one of {[t.value for t in Task]}, got {task!r}") from None


def _native_task(pipe) -> Task:
    name = type(pipe).__name__
    return Task.INPAINT if "Inpaint" in name else Task.IMG2IMG if "Img2Img" in name else Task.TXT2IMG


def _estimate_bytes(info: CheckpointInfo) -> int:
    try:
        if info.path.is_dir():
            return sum(p.stat().st_size for p in info.path.rglob("*.safetensors"))
        return info.path.stat().st_size
    except OSError:
        return 0
