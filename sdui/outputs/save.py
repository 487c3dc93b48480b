"""Saving a Result to disk as `<root>/<mode>-images/YYYY-MM-DD/NNNNN-SEED.<ext>` with its infotext inside, and an
Extras result as `<root>/extras-images/NNNNN.<ext>` (a batch: `<source name>.<ext>`, else `<source name>-NNNN.<ext>`).

An image is encoded in memory, written to a temporary name in its folder and fsynced, then claimed under
its final name with os.link, which fails rather than overwrite. Numbering runs under a lock per folder
in this process and a file lock across processes, so concurrent saves never clash or leave gaps.
"""

from __future__ import annotations

import errno
import functools
import io
import itertools
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import piexif
import piexif.helper
from filelock import FileLock
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sdui.engine.result import Result

if TYPE_CHECKING:
    from sdui.engine.postprocess import ExtrasResult

FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
JPEG_EXIF_MAX_BYTES = 65533  # one JPEG APP1 segment
JPEG_QUALITY = 95
LOCK_NAME = ".sdui-save.lock"
LOCK_TIMEOUT_S = 60.0
_NUMBERED = re.compile(r"^(\d+)-")
EXTRAS_FOLDER = "extras-images"
# A1111's `postprocessing` and `extras` text chunks both hold the postprocessing text; `parameters` stays the source's.
EXTRAS_CHUNKS = ("postprocessing", "extras")
SOURCE_NAME_MAX = 120
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
# link() unsupported here (FAT, some network shares): fall back to an exclusive create + rename.
_NO_LINK = {getattr(errno, name) for name in ("EPERM", "EOPNOTSUPP", "ENOTSUP", "EXDEV", "EMLINK", "ENOSYS")
            if hasattr(errno, name)}
_DISK_FULL = {getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name)}
_NOT_WRITABLE = {getattr(errno, name) for name in ("EACCES", "EPERM", "EROFS") if hasattr(errno, name)}


class SaveError(OSError):
    """Saving failed (disk full, read-only folder, ...). The images are still in the Result.

    `saved` lists the files written before the failure.
    """

    def __init__(self, message: str, saved: list[Path] | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code
        self.saved = list(saved or [])


class OutputWriter:
    """Writes each image of a Result with its infotext (PNG text chunk, or EXIF UserComment for jpg/webp)."""

    def __init__(self, root: Path, fmt: str = "png", enabled: bool = True) -> None:
        key = str(fmt).lower().lstrip(".")
        key = "jpg" if key == "jpeg" else key
        if key not in FORMATS:
            raise ValueError(f"save format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        self.root = Path(root)
        self.fmt = key
        self.enabled = enabled
        # Folder name (`txt2img-images`, `extras-images`, ...) -> where those go, when not `<root>/<name>`.
        self.folders: dict[str, Path] = {}
        self._guard = threading.Lock()
        self._folder_locks: dict[Path, threading.Lock] = {}

    def folder_for(self, mode: str, day: date | None = None) -> Path:
        """`<root>/<mode>-images/YYYY-MM-DD` (today when `day` is None; `folders` may move `<mode>-images`)."""
        return self.folder(f"{mode}-images") / (day or date.today()).isoformat()

    def folder(self, name: str) -> Path:
        """Where the `name` folder (`txt2img-images`, `txt2img-grids`, ...) is: `<root>/<name>` unless moved."""
        return self.folders.get(name, self.root / name)

    def save(self, result: Result) -> list[Path]:
        """Save every image of `result`; return their paths ([] when saving is off).

        Raises SaveError (an OSError) naming the folder and the cause; `SaveError.saved` holds the
        files written before it.
        """
        if not self.enabled or not result.images:
            return []
        folder = self.folder_for(result.params.mode.value)
        saved: list[Path] = []
        for i, image in enumerate(result.images):
            seed = result.seeds[i] if i < len(result.seeds) else result.params.seed
            info = result.infotexts[i] if i < len(result.infotexts) else ""
            try:
                saved.append(self._save_one(folder, image, seed, info))
            except OSError as e:
                raise SaveError(_message(e, folder, len(saved), len(result.images)), saved, e.errno) from e
        return saved

    def save_extras(self, result: ExtrasResult) -> list[Path]:
        """Save every picture of an Extras result in `<root>/extras-images/` (no date folder, as A1111); return
        their paths ([] when saving is off). A PNG keeps the source's `parameters` chunk and gets A1111's
        `postprocessing` and `extras` chunks; a JPEG/WEBP carries the source's infotext (else the postprocessing
        text) as its EXIF UserComment. Raises SaveError like `save`."""
        if not self.enabled or not result.images:
            return []
        folder = self.folder(EXTRAS_FOLDER)
        saved: list[Path] = []
        for i, image in enumerate(result.images):
            postprocessing = result.infotexts[i] if i < len(result.infotexts) else ""
            parameters = result.parameters[i] if i < len(result.parameters) else None
            name = source_file_name(result.names[i] if i < len(result.names) else None)
            if self.fmt == "png":
                data = png_bytes_with(image, {"parameters": parameters, **dict.fromkeys(EXTRAS_CHUNKS, postprocessing)})
                sidecar = ""
            else:
                info = parameters or postprocessing
                data, too_long = _encode(image, info, self.fmt)
                sidecar = info if too_long else ""
            try:
                names = functools.partial(_extras_names, folder, name, self.fmt)
                saved.append(self._write(folder, data, names, sidecar))
            except OSError as e:
                raise SaveError(_message(e, folder, len(saved), len(result.images)), saved, e.errno) from e
        return saved

    def save_grid(self, image: Image.Image, info: str, mode: str, basename: str = "grid") -> Path | None:
        """Save a grid as A1111 names grids: `<mode>-grids/YYYY-MM-DD/<basename>-NNNN.<ext>` with `info` as its
        infotext; None when saving is off. Raises SaveError like `save`."""
        if not self.enabled:
            return None
        folder = self.folder(f"{mode}-grids") / date.today().isoformat()
        data, too_long = _encode(image, info, self.fmt)
        names = functools.partial(_grid_names, folder, basename, self.fmt)
        try:
            return self._write(folder, data, names, info if too_long else "")
        except OSError as e:
            raise SaveError(_message(e, folder, 0, 1), [], e.errno) from e

    def _save_one(self, folder: Path, image: Image.Image, seed: int, info: str) -> Path:
        data, sidecar = _encode(image, info, self.fmt)
        names = functools.partial(_numbered_names, folder, f"{seed}.{self.fmt}")
        return self._write(folder, data, names, info if sidecar else "")

    def _write(self, folder: Path, data: bytes, names: Callable[[], Iterable[str]], sidecar: str) -> Path:
        """Write `data` under the first free name of `names()` (called under the folder's lock; never replacing a
        file); `sidecar` text goes to a .txt beside it."""
        folder.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)  # the file lock lives there, even when `folders` moved this one
        temp = _write_temp(folder, data, ".tmp")
        try:
            with self._lock(folder):
                path = _claim(folder, temp, names())
        finally:
            _remove(temp)
        if sidecar:
            text_temp = _write_temp(folder, sidecar.encode("utf-8"), ".txt.tmp")
            os.replace(text_temp, path.with_suffix(".txt"))  # the name derives from our unique image name
        return path

    def _lock(self, folder: Path) -> _FolderLock:
        with self._guard:
            lock = self._folder_locks.setdefault(folder, threading.Lock())
        return _FolderLock(lock, FileLock(str(self.root / LOCK_NAME), timeout=LOCK_TIMEOUT_S))


class _FolderLock:
    """This process's lock for one folder, then the cross-process file lock."""

    def __init__(self, thread_lock: threading.Lock, file_lock: FileLock) -> None:
        self._thread_lock = thread_lock
        self._file_lock = file_lock

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            self._file_lock.acquire()
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._file_lock.release()
        finally:
            self._thread_lock.release()


def next_number(folder: Path) -> int:
    """One more than the highest `NNNNN-` number in `folder` (0 for an empty or missing folder)."""
    highest = -1
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                match = _NUMBERED.match(entry.name)
                if match:
                    highest = max(highest, int(match.group(1)))
    except FileNotFoundError:
        pass
    return highest + 1


def next_extras_number(folder: Path, basename: str = "") -> int:
    """A1111's get_next_sequence_number: one more than the highest number starting a name in `folder` (after
    `basename-` when a basename is given); 0 when there is none."""
    prefix = f"{basename}-" if basename else ""
    highest = -1
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(prefix):
                    first = os.path.splitext(entry.name[len(prefix):])[0].split("-")[0]
                    if first.isdigit():
                        highest = max(highest, int(first))
    except FileNotFoundError:
        pass
    return highest + 1


def source_file_name(name: str | None) -> str | None:
    """A source picture's name made safe as a file name (no folders, no control or reserved characters), or None."""
    if not name:
        return None
    safe = _UNSAFE_NAME.sub("_", os.path.basename(str(name).replace("\\", "/"))).strip(" .")
    return safe[:SOURCE_NAME_MAX] or None


def png_bytes(image: Image.Image, infotext: str | None) -> bytes:
    """A PNG with the infotext in its `parameters` text chunk, as A1111 writes it."""
    return png_bytes_with(image, {"parameters": infotext})


def png_bytes_with(image: Image.Image, chunks: dict[str, str | None]) -> bytes:
    """A PNG with one text chunk per key of `chunks`, in order (empty values are left out)."""
    pnginfo = PngInfo()
    for key, text in chunks.items():
        if text:
            pnginfo.add_text(key, text)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=pnginfo)
    return buffer.getvalue()


def _encode(image: Image.Image, info: str, fmt: str) -> tuple[bytes, bool]:
    """The file's bytes, and whether the infotext must go to a .txt beside it (too long for JPEG EXIF)."""
    buffer = io.BytesIO()
    sidecar = False
    if fmt == "png":
        return png_bytes(image, info), sidecar
    # A1111 writes the infotext as an EXIF UserComment with piexif, UNICODE encoding.
    comment = piexif.helper.UserComment.dump(info or "", encoding="unicode")
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    if fmt == "jpg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        if len(exif) > JPEG_EXIF_MAX_BYTES:
            exif, sidecar = b"", True
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, exif=exif)
    else:
        image.save(buffer, "WEBP", quality=JPEG_QUALITY, exif=exif)
    return buffer.getvalue(), sidecar


def _write_temp(folder: Path, data: bytes, suffix: str) -> Path:
    """Write `data` durably under a fresh hidden name in `folder` (created with O_EXCL, umask respected)."""
    while True:
        temp = folder / f".sdui-{secrets.token_hex(8)}{suffix}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove(temp)
        raise
    return temp


def _numbered_names(folder: Path, suffix: str) -> Iterable[str]:
    """`NNNNN-<suffix>` from the next free number on (call under the folder's lock)."""
    return (f"{number:05d}-{suffix}" for number in itertools.count(next_number(folder)))


def _grid_names(folder: Path, basename: str, ext: str) -> Iterable[str]:
    """A1111's grid names: `<basename>-NNNN.<ext>` from the next free number on."""
    return (f"{basename}-{number:04d}.{ext}" for number in itertools.count(next_extras_number(folder, basename)))


def _extras_names(folder: Path, name: str | None, ext: str) -> Iterable[str]:
    """A1111's extras names: `NNNNN.<ext>`; with a source name `<name>.<ext>`, then `<name>-NNNN.<ext>` (A1111
    overwrites `<name>.<ext>`; sdui takes the next number instead)."""
    if name is None:
        return (f"{number:05d}.{ext}" for number in itertools.count(next_extras_number(folder)))
    numbered = (f"{name}-{number:04d}.{ext}" for number in itertools.count(next_extras_number(folder, name)))
    return itertools.chain([f"{name}.{ext}"], numbered)


def _claim(folder: Path, temp: Path, names: Iterable[str]) -> Path:
    """Give `temp` the first free name of `names` without ever replacing an existing file."""
    for name in names:
        final = folder / name
        try:
            os.link(temp, final)
            return final
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise
            try:
                os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            os.replace(temp, final)  # replaces only the empty placeholder we just created
            return final
    raise FileExistsError(errno.EEXIST, "no free file name", str(folder))


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _message(error: OSError, folder: Path, done: int, total: int) -> str:
    if error.errno in _DISK_FULL:
        cause = "the disk is full (or the file size limit was reached)"
    elif error.errno in _NOT_WRITABLE:
        cause = "the outputs folder is not writable"
    else:
        cause = error.strerror or str(error)
    return (f"Could not save image {done + 1} of {total} to {folder}: {cause} ({type(error).__name__}: {error}). "
            "The images are still shown; free some space or choose another folder with --outputs-dir "
            "(or turn saving off with --no-save).")
