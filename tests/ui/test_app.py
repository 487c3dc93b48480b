"""The real server from app.py: the login page, refused passwords, and files it must never serve."""

from __future__ import annotations

import httpx
import pytest

from sdui.models.tiny import DEMO_NAME
from tests.ui.conftest import PASSWORD, USER


def login(url: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{url}/login", data={"username": USER, "password": password}, timeout=10)


@pytest.fixture(scope="module")
def session(auth_server):
    url = auth_server.url
    reply = login(url)
    assert reply.status_code == 200 and reply.json() == {"success": True}
    with httpx.Client(base_url=url, cookies=reply.cookies, timeout=10) as client:
        yield client


def test_login_page_is_served_and_app_config_needs_a_login(auth_server):
    url = auth_server.url
    page = httpx.get(url + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert '"auth_required":true' in page.text.replace(" ", ""), "the page must show the login form"
    assert "txt2img_generate" not in page.text, "the UI itself must stay hidden before login"
    assert httpx.get(url + "/config", timeout=10).status_code == 401


def test_wrong_password_is_refused(auth_server):
    url = auth_server.url
    reply = login(url, password="not-the-password")
    assert reply.status_code == 400
    assert "Incorrect credentials" in reply.text
    assert not reply.cookies


def test_right_password_opens_the_app(session):
    config = session.get("/config")
    assert config.status_code == 200 and "txt2img_generate" in config.text


def _serves_content(reply: httpx.Response, needle: bytes) -> bool:
    return reply.status_code == 200 and needle in reply.content


@pytest.mark.parametrize("path", [
    "/file=/etc/passwd",
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../../../../../etc/passwd",
    "/gradio_api/file=..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file/etc/passwd",
    "/gradio_api/file=//etc/passwd",
])
def test_system_files_are_never_served(session, path):
    assert not _serves_content(session.get(path), b"root:")


def test_model_files_and_folder_are_never_served(session, auth_server):
    outputs, tiny_model_dir = auth_server.outputs, auth_server.ckpt_dir
    weights = next((tiny_model_dir / DEMO_NAME / "unet").glob("*.safetensors"))
    head = weights.read_bytes()[:64]
    for path in (f"/gradio_api/file={weights}", f"/file={weights}", f"/gradio_api/file/{weights}",
                 f"/gradio_api/file={outputs}/../../../{weights.relative_to('/')}",
                 f"/gradio_api/file={tiny_model_dir}",
                 f"/gradio_api/file={tiny_model_dir / DEMO_NAME / 'model_index.json'}"):
        reply = session.get(path)
        assert not _serves_content(reply, head), path
        assert not _serves_content(reply, b"_class_name"), path


def test_saved_outputs_are_served(session, auth_server):
    # The positive control: the same route does serve what lives in the outputs folder.
    outputs = auth_server.outputs
    sample = outputs / "probe" / "sample.txt"
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text("generated output")
    reply = session.get(f"/gradio_api/file={sample}")
    assert reply.status_code == 200 and reply.text == "generated output"
