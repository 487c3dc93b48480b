"""Model errors: one base class, the four ways a file can fail (missing, unknown, broken, unsafe) and a wrong family."""

from __future__ import annotations

from pathlib import Path


class ModelError(Exception):
    """Base of every model failure; the message names the file (or name) and the reason."""

    def __init__(self, message: str, path: Path | str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.field = field  # the request field it came from when not the checkpoint (e.g. "sd_vae", "prompt")


class ModelNotFound(ModelError):
    """No checkpoint of that name or title in the models dir (or the name walks out of it)."""


class UnrecognizedModel(ModelError):
    """The file is readable but is not a Stable Diffusion checkpoint sdui knows how to load."""


class BrokenModel(ModelError):
    """Recognised as a checkpoint but corrupt or truncated (lying header, short file, bad pickle)."""


class UnsafeModel(ModelError):
    """A pickle that references code outside torch's allow-list; it is never unpickled."""


class WrongFamily(ModelError):
    """A VAE or network file made for another model family than the checkpoint it is used with."""
