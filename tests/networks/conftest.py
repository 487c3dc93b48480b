"""Network tests: one torch thread (tiny models on a shared 2-core machine), the tiny SD1 and SDXL pipelines."""

import pytest

from tests.conftest import torch_threads


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Package scope: the previous thread count is back before tests outside tests/networks run."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny():
    """The tiny SD1-shaped pipeline (not loaded through the manager: tests may change its weights only via copies)."""
    from sdui.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_xl():
    """The tiny SDXL pipeline of tests/engine/conftest.py."""
    from tests.engine.conftest import build_tiny_sdxl

    return build_tiny_sdxl()
