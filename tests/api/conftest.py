"""A real API server for the tests: the tiny model, the real engine and queue, uvicorn on a free 127.0.0.1 port."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pytest
import requests

from sdui.models.tiny import DEMO_NAME
from sdui.settings import Settings

SECOND_MODEL = "second-tiny"
BROKEN_MODEL = "zz-broken.safetensors"  # sorts last: never the default model


@dataclass
class Stack:
    settings: Settings
    catalog: object
    manager: object
    queue: object
    outputs: Path


@dataclass
class Server:
    url: str
    stack: Stack

    def api(self, route: str) -> str:
        return f"{self.url}/sdapi/v1/{route}"


@pytest.fixture(scope="session")
def api_models_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A models dir with the tiny model and a copy of it under another name (to switch models)."""
    models = tmp_path_factory.mktemp("api-models")
    shutil.copytree(tiny_model_dir / DEMO_NAME, models / DEMO_NAME)
    shutil.copytree(tiny_model_dir / DEMO_NAME, models / SECOND_MODEL)
    # A truncated single file: its header claims more bytes than the file has.
    (models / BROKEN_MODEL).write_bytes((10_000).to_bytes(8, "little") + b'{"a": ')
    return models


@pytest.fixture(scope="session")
def api_stack(api_models_dir, tmp_path_factory):
    from sdui.engine.generate import Engine
    from sdui.jobs import JobQueue
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.outputs.save import OutputWriter

    root = tmp_path_factory.mktemp("api-run")
    # Its own extra-network folders (empty until a test drops files there), never the project's.
    settings = Settings(api=True, data_dir=root, ckpt_dir=api_models_dir, outputs_dir=root / "outputs",
                        cache_dir=root / "cache", lora_dir=root / "Lora", lyco_dir=root / "LyCORIS",
                        embeddings_dir=root / "embeddings", vae_dir=root / "VAE", esrgan_dir=root / "ESRGAN",
                        realesrgan_dir=root / "RealESRGAN", swinir_dir=root / "SwinIR", dat_dir=root / "DAT",
                        max_file_size_mb=2)
    for folder in settings.network_dirs:
        folder.mkdir(parents=True)
    catalog = Catalog(settings.ckpt_dir, settings.cache_dir, exclude=settings.network_dirs)
    manager = ModelManager(catalog, settings)
    queue = JobQueue(Engine(manager), OutputWriter(settings.outputs_dir))
    queue.start()
    yield Stack(settings, catalog, manager, queue, settings.outputs_dir)
    queue.stop()


def serve(app) -> tuple[str, Callable[[], None]]:
    """Run `app` with uvicorn in a thread on a free 127.0.0.1 port; returns (base url, stop)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


def start_server(stack: Stack, **settings_changes):
    """Serve a FastAPI app with the API mounted on the shared stack; returns (Server, stop)."""
    import fastapi

    from sdui.api import mount_api

    settings = replace(stack.settings, **settings_changes)
    app = fastapi.FastAPI()
    mount_api(app, queue=stack.queue, manager=stack.manager, catalog=stack.catalog, settings=settings)
    url, stop = serve(app)
    return Server(url, replace(stack, settings=settings)), stop


@pytest.fixture(scope="session")
def api_server(api_stack):
    server, stop = start_server(api_stack)
    # Warm up: the first job loads the model.
    r = requests.post(server.api("txt2img"), json={"prompt": "warm", "steps": 1, "width": 64, "height": 64},
                      timeout=120)
    assert r.status_code == 200, r.text
    yield server
    stop()
