"""Extras: ExtrasParams validation, the pictures they read, and the runner (upscaler 1, upscaler 2 blend, crop)."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from sdui.engine.postprocess import (SIDE_MAX, ExtrasImage, ExtrasParams, check_upscalers, images_from_folder,
                                     run_extras)
from sdui.settings import Settings
from sdui.upscalers import Upscalers
from tests.conftest import torch_threads
from tests.upscalers.esrgan_files import write_tiny_esrgan

PARAMETERS = "a fox\nNegative prompt: blur\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 32x24"


@pytest.fixture(scope="module")
def upscalers(tmp_path_factory) -> Upscalers:
    """The real Upscalers: the built-ins plus one tiny 4x ESRGAN model file."""
    data = tmp_path_factory.mktemp("extras-data")
    settings = Settings.for_data_dir(data, device="cpu")
    write_tiny_esrgan(settings.esrgan_dir / "tiny-4x.pth", scale=4)
    return Upscalers(settings, torch.device("cpu"))


def picture(width: int = 32, height: int = 24) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    return Image.fromarray(np.stack([x * 7, y * 9, (x + y) * 3], axis=-1).astype(np.uint8), "RGB")


def params(*images: Image.Image, **changes) -> ExtrasParams:
    sources = tuple(ExtrasImage.from_image(image, f"imageList.{i}") for i, image in enumerate(images or [picture()]))
    return ExtrasParams(**{"images": sources, "upscaler_1": "Nearest", **changes})


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height: Pillow reads the size from this header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_scale_by_with_nearest_repeats_each_pixel_and_writes_a1111s_keys(upscalers):
    result = run_extras(params(upscaling_resize=2), upscalers)
    expected = np.asarray(picture()).repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(np.asarray(result.images[0]), expected)
    assert result.infotexts == ["Postprocess upscale by: 2, Postprocess upscaler: Nearest"]
    assert not result.interrupted and result.warnings == []


def test_scale_to_with_crop_centres_the_upscaled_picture_on_the_target_size(upscalers):
    # 32x32 -> 100x40: factor max(100/32, 40/32) = 3.125, upscaled to 96x96 (A1111 floors to 8), then centred.
    result = run_extras(params(picture(32, 32), resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=40,
                               upscaler_1="lanczos"), upscalers)
    image = np.asarray(result.images[0])
    assert image.shape == (40, 100, 3)
    assert not image[:, :2].any() and not image[:, -2:].any() and image[:, 2:-2].any()  # 2 px black either side
    assert result.infotexts == [("Postprocess upscale to: 100x40, Postprocess crop to: 100x40, "
                                 "Postprocess upscaler: Lanczos")]  # the upscaler's own spelling

    uncropped = run_extras(params(picture(32, 32), resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=40,
                                  upscaling_crop=False), upscalers)
    assert uncropped.images[0].size == (96, 96)
    assert uncropped.infotexts == ["Postprocess upscale to: 100x40, Postprocess upscaler: Nearest"]


def test_upscaler_2_is_blended_over_upscaler_1_by_its_visibility(upscalers):
    source = picture()
    nearest = source.resize((64, 48), Image.Resampling.NEAREST)
    lanczos = source.resize((64, 48), Image.Resampling.LANCZOS)
    result = run_extras(params(source, upscaler_2="Lanczos", extras_upscaler_2_visibility=0.25), upscalers)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(Image.blend(nearest, lanczos, 0.25)))
    assert result.infotexts == [("Postprocess upscale by: 2, Postprocess upscaler: Nearest, "
                                 "Postprocess upscaler 2: Lanczos")]
    hidden = run_extras(params(source, upscaler_2="Lanczos", extras_upscaler_2_visibility=0), upscalers)
    assert np.array_equal(np.asarray(hidden.images[0]), np.asarray(nearest))
    assert "upscaler 2" not in hidden.infotexts[0]


def test_upscaler_1_none_keeps_the_picture_and_says_so(upscalers):
    source = picture()
    result = run_extras(params(source, upscaler_1="None", upscaler_2="Lanczos", extras_upscaler_2_visibility=1),
                        upscalers)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(source))
    assert result.infotexts == [""] and "Upscaler 1 is None" in result.warnings[0]


def test_a_model_upscaler_scales_by_2_from_its_own_4x(upscalers):
    with torch_threads(1):
        result = run_extras(params(picture(32, 32), upscaler_1="tiny-4x", upscaling_resize=2), upscalers)
    assert result.images[0].size == (64, 64)
    assert np.asarray(result.images[0]).std() > 0  # a real picture, not a flat fill
    assert result.infotexts == ["Postprocess upscale by: 2, Postprocess upscaler: tiny-4x"]


def test_the_source_infotext_is_kept_and_progress_counts_images(upscalers):
    source = picture()
    source.info["parameters"] = PARAMETERS
    steps = []
    result = run_extras(params(source, picture()), upscalers, progress=lambda p: steps.append((p.step, p.total)))
    assert result.parameters == [PARAMETERS, None]
    assert steps == [(1, 2), (2, 2)]


def test_interrupt_stops_between_images_and_keeps_the_finished_ones(upscalers):
    cancel = threading.Event()
    result = run_extras(params(picture(), picture(), picture()), upscalers, progress=lambda p: cancel.set(),
                        cancel=cancel)
    assert result.interrupted and len(result.images) == 1 == len(result.infotexts)


def test_an_unknown_upscaler_is_refused_with_the_known_names(upscalers):
    with pytest.raises(ValueError, match=r"^upscaler_1: no upscaler 'RealESRGAN 9x'; known: None, Lanczos, "
                                         r"Nearest, tiny-4x"):
        check_upscalers(params(upscaler_1="RealESRGAN 9x"), upscalers)
    with pytest.raises(ValueError, match="^upscaler_2: no upscaler 'nope'"):
        run_extras(params(upscaler_2="nope"), upscalers)


@pytest.mark.parametrize(("changes", "message"), [
    ({"upscaling_resize": 0}, "upscaling_resize must be a number above 0 and at most 8; got 0"),
    ({"upscaling_resize": 8.5}, "upscaling_resize must be a number above 0 and at most 8; got 8.5"),
    ({"upscaling_resize": float("nan")}, "upscaling_resize must be a number"),
    ({"upscaling_resize_w": 0}, "upscaling_resize_w must be a whole number of pixels from 1 to 8192; got 0"),
    ({"upscaling_resize_h": 8200}, "upscaling_resize_h must be a whole number of pixels from 1 to 8192; got 8200"),
    ({"extras_upscaler_2_visibility": 1.5}, "extras_upscaler_2_visibility must be a number from 0 to 1; got 1.5"),
    ({"resize_mode": 2}, "resize_mode must be 0 (scale by) or 1 (scale to); got 2"),
    ({"upscaler_1": ""}, "upscaler_1 must name an upscaler"),
    ({"images": ()}, "images: there is no picture to process"),
])
def test_validate_names_the_field_the_rule_and_the_value(changes, message):
    with pytest.raises(ValueError) as error:
        params(**changes).validate()
    assert str(error.value).startswith(message)


def test_result_sides_are_bounded_before_any_work(upscalers):
    calls = []
    upscalers_spy = type("Spy", (), {"check": upscalers.check, "upscale": lambda *a, **k: calls.append(a)})()
    wide = picture(2048, 16)
    with pytest.raises(ValueError, match=r"^imageList.0 is 2048x16: scaling by 4.5 would make it 9216x72; "
                                         rf"Extras makes at most {SIDE_MAX} pixels"):
        run_extras(params(wide, upscaling_resize=4.5), upscalers_spy)
    # Scale to 512x512 from 1000x10: the factor 51.2 makes 51200x512 before the crop.
    with pytest.raises(ValueError, match=r"would make it 51200x512 before cropping"):
        params(picture(1000, 10), resize_mode=1).validate()
    with pytest.raises(ValueError, match=r"^imageList.0 is 6x6: scaling by 1 would make it 0x0, under 8 pixels"):
        params(picture(6, 6), upscaling_resize=1).validate()
    assert calls == []
    params(picture(6, 6), upscaling_resize=1, upscaler_1="None").validate()  # nothing is made: nothing to bound


def test_sources_are_checked_from_their_header(tmp_path):
    with pytest.raises(ValueError, match=r"^imageList.0 is 9000x4; Extras takes pictures up to 8192 pixels"):
        ExtrasImage.from_image(Image.new("RGB", (9000, 4)), "imageList.0")
    with pytest.raises(ValueError, match=r"^wide.png is 9000x10; Extras takes pictures up to 8192"):
        ExtrasImage.from_file(png_header(tmp_path / "wide.png", 9000, 10))
    with pytest.raises(ValueError, match=r"^bomb.png is refused as a decompression bomb"):
        ExtrasImage.from_file(png_header(tmp_path / "bomb.png", 30000, 30000))
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"^notes.png is not an image Pillow can read"):
        ExtrasImage.from_file(tmp_path / "notes.png")


def test_a_file_source_is_read_when_its_turn_comes_with_its_infotext(tmp_path, upscalers):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", PARAMETERS)
    picture().convert("RGBA").save(tmp_path / "fox.png", pnginfo=info)
    source = ExtrasImage.from_file(tmp_path / "fox.png", name="fox")
    assert source.size == (32, 24) and source.image is None
    image, parameters, note = source.load()
    assert image.mode == "RGB" and parameters == PARAMETERS and note is None
    result = run_extras(ExtrasParams(images=(source,), upscaler_1="Nearest"), upscalers)
    assert result.names == ["fox"] and result.parameters == [PARAMETERS] and result.images[0].size == (64, 48)


def test_a_folder_gives_its_pictures_by_name_and_a_note_per_unusable_image(tmp_path):
    picture().save(tmp_path / "b.png")
    picture(16, 16).save(tmp_path / "A.jpg")
    (tmp_path / "caption.txt").write_text("a fox")  # not an image format: passed over in silence
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnonsense")
    picture().save(tmp_path / ".hidden.png")
    (tmp_path / "sub").mkdir()
    picture().save(tmp_path / "sub" / "deeper.png")
    images, notes = images_from_folder(tmp_path)
    assert [(image.name, image.size) for image in images] == [("A", (16, 16)), ("b", (32, 24))]
    assert len(notes) == 1 and notes[0].startswith("skipped: broken.png is")
    with pytest.raises(ValueError, match=r"^input_dir: .*missing is not a folder"):
        images_from_folder(tmp_path / "missing")


def test_extras_jobs_run_through_the_job_queue_and_are_saved_in_extras_images(tmp_path, upscalers):
    from types import SimpleNamespace

    from sdui.jobs import JobQueue, JobState
    from sdui.outputs.save import OutputWriter

    queue = JobQueue(SimpleNamespace(manager=SimpleNamespace(upscalers=upscalers)), OutputWriter(tmp_path))
    with pytest.raises(ValueError, match="^upscaler_1: no upscaler 'nope'"):
        queue.submit(params(upscaler_1="nope"))  # refused at once: nothing is queued
    assert queue.queued() == []
    queue.start()
    try:
        source = picture()
        source.info["parameters"] = PARAMETERS
        job = queue.submit(params(source, picture()), owner="me")
        result = job.wait(30)
    finally:
        queue.stop()
    assert job.state is JobState.DONE and job.progress().step == 2 == job.progress().total
    assert [p.relative_to(tmp_path).as_posix() for p in job.saved_paths] == ["extras-images/00000.png",
                                                                              "extras-images/00001.png"]
    with Image.open(job.saved_paths[0]) as saved:
        assert saved.size == (64, 48) and saved.text["parameters"] == PARAMETERS
        assert saved.text["postprocessing"] == result.infotexts[0]
