"""`--download-default`: fetch the default real checkpoint (SD 1.5) into the models dir, as AUTOMATIC1111 does.

Used only when the catalog is empty and the user allowed it; offline it reports why and returns None so
the caller falls back to the tiny demo model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

DEFAULT_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_FILE = "v1-5-pruned-emaonly.safetensors"


def download_default(ckpt_dir: Path, on_status: Callable[[str], None] | None = None,
                     repo_id: str = DEFAULT_REPO, filename: str = DEFAULT_FILE) -> Path | None:
    """Download `filename` from `repo_id` into `ckpt_dir`; None (with a message) when it cannot."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    say = on_status or (lambda text: None)
    target = Path(ckpt_dir) / filename
    if target.is_file():
        return target
    say(f"Downloading the default checkpoint {repo_id}/{filename} (about 4 GB) into {ckpt_dir}…")
    try:
        path = hf_hub_download(repo_id=repo_id, filename=filename, local_dir=ckpt_dir)
    except (OSError, EntryNotFoundError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        say(f"Could not download the default checkpoint ({type(e).__name__}: {reason}). Falling back to the "
            f"built-in demo model; download a checkpoint yourself into {ckpt_dir} when you are online.")
        return None
    return Path(path)
