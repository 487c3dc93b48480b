"""The options store (sdui/options.py): defaults, config.json read and written, bad values, flags winning."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from sdui.options import (CONFIG_NAME, PREVIEW_AT_END, FixedOption, OptionError, Options, UnknownOption,
                          apply_live, forget_missing_models)
from sdui.outputs.save import OutputWriter
from sdui.settings import Settings, parse_args


def settings_in(tmp_path: Path, *flags: str) -> Settings:
    return parse_args(["--data-dir", str(tmp_path), *flags])


def write_config(tmp_path: Path, data) -> Path:
    path = tmp_path / CONFIG_NAME
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path):
    options = Options.for_data_dir(settings_in(tmp_path))
    values = options.values()
    assert values["samples_format"] == "png" and values["samples_save"] is True
    assert values["CLIP_stop_at_last_layers"] == 1 and values["sd_vae"] == "Automatic"
    assert values["outdir_txt2img_samples"] == str(tmp_path.resolve() / "outputs" / "txt2img-images")
    assert values["ESRGAN_tile"] == 192 and values["sd_checkpoints_limit"] == 1
    assert options.messages == [] and not (tmp_path / CONFIG_NAME).exists()


def test_a_saved_file_is_read_back(tmp_path):
    settings = settings_in(tmp_path)
    Options.for_data_dir(settings).update({"CLIP_stop_at_last_layers": 2, "samples_format": "webp"})
    on_disk = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert on_disk == {"CLIP_stop_at_last_layers": 2, "samples_format": "webp"}
    again = Options.for_data_dir(settings)
    assert again.get("CLIP_stop_at_last_layers") == 2 and again.get("samples_format") == "webp"
    assert again.start_settings().save_format == "webp"


@pytest.mark.parametrize("key, value, default", [
    ("CLIP_stop_at_last_layers", 50, 1),  # out of range
    ("CLIP_stop_at_last_layers", "two", 1),  # wrong type
    ("samples_save", "yes", True),
    ("samples_format", "gif", "png"),  # unknown choice
    ("randn_source", "AMD", "CPU"),
    ("ESRGAN_tile", 1.5, 192),
])
def test_a_bad_value_names_its_key_and_falls_back(tmp_path, key, value, default):
    write_config(tmp_path, {key: value, "eta_noise_seed_delta": 31337})
    options = Options.for_data_dir(settings_in(tmp_path))
    assert options.get(key) == default
    assert options.get("eta_noise_seed_delta") == 31337  # the good keys still load
    assert len(options.messages) == 1 and key in options.messages[0] and repr(value) in options.messages[0]


def test_unparsable_json_gives_a_message_and_the_defaults(tmp_path):
    write_config(tmp_path, '{"CLIP_stop_at_last_layers": 2,')
    options = Options.for_data_dir(settings_in(tmp_path))
    assert options.get("CLIP_stop_at_last_layers") == 1
    assert len(options.messages) == 1 and "not valid JSON" in options.messages[0]


def test_unknown_keys_are_kept_untouched(tmp_path):
    a1111 = {"sd_model_checkpoint": "v1-5.safetensors", "img2img_color_correction": True,
             "quicksettings_list": ["sd_model_checkpoint", "sd_vae"], "face_restoration_model": None}
    write_config(tmp_path, a1111)
    options = Options.for_data_dir(settings_in(tmp_path))
    options.update({"eta_noise_seed_delta": 7})
    assert json.loads((tmp_path / CONFIG_NAME).read_text()) == {**a1111, "eta_noise_seed_delta": 7}


def test_flags_win_over_the_file(tmp_path):
    write_config(tmp_path, {"samples_format": "webp", "samples_save": True, "sd_checkpoints_limit": 3,
                            "ESRGAN_tile": 256, "outdir_txt2img_samples": "elsewhere"})
    outputs = tmp_path / "flag-outputs"
    settings = settings_in(tmp_path, "--save-format", "jpg", "--no-save", "--upscaler-tile", "64",
                           "--outputs-dir", str(outputs))
    options = Options.for_data_dir(settings)
    assert options.get("samples_format") == "jpg" and options.get("samples_save") is False
    assert options.get("ESRGAN_tile") == 64 and options.get("sd_checkpoints_limit") == 3  # no flag given: file
    assert options.get("outdir_txt2img_samples") == str(outputs / "txt2img-images")
    assert options.fixed_by("samples_format") == "--save-format" and options.fixed_by("sd_checkpoints_limit") is None
    start = options.start_settings()
    assert (start.save_format, start.no_save, start.upscaler_tile, start.models_in_memory) == ("jpg", True, 64, 3)
    with pytest.raises(FixedOption, match="--save-format"):
        options.update({"samples_format": "png"})
    assert options.update({"samples_format": "jpg"}) == {}  # the fixed value itself is accepted


def test_update_checks_everything_before_changing_anything(tmp_path):
    options = Options.for_data_dir(settings_in(tmp_path))
    with pytest.raises(UnknownOption) as unknown:
        options.update({"CLIP_stop_at_last_layers": 2, "no_such_option": 1})
    assert unknown.value.name == "no_such_option"
    with pytest.raises(OptionError) as bad:
        options.update({"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": -1})
    assert bad.value.name == "eta_noise_seed_delta" and "-1" in str(bad.value)
    assert options.get("CLIP_stop_at_last_layers") == 1 and not (tmp_path / CONFIG_NAME).exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    options = Options.for_data_dir(settings_in(tmp_path))
    options.update({"CLIP_stop_at_last_layers": 2})

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("sdui.options.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        options.update({"CLIP_stop_at_last_layers": 3})
    # The old file is whole, no temp file is left behind and the value did not change in memory either.
    assert json.loads((tmp_path / CONFIG_NAME).read_text()) == {"CLIP_stop_at_last_layers": 2}
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_NAME]
    assert options.get("CLIP_stop_at_last_layers") == 2


def test_concurrent_updates_all_land(tmp_path):
    options = Options.for_data_dir(settings_in(tmp_path))
    names = ["CLIP_stop_at_last_layers", "eta_noise_seed_delta", "ESRGAN_tile_overlap", "show_progress_every_n_steps"]
    threads = [threading.Thread(target=options.update, args=({name: 3},)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads((tmp_path / CONFIG_NAME).read_text()) == dict.fromkeys(names, 3)


def test_listeners_and_apply_live(tmp_path):
    options = Options.for_data_dir(settings_in(tmp_path))
    writer, engine = OutputWriter(tmp_path / "outputs"), type("Engine", (), {"preview_every": 5})()
    seen = []
    options.on_change(seen.append)
    options.on_change(lambda changed: apply_live(options, writer, engine))
    options.update({"samples_format": "webp", "outdir_samples": "all-here", "show_progress_every_n_steps": -1})
    assert seen == [{"samples_format": "webp", "outdir_samples": "all-here", "show_progress_every_n_steps": -1}]
    assert writer.fmt == "webp" and engine.preview_every == PREVIEW_AT_END
    assert writer.folder_for("txt2img").parent == tmp_path.resolve() / "all-here"  # relative: under the data dir
    options.update({"outdir_samples": "", "outdir_img2img_samples": str(tmp_path / "i2i")})
    assert writer.folder_for("img2img").parent == tmp_path / "i2i"
    assert writer.folder_for("txt2img").parent == tmp_path.resolve() / "outputs" / "txt2img-images"


def test_a_missing_checkpoint_or_vae_falls_back(tmp_path):
    from sdui.models.errors import ModelNotFound

    class Catalog:
        def find(self, name):
            raise ModelNotFound(f"no checkpoint named {name!r}")

    class Vaes:
        def find(self, name):
            return None

    write_config(tmp_path, {"sd_model_checkpoint": "gone.safetensors", "sd_vae": "gone-vae.pt"})
    options = Options.for_data_dir(settings_in(tmp_path))
    forget_missing_models(options, Catalog(), Vaes())
    assert options.get("sd_model_checkpoint") == "" and options.get("sd_vae") == "Automatic"
    assert any("sd_model_checkpoint" in m and "gone.safetensors" in m for m in options.messages)
    assert any("sd_vae" in m and "gone-vae.pt" in m for m in options.messages)


def test_parse_args_tells_given_flags_from_defaults():
    assert parse_args([]).flags_given == frozenset()
    given = parse_args(["--save-format", "png", "--no-save", "--models-in-memory", "2"]).flags_given
    assert given == {"save_format", "no_save", "models_in_memory"}  # given with the default value still counts
