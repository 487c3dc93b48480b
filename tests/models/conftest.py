"""Fixtures for the model tests: the tiny model as a folder, an original-layout .safetensors and a .ckpt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdui.settings import Settings


@pytest.fixture(scope="session")
def tiny_single_files(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """The tiny model in all three formats, each in its own fresh models dir."""
    from sdui.models.layout import save_single_file
    from sdui.models.tiny import DEMO_NAME, build_tiny_pipeline

    root = tmp_path_factory.mktemp("formats")
    pipe = build_tiny_pipeline()
    return {
        "diffusers": tiny_model_dir / DEMO_NAME,
        "safetensors": save_single_file(pipe, root / "tiny.safetensors"),
        "ckpt": save_single_file(pipe, root / "tiny.ckpt"),
    }


@pytest.fixture
def models_dir(tmp_path, tiny_single_files) -> Path:
    """A fresh models dir holding two small checkpoints: `a.safetensors` and `b.safetensors`."""
    d = tmp_path / "models"
    d.mkdir()
    shutil.copyfile(tiny_single_files["safetensors"], d / "a.safetensors")
    shutil.copyfile(tiny_single_files["safetensors"], d / "b.safetensors")
    return d


@pytest.fixture
def cpu_settings(tmp_path) -> Settings:
    return Settings.for_data_dir(tmp_path, device="cpu")
