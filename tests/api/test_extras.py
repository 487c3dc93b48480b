"""/sdapi/v1/extra-single-image and extra-batch-images: A1111's fields and replies, and bad input refused early."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import requests
from PIL import Image, PngImagePlugin

from tests.api.test_routes import decode
from tests.upscalers.esrgan_files import write_tiny_esrgan

MODEL = "extras-tiny-4x"
PARAMETERS = "a fox\nNegative prompt: blur\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 32x24"


@pytest.fixture(scope="module")
def server(api_server):
    """The shared API server with a tiny 4x ESRGAN and a broken file in its upscaler folder (removed after)."""
    folder = api_server.stack.settings.esrgan_dir
    files = [write_tiny_esrgan(folder / f"{MODEL}.pth", scale=4), folder / "extras-broken.pth"]
    files[1].write_bytes(b"PK\x03\x04 not really a zip")
    api_server.stack.manager.upscalers.refresh()
    yield api_server
    for path in files:
        path.unlink()
    api_server.stack.manager.upscalers.refresh()


def b64_png(width: int = 32, height: int = 24, parameters: str | None = None) -> str:
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buffer, "PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode()


def bomb() -> str:
    """A tiny PNG that claims 30000x30000 pixels (Pillow refuses it as a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return base64.b64encode(data).decode()


def post(server, route: str, body: dict) -> requests.Response:
    return requests.post(server.api(route), json=body, timeout=120)


def test_single_image_comes_back_upscaled_with_both_chunks_and_is_not_saved(server):
    r = post(server, "extra-single-image", {"image": b64_png(parameters=PARAMETERS), "upscaler_1": "Nearest",
                                            "upscaling_resize": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["html_info"] == "<p>Postprocess upscale by: 2, Postprocess upscaler: Nearest</p>"
    image = decode(body["image"])
    assert image.size == (64, 48)
    assert image.info["parameters"] == PARAMETERS
    assert image.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Nearest"
    assert not (server.stack.outputs / "extras-images").exists()  # A1111's API saves no extras results


def test_batch_images_through_a_model_with_scale_to_and_upscaler_2(server):
    r = post(server, "extra-batch-images", {
        "imageList": [{"data": b64_png(), "name": "a.png"}, {"data": b64_png(16, 16), "name": "b.png"}],
        "resize_mode": 1, "upscaling_resize_w": 48, "upscaling_resize_h": 40, "upscaling_crop": True,
        "upscaler_1": MODEL, "upscaler_2": "Lanczos", "extras_upscaler_2_visibility": 0.5})
    assert r.status_code == 200, r.text
    images = [decode(data) for data in r.json()["images"]]
    assert [image.size for image in images] == [(48, 40), (48, 40)]
    assert r.json()["html_info"] == (f"<p>Postprocess upscale to: 48x40, Postprocess crop to: 48x40, "
                                     f"Postprocess upscaler: {MODEL}, Postprocess upscaler 2: Lanczos</p>")


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    ({"image": base64.b64encode(b"just some text").decode()}, 400, "image", "not an image"),
    ({"image": bomb()}, 400, "image", "decompression bomb"),
    ({"image": b64_png(), "upscaler_1": "4x-UltraSharp"}, 400, "upscaler_1",
     "no upscaler '4x-UltraSharp'; known: None, Lanczos, Nearest, "),
    ({"image": b64_png(), "upscaler_1": "Nearest", "upscaler_2": "SwinIR"}, 400, "upscaler_2", "no upscaler"),
    ({"image": b64_png(), "upscaler_1": "Nearest", "upscaling_resize": 9}, 400, "upscaling_resize", "at most 8"),
    ({"image": b64_png(2048, 8), "upscaler_1": "Nearest", "upscaling_resize": 5}, 400, "image",
     "would make it 10240x40; Extras makes at most 8192 pixels"),
    ({"image": b64_png(), "upscaler_1": "Nearest", "resize_mode": 1, "upscaling_resize_w": 9000}, 400,
     "upscaling_resize_w", "from 1 to 8192"),
    ({"image": b64_png(), "resize_mode": 2}, 422, "resize_mode", ""),
    ({"image": b64_png(), "gfpgan_visibility": 0.5}, 400, "gfpgan_visibility", "not supported"),
    # A broken file on the server: 500 as for a broken checkpoint (the file is at fault, not the request).
    ({"image": b64_png(), "upscaler_1": "extras-broken"}, 500, "upscaler_1", "extras-broken.pth: corrupt"),
])
def test_bad_input_is_refused_with_its_field_and_the_server_keeps_working(server, body, status, field, words):
    r = post(server, "extra-single-image", body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and words in r.json()["detail"], r.json()
    assert MODEL in r.json()["detail"] or "no upscaler" not in r.json()["detail"]  # the list names the model too
    ok = post(server, "extra-single-image", {"image": b64_png(8, 8), "upscaler_1": "Lanczos"})
    assert ok.status_code == 200 and decode(ok.json()["image"]).size == (16, 16)
