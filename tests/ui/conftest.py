"""A real sdui server with a password (tiny model + one broken checkpoint, temporary outputs)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from sdui.models.catalog import Catalog, HashCache
from sdui.models.tiny import DEMO_NAME
from tests.ui.server import running_app

USER, PASSWORD = "tester", "s3cret-pass"
BROKEN_NAME = "zz-broken"  # sorts after the demo model, which stays the default


@dataclass
class Server:
    url: str
    outputs: Path
    ckpt_dir: Path


@pytest.fixture(scope="session")
def auth_server(tiny_model_dir, tmp_path_factory) -> Server:
    """app.py started with --gradio-auth on its own models dir (the shared one is never touched)."""
    work = tmp_path_factory.mktemp("ui-server")
    ckpt_dir = work / "models"
    shutil.copytree(tiny_model_dir / DEMO_NAME, ckpt_dir / DEMO_NAME)
    # A safetensors header that lies about its length: recognised as a checkpoint file, fails to load.
    (ckpt_dir / f"{BROKEN_NAME}.safetensors").write_bytes((10**6).to_bytes(8, "little") + b'{"a":')
    with running_app(ckpt_dir, work, "--gradio-auth", f"{USER}:{PASSWORD}") as (url, outputs):
        yield Server(url, outputs, ckpt_dir)


def listing_ctx(tmp_path: Path) -> SimpleNamespace:
    """What the UI's listing and pasting code reads from a UIContext, over folders of files of any bytes (listing
    reads none): Lora/ (detail, sub/style), embeddings/ (EasyNegative), VAE/ (vae-ft-mse, a/same, b/same),
    models/ (mine), and the upscalers of models/ESRGAN (empty)."""
    import torch

    from sdui.models.extras import ExtraNetworks
    from sdui.settings import Settings
    from sdui.upscalers import Upscalers

    lora_dir, emb_dir, vae_dir, models = (tmp_path / d for d in ("Lora", "embeddings", "VAE", "models"))
    for folder, files in ((lora_dir, ["detail.safetensors", "sub/style.pt", "notes.txt"]),
                          (emb_dir, ["EasyNegative.safetensors"]),
                          (vae_dir, ["vae-ft-mse.safetensors", "a/same.pt", "b/same.pt"]),
                          (models, ["mine.safetensors"])):
        for rel in files:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(b"not read")
    settings = Settings.for_data_dir(tmp_path, lora_dir=lora_dir, embeddings_dir=emb_dir, vae_dir=vae_dir,
                                     ckpt_dir=models)
    catalog = Catalog(models, tmp_path / "cache", exclude=settings.network_dirs)
    extras = ExtraNetworks(settings, HashCache(tmp_path / "hashes.json"))
    manager = SimpleNamespace(extras=extras, upscalers=Upscalers(settings, torch.device("cpu")),
                              info=lambda name: catalog.list()[0])
    return SimpleNamespace(manager=manager, catalog=catalog, settings=settings)
