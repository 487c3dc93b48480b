"""ApiContext: what the /sdapi routes share (the app's objects and the options set through /options)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdui.api import convert
from sdui.jobs import JobQueue
from sdui.models.manager import Task
from sdui.options import Options
from sdui.settings import Settings
from sdui.styles import StyleStore

if TYPE_CHECKING:
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager


@dataclass
class ApiContext:
    """What the API routes share: the app's objects plus the options store /options reads and writes."""

    queue: JobQueue
    manager: ModelManager
    catalog: Catalog
    settings: Settings
    options: Options | None = None  # app.py passes config.json's store; None: the defaults, kept in memory
    styles: StyleStore | None = None  # app.py passes the UI's styles.csv store; None: the data dir's styles.csv
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.options is None:
            self.options = Options(self.settings)
        if self.styles is None:
            self.styles = StyleStore.in_data_dir(self.settings.data_dir)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_file_size_mb * 2**20

    @property
    def checkpoint(self) -> str | None:
        """The API's default model (sd_model_checkpoint); None: the manager's current one."""
        return self.options.get("sd_model_checkpoint") or None

    @property
    def clip_skip(self) -> int:
        return self.options.get("CLIP_stop_at_last_layers")

    @property
    def vae(self) -> str:
        return self.options.get("sd_vae")

    @property
    def randn_source(self) -> str:
        return self.options.get("randn_source")

    @property
    def eta_noise_seed_delta(self) -> int:
        return self.options.get("eta_noise_seed_delta")


def set_default_checkpoint(ctx: ApiContext, name: Any) -> str:
    """Validate, load (as A1111 does when the option is set) and make `name` the API's default checkpoint.

    Raises ApiError for a bad or unknown name and the manager's ModelError when it does not load.
    """
    title = convert.resolve_checkpoint(name, ctx.catalog, "sd_model_checkpoint")
    # Loading here makes it the manager's current model too, so the UI's default follows, as in A1111.
    ctx.manager.get(title, Task.TXT2IMG)
    ctx.options.update({"sd_model_checkpoint": title})
    return title
