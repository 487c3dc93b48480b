"""Reading the infotext back out of an image: PNG `parameters` text chunk, else EXIF UserComment (JPEG/WEBP).

Works alike for sdui's files and AUTOMATIC1111's. Parsing the text is infotext.py's job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from sdui.outputs.infotext import MAX_INFOTEXT_CHARS

_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNICODE, _ASCII, _JIS = b"UNICODE\x00", b"ASCII\x00\x00\x00", b"JIS\x00\x00\x00\x00\x00"


def read_infotext(source: str | os.PathLike | Image.Image) -> str | None:
    """The generation parameters an image carries, or None when it carries none.

    Raises ValueError for a file that is missing, not an image, damaged, or whose parameters text is
    binary data or absurdly long (over MAX_INFOTEXT_CHARS).
    """
    if isinstance(source, Image.Image):
        return _from_info(source.info, "the image")
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"expected an image or a path to one; got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    try:
        with Image.open(path) as image:
            image.load()  # decodes it all: finds damage, and text chunks stored after the pixels
            info = dict(image.info)
    except UnidentifiedImageError:
        raise ValueError(f"{path.name} is not an image Pillow can read (PNG, JPEG, WEBP, ...)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path.name} is a damaged image: {e}") from None
    return _from_info(info, path.name)


def _from_info(info: dict, name: str) -> str | None:
    text = info.get("parameters")
    if text is None and info.get("exif"):
        text = _user_comment(info["exif"], name)
    if text is None and info.get("comment"):  # GIF / JPEG comment, as A1111 reads it
        text = info["comment"]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{name}: its parameters are not text ({type(text).__name__})")
    if len(text) > MAX_INFOTEXT_CHARS:
        raise ValueError(f"{name}: its parameters text is {len(text):,} characters, more than the "
                         f"{MAX_INFOTEXT_CHARS:,} allowed; it is not a generation's parameters")
    # A stray control character can come from a pasted prompt; a NUL or many of them mean binary data.
    if "\x00" in text or len(_BINARY.findall(text)) * 10 > len(text):
        raise ValueError(f"{name}: its parameters text holds binary data, not generation parameters")
    return text


def _user_comment(exif_bytes: bytes, name: str) -> str | None:
    """The EXIF UserComment as text (A1111 writes it with piexif as UNICODE), or None when absent."""
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
        raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    except (OSError, SyntaxError, ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{name} has damaged EXIF data: {e}") from None
    if raw is None or isinstance(raw, str):
        return raw
    prefix, data = bytes(raw[:8]), bytes(raw[8:])
    if prefix == _UNICODE:
        return data.decode(_utf16_codec(data, exif_bytes), errors="replace").rstrip("\x00")
    if prefix == _JIS:
        return data.decode("shift_jis", errors="replace").rstrip("\x00")
    if prefix == _ASCII or prefix == b"\x00" * 8:
        return data.decode("utf-8", errors="replace").rstrip("\x00")
    return bytes(raw).decode("utf-8", errors="replace").rstrip("\x00")


def _utf16_codec(data: bytes, exif_bytes: bytes) -> str:
    """UTF-16 byte order of a UNICODE UserComment: from the zero bytes of ASCII text, else the TIFF header."""
    big, little = data[0::2].count(0), data[1::2].count(0)
    if big != little:
        return "utf-16-be" if big > little else "utf-16-le"
    header = exif_bytes[6:8] if exif_bytes.startswith(b"Exif") else exif_bytes[:2]
    return "utf-16-le" if header == b"II" else "utf-16-be"
