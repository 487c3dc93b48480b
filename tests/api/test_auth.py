"""--api-auth: HTTP Basic on every /sdapi route of a real server; the warning for an exposed open API."""

from __future__ import annotations

import pytest
import requests

from sdui.api import warn_if_exposed
from sdui.settings import Settings
from tests.api.conftest import start_server


@pytest.fixture(scope="module")
def locked_server(api_stack):
    server, stop = start_server(api_stack, api_auth=[("alice", "s3cret"), ("bob", "hunter2")])
    yield server
    stop()


@pytest.mark.parametrize("method, route", [
    ("get", "options"), ("get", "sd-models"), ("get", "progress"), ("get", "samplers"), ("post", "interrupt"),
    ("post", "txt2img"), ("post", "img2img"), ("post", "png-info"), ("post", "refresh-checkpoints"),
])
@pytest.mark.parametrize("auth", [None, ("alice", "wrong"), ("mallory", "s3cret"), ("alice", "")])
def test_refused_without_valid_credentials(locked_server, method, route, auth):
    r = getattr(requests, method)(locked_server.api(route), auth=auth, json={"prompt": "x"}, timeout=30)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Basic" and "api-auth" in r.json()["detail"]


def test_accepted_with_valid_credentials(locked_server):
    assert requests.get(locked_server.api("samplers"), auth=("bob", "hunter2"), timeout=30).status_code == 200
    r = requests.post(locked_server.api("txt2img"), auth=("alice", "s3cret"), timeout=60,
                      json={"prompt": "authorised", "seed": 12, "steps": 1, "width": 64, "height": 64})
    assert r.status_code == 200, r.text
    progress = requests.get(locked_server.api("progress"), auth=("alice", "s3cret"), timeout=30).json()
    assert progress["state"]["job_count"] == 0


@pytest.mark.parametrize("settings, warns", [
    (Settings(api=True, listen=True), True),
    (Settings(api=True, share=True), True),
    (Settings(api=True, listen=True, api_auth=[("u", "p")]), False),
    (Settings(api=True), False),
    (Settings(api=False, listen=True), False),
])
def test_warn_if_exposed(settings, warns, capsys):
    message = warn_if_exposed(settings)
    err = capsys.readouterr().err
    if warns:
        assert message and "--api-auth" in message and message in err
    else:
        assert message is None and err == ""
