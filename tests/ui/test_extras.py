"""The Extras tab's widget values -> ExtrasParams, and Batch from Directory refused where strangers reach the page."""

from __future__ import annotations

import pytest
from PIL import Image

from sdui.settings import Settings
from sdui.ui.extras import BATCH, FOLDER, FOLDER_REFUSED, SINGLE, folder_refusal, to_params

UPSCALE = {"scale_mode": 0, "upscaling_resize": 2.0, "upscaling_resize_w": 512.0, "upscaling_resize_h": 384.0,
           "upscaling_crop": True, "upscaler_1": "Lanczos", "upscaler_2": "None", "extras_upscaler_2_visibility": 0}


def values(**changes) -> dict:
    return {"input_mode": SINGLE, "image": None, "batch": None, "input_dir": "", "show_results": True,
            **UPSCALE, **changes}


def test_single_image_and_slider_floats_become_params(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "cat.png")
    params, notes = to_params(Settings(), values(image=str(tmp_path / "cat.png"), scale_mode=1))
    assert notes == [] and params.resize_mode == 1
    assert (params.upscaling_resize_w, params.upscaling_resize_h) == (512, 384)  # whole pixels, not 512.0
    [source] = params.images
    assert source.name is None and source.size == (20, 10)  # a single picture is saved as NNNNN.png


def test_batch_uploads_keep_their_names(tmp_path):
    for name in ("b.png", "a.webp"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    params, _ = to_params(Settings(), values(input_mode=BATCH, batch=[str(tmp_path / "b.png"),
                                                                       str(tmp_path / "a.webp")]))
    assert [source.name for source in params.images] == ["b", "a"]


def test_a_folder_is_read_on_a_local_server_with_notes_for_what_was_skipped(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    (tmp_path / "two.png").write_bytes(b"not a png")
    params, notes = to_params(Settings(), values(input_mode=FOLDER, input_dir=str(tmp_path)))
    assert [source.name for source in params.images] == ["one"]
    assert len(notes) == 1 and "two.png" in notes[0]


@pytest.mark.parametrize("flags", [{"share": True, "gradio_auth": [("me", "pw")]}, {"listen": True},
                                   {"listen": True, "gradio_auth": [("me", "pw")]}])
def test_a_folder_is_refused_when_others_can_reach_the_page(tmp_path, flags):
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    settings = Settings(**flags)
    assert folder_refusal(settings) == FOLDER_REFUSED
    with pytest.raises(ValueError, match="^Batch from Directory is off: .*--share or --listen"):
        to_params(settings, values(input_mode=FOLDER, input_dir=str(tmp_path)))
    assert folder_refusal(Settings()) is None


@pytest.mark.parametrize(("changes", "message"), [
    ({}, "drop a picture into Single Image first"),
    ({"input_mode": BATCH}, "add pictures to Batch Process first"),
    ({"input_mode": FOLDER}, "input_dir: type the folder"),
    ({"input_mode": FOLDER, "input_dir": "/nonexistent/sdui"}, "input_dir: /nonexistent/sdui is not a folder"),
])
def test_missing_input_says_what_to_do(changes, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        to_params(Settings(), values(**changes))


def test_an_out_of_range_value_is_refused_before_queueing(tmp_path):
    Image.new("RGB", (2048, 8)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match=r"^wide.png is 2048x8: scaling by 8 would make it 16384x64"):
        to_params(Settings(), values(image=str(tmp_path / "wide.png"), upscaling_resize=8))
