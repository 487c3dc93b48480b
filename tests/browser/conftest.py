"""The real server (app.py, tiny model) and one headless Chromium, started once for the browser tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ui.server import running_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Server:
    url: str
    outputs: Path


@pytest.fixture(scope="session")
def server(tiny_model_dir, tmp_path_factory) -> Server:
    with running_app(tiny_model_dir, tmp_path_factory.mktemp("browser-server")) as (url, outputs):
        yield Server(url, outputs)


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
