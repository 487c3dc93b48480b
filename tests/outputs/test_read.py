"""Reading infotexts out of real files: A1111-style PNG/JPEG/WEBP, no metadata, and bad files."""

from __future__ import annotations

import io
import os
import struct
import zlib

import piexif
import piexif.helper
import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from sdui.outputs.infotext import parse_infotext
from sdui.outputs.read import read_infotext
from tests.outputs.a1111_fixtures import FIXTURES


def _image(size=(64, 64)) -> Image.Image:
    return Image.effect_noise(size, 60).convert("RGB")


def _a1111_png(path, text: str) -> None:
    """As A1111's save_image_with_geninfo writes a PNG: a `parameters` text chunk via PngInfo."""
    info = PngInfo()
    info.add_text("parameters", text)
    _image().save(path, "PNG", pnginfo=info)


def _a1111_exif(path, text: str, fmt: str) -> None:
    """As A1111 writes JPEG/WEBP: EXIF UserComment dumped by piexif with UNICODE encoding."""
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding="unicode")}})
    _image().save(path, fmt, quality=90, exif=exif)


def _check(parsed: dict, expected: dict) -> None:
    for key, value in expected.items():
        if value is None:
            assert key not in parsed, key
        else:
            assert parsed.get(key) == value, key


@pytest.mark.parametrize("name,text,expected", FIXTURES, ids=[f[0] for f in FIXTURES])
def test_a1111_png_files(tmp_path, name, text, expected):
    path = tmp_path / f"{name}.png"
    _a1111_png(path, text)
    read = read_infotext(path)
    assert read == text
    _check(parse_infotext(read), expected)


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("WEBP", "webp")])
@pytest.mark.parametrize("name,text,expected", FIXTURES[:5:2], ids=[f[0] for f in FIXTURES[:5:2]])
def test_a1111_jpeg_and_webp_files(tmp_path, fmt, ext, name, text, expected):
    path = tmp_path / f"{name}.{ext}"
    _a1111_exif(path, text, fmt)
    assert read_infotext(path) == text
    _check(parse_infotext(read_infotext(str(path))), expected)


def test_little_endian_unicode_user_comment(tmp_path):
    # Some tools write the UNICODE comment in the TIFF's little-endian order.
    text = "a fox, snow\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64"
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\x00" + text.encode("utf-16-le")
    path = tmp_path / "le.jpg"
    _image().save(path, "JPEG", exif=exif)
    assert read_infotext(path) == text


def test_pil_image_in_memory():
    image = _image()
    image.info["parameters"] = "x\nSteps: 1, Sampler: Euler, CFG scale: 7"
    assert read_infotext(image) == image.info["parameters"]
    assert read_infotext(_image()) is None


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_no_metadata_is_none(tmp_path, fmt, ext):
    path = tmp_path / f"plain.{ext}"
    _image().save(path, fmt)
    assert read_infotext(path) is None


def test_non_image_and_missing_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("Steps: 20, Sampler: Euler a, CFG scale: 7")
    with pytest.raises(ValueError, match="notes.png is not an image"):
        read_infotext(path)
    with pytest.raises(ValueError, match="is not a file"):
        read_infotext(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="is not a file"):
        read_infotext(tmp_path)
    with pytest.raises(ValueError, match="expected an image or a path"):
        read_infotext(42)


def test_truncated_and_corrupt_images(tmp_path):
    good = tmp_path / "good.png"
    _a1111_png(good, "x\nSteps: 1, Sampler: Euler, CFG scale: 7")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match="truncated.png is a damaged image"):
        read_infotext(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(data[:16] + os.urandom(400))
    with pytest.raises(ValueError, match="garbage.png is"):
        read_infotext(garbage)
    jpeg = io.BytesIO()
    _image((128, 128)).save(jpeg, "JPEG")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpeg.getvalue()[:300])
    with pytest.raises(ValueError, match="broken.jpg is a damaged image"):
        read_infotext(broken)


def _png_with_chunk(path, chunk_type: bytes, payload: bytes) -> None:
    """A valid small PNG with one extra text chunk of arbitrary bytes before the image data."""
    buffer = io.BytesIO()
    _image((8, 8)).save(buffer, "PNG")
    data = buffer.getvalue()
    chunk = struct.pack(">I", len(payload)) + chunk_type + payload
    chunk += struct.pack(">I", zlib.crc32(chunk_type + payload) & 0xFFFFFFFF)
    at = 8 + 25  # after the signature and IHDR
    path.write_bytes(data[:at] + chunk + data[at:])


def test_huge_parameters_chunk_is_refused(tmp_path):
    path = tmp_path / "huge.png"
    _png_with_chunk(path, b"tEXt", b"parameters\x00" + b"ab" * (25 * 1024 * 1024))
    with pytest.raises(ValueError, match="huge.png: its parameters text is 52,428,800 characters"):
        read_infotext(path)


@pytest.mark.parametrize("payload", [bytes(range(256)) * 16, bytes(range(1, 256)) * 16], ids=["with-nul", "no-nul"])
def test_binary_parameters_chunk_is_refused(tmp_path, payload):
    path = tmp_path / "binary.png"
    _png_with_chunk(path, b"tEXt", b"parameters\x00" + payload)
    with pytest.raises(ValueError, match="binary data"):
        read_infotext(path)


def test_compressed_bomb_chunk_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    _png_with_chunk(path, b"zTXt", b"parameters\x00\x00" + zlib.compress(b"a" * (64 * 1024 * 1024), 9))
    with pytest.raises(ValueError, match="bomb.png is a damaged image: Decompressed data too large"):
        read_infotext(path)


def test_damaged_exif_is_a_clear_error(tmp_path):
    path = tmp_path / "bad-exif.jpg"
    _image().save(path, "JPEG", exif=b"Exif\x00\x00" + b"not a tiff header" * 4)
    with pytest.raises(ValueError, match="bad-exif.jpg has damaged EXIF data"):
        read_infotext(path)
