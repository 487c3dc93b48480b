"""The setup command users run: ./webui.sh installs once (re-runs are instant) and serves the UI."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.ui.server import ROOT, app_env, running_app


def test_webui_sh_exit_is_instant_once_installed():
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "webui.sh"), "--exit"], cwd=ROOT, env=app_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "installation complete" in done.stdout
    assert "installing" not in done.stdout, "a second ./webui.sh --exit installed again"
    assert time.monotonic() - started < 10, "a second ./webui.sh --exit reinstalled instead of starting at once"


def test_webui_sh_serves_the_ui_on_the_given_port_and_builds_the_demo_model(tmp_path):
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    with running_app(empty_models, tmp_path, launcher=(str(ROOT / "webui.sh"),)) as (url, _outputs):
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        config = httpx.get(url + "/config", timeout=10).json()
        assert "sdui-tiny-demo" in str(config)  # the checkpoint dropdown lists the demo model
    assert (empty_models / "sdui-tiny-demo" / "model_index.json").exists()
