"""The Settings tab's Apply (sdui/ui/settings_tab.py): only changed values are saved, each bad one is refused with
its reason while the good ones still save, and the result says what needs a restart."""

from __future__ import annotations

import json
from types import SimpleNamespace

from sdui.options import CONFIG_NAME, Options
from sdui.settings import parse_args
from sdui.ui import settings_tab


def test_apply_saves_the_changed_values_and_refuses_the_bad_ones(tmp_path):
    options = Options.for_data_dir(parse_args(["--data-dir", str(tmp_path)]))
    ctx = SimpleNamespace(options=options)
    values = {"CLIP_stop_at_last_layers": 2.0, "ESRGAN_tile": 256, "eta_noise_seed_delta": -5,
              "samples_format": "png", "show_progress_every_n_steps": 5}  # a Slider sends floats
    changed, refused = settings_tab.apply_changes(ctx, values)
    assert changed == {"CLIP_stop_at_last_layers": 2, "ESRGAN_tile": 256}
    assert list(refused) == ["eta_noise_seed_delta"] and "-5" in refused["eta_noise_seed_delta"]
    assert json.loads((tmp_path / CONFIG_NAME).read_text()) == {"CLIP_stop_at_last_layers": 2, "ESRGAN_tile": 256}
    text = settings_tab.result_text(options, changed, refused)
    assert "Saved 2 setting(s)" in text and "`ESRGAN_tile` = `256` (requires restart)" in text
    assert "`CLIP_stop_at_last_layers` = `2`\n" in text and "Not saved:\n- `eta_noise_seed_delta`" in text
    assert settings_tab.apply_changes(ctx, {"CLIP_stop_at_last_layers": 2}) == ({}, {})
    assert settings_tab.result_text(options, {}, {}) == "Nothing changed."
