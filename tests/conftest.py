"""Shared fixtures: the tiny model, built once per test session in a temporary models dir."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A models dir holding only the tiny demo model as a diffusers folder."""
    from sdui.models.tiny import ensure_demo_model

    models = tmp_path_factory.mktemp("models")
    ensure_demo_model(models)
    return models


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir):
    """The tiny model loaded with plain diffusers (for tests that compare against the engine)."""
    from diffusers import StableDiffusionPipeline

    from sdui.models.tiny import DEMO_NAME

    return StableDiffusionPipeline.from_pretrained(tiny_model_dir / DEMO_NAME, local_files_only=True)


@contextlib.contextmanager
def torch_threads(count: int):
    """Run with `count` torch threads, then restore the previous count.

    Tiny convolutions on a shared 2-core machine: more threads only contend (0.2 s vs 7 s per run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
