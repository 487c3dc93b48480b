"""ApiContext: what the /sdapi routes share (the app's objects and the options set through /options)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdui.api import convert
from sdui.jobs import JobQueue
from sdui.models.manager import Task
from sdui.settings import Settings

if TYPE_CHECKING:
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager


@dataclass
class ApiContext:
    """What the API routes share: the app's objects plus the options set through /options."""

    queue: JobQueue
    manager: ModelManager
    catalog: Catalog
    settings: Settings
    checkpoint: str | None = None  # the API's default model (A1111's sd_model_checkpoint option)
    clip_skip: int = 1  # A1111's CLIP_stop_at_last_layers option
    vae: str = "Automatic"  # A1111's sd_vae option
    randn_source: str = "CPU"  # A1111's randn_source option (sdui's default: the same noise on every machine)
    eta_noise_seed_delta: int = 0  # A1111's eta_noise_seed_delta option (ENSD)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_file_size_mb * 2**20


def set_default_checkpoint(ctx: ApiContext, name: Any) -> str:
    """Validate, load (as A1111 does when the option is set) and make `name` the API's default checkpoint.

    Raises ApiError for a bad or unknown name and the manager's ModelError when it does not load.
    """
    title = convert.resolve_checkpoint(name, ctx.catalog, "sd_model_checkpoint")
    # Loading here makes it the manager's current model too, so the UI's default follows, as in A1111.
    ctx.manager.get(title, Task.TXT2IMG)
    with ctx.lock:
        ctx.checkpoint = title
    return title
