"""Launch checks: --share needs a password, --listen warns, files outside outputs are never served."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sdui.settings import parse_args
from sdui.ui.security import LaunchRefused, check_launch, launch_options
from tests.ui.server import ROOT, app_env


def test_share_without_auth_is_refused_with_how_to_fix():
    with pytest.raises(LaunchRefused) as refused:
        check_launch(parse_args(["--share"]))
    assert "--gradio-auth user:password" in str(refused.value)
    assert "--insecure-share" in str(refused.value)


def test_insecure_share_starts_with_a_loud_warning():
    warnings = check_launch(parse_args(["--share", "--insecure-share"]))
    assert any("NO password" in w for w in warnings)


def test_share_with_auth_and_local_default_have_no_warning():
    assert check_launch(parse_args(["--share", "--gradio-auth", "me:secret"])) == []
    assert check_launch(parse_args([])) == []


def test_listen_without_auth_warns():
    warnings = check_launch(parse_args(["--listen"]))
    assert len(warnings) == 1 and "--gradio-auth" in warnings[0]


def test_launch_options_allow_only_outputs_and_block_models(tmp_path):
    settings = parse_args(["--ckpt-dir", str(tmp_path / "m"), "--outputs-dir", str(tmp_path / "o"),
                           "--gradio-auth", "a:b,c:d", "--max-file-size-mb", "7", "--listen"])
    options = launch_options(settings)
    assert options["allowed_paths"] == [str(tmp_path / "o")]
    assert str(tmp_path / "m") in options["blocked_paths"]
    assert options["auth"] == [("a", "b"), ("c", "d")]
    assert options["max_file_size"] == "7mb"
    assert options["server_name"] == "0.0.0.0"


def test_app_exits_non_zero_on_share_without_auth(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--share", "--ckpt-dir", str(tmp_path)],
                          cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--gradio-auth user:password" in done.stderr
    assert not any(tmp_path.iterdir()), "nothing may be built before the refusal"


def test_data_dir_gives_a1111s_layout_and_each_folder_has_its_flag(tmp_path):
    from sdui.settings import parse_args

    s = parse_args(["--data-dir", str(tmp_path), "--vae-dir", str(tmp_path / "elsewhere")])
    assert (s.data_dir, s.ckpt_dir, s.lora_dir, s.lyco_dir, s.embeddings_dir, s.outputs_dir, s.cache_dir) == (
        tmp_path, tmp_path / "models", tmp_path / "models" / "Lora", tmp_path / "models" / "LyCORIS",
        tmp_path / "embeddings", tmp_path / "outputs", tmp_path / "cache")
    assert s.vae_dir == tmp_path / "elsewhere"
    blocked = launch_options(s)["blocked_paths"]
    assert {str(s.lora_dir), str(s.vae_dir), str(s.embeddings_dir), str(s.ckpt_dir)} <= set(blocked)
