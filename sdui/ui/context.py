"""What the UI builders are handed: the services created once in app.py (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdui.settings import Settings

if TYPE_CHECKING:
    from sdui.jobs import JobQueue
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.options import Options
    from sdui.styles import StyleStore

# Every generate event shares this Gradio concurrency id with limit 1: one device, one FIFO line.
DEVICE_CONCURRENCY_ID = "device"


@dataclass
class UIContext:
    """The process-wide services, passed explicitly to every tab's build/bind."""

    queue: JobQueue
    manager: ModelManager
    catalog: Catalog
    settings: Settings
    options: Options | None = None  # app.py's store (config.json); None in tests that need no Settings tab
    styles: StyleStore | None = None  # app.py's styles.csv store, shared with the API; None: the data dir's own
