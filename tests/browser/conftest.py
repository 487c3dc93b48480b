"""The real server (app.py, tiny model, its own network folders) and one headless Chromium, started once."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdui.models.tiny import DEMO_NAME
from tests.ui.server import running_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# What the network folders hold from the start. Listing reads no content, so the LoRA and VAE files are
# placeholders (never generated with); the embedding is real, so a prompt naming it uses it.
ODD_LORA = "say \"hi\" & <b it's"  # quotes, & and < must come back from the page exactly
SEEDED_LORAS = ("detail.safetensors", f"characters/{ODD_LORA}.safetensors")
SEEDED_EMBEDDING = "EasyNegative"
SEEDED_VAE = "placeholder-vae.safetensors"
# A real (tiny, random-weight) 4x ESRGAN in the upscaler folder: Extras and hires fix can run it by this name.
TINY_UPSCALER = "tiny-esrgan-4x"


@dataclass
class Server:
    url: str
    outputs: Path
    ckpt_dir: Path
    lora_dir: Path
    embeddings_dir: Path
    vae_dir: Path
    esrgan_dir: Path
    upscaler: str = TINY_UPSCALER  # the name the upscaler dropdowns list it under


@pytest.fixture(scope="session")
def server(tiny_model_dir, tmp_path_factory) -> Server:
    work = tmp_path_factory.mktemp("browser-server")
    ckpt_dir = work / "models"  # its own copy: tests may add checkpoints while it runs
    shutil.copytree(tiny_model_dir / DEMO_NAME, ckpt_dir / DEMO_NAME)
    lora_dir, embeddings_dir, vae_dir, esrgan_dir = work / "Lora", work / "embeddings", work / "VAE", work / "ESRGAN"
    _seed(lora_dir, embeddings_dir, vae_dir, esrgan_dir)
    flags = ("--lora-dir", str(lora_dir), "--embeddings-dir", str(embeddings_dir), "--vae-dir", str(vae_dir),
             "--esrgan-models-path", str(esrgan_dir))
    with running_app(ckpt_dir, work, *flags) as (url, outputs):
        yield Server(url, outputs, ckpt_dir, lora_dir, embeddings_dir, vae_dir, esrgan_dir)


def _seed(lora_dir: Path, embeddings_dir: Path, vae_dir: Path, esrgan_dir: Path) -> None:
    from tests.networks.embedding_files import vectors, write_emb_params_safetensors
    from tests.upscalers.esrgan_files import write_tiny_esrgan

    for rel in SEEDED_LORAS:
        (lora_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (lora_dir / rel).write_bytes(b"placeholder: listed, never read")
    embeddings_dir.mkdir(parents=True)
    write_emb_params_safetensors(embeddings_dir / f"{SEEDED_EMBEDDING}.safetensors", vectors(2))
    vae_dir.mkdir(parents=True)
    (vae_dir / SEEDED_VAE).write_bytes(b"placeholder: listed, never read")
    write_tiny_esrgan(esrgan_dir / f"{TINY_UPSCALER}.pth", scale=4)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where the tests leave screenshots of each tab."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.url)
    page.wait_for_selector("#txt2img_generate")
    yield page
    context.close()
