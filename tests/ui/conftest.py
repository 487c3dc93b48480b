"""A real sdui server with a password (tiny model + one broken checkpoint, temporary outputs)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

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
