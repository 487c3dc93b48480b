"""Reading checkpoint files safely: safetensors header checks and allow-listed pickle loading.

Nothing here builds a model; `probe.py` decides what a file is and `load.py` turns it into a pipeline.
Pickles are only ever read with `weights_only=True`.
"""

from __future__ import annotations

import contextlib
import json
import math
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch

from sdui.models.errors import BrokenModel, UnrecognizedModel, UnsafeModel

SAFETENSORS_SUFFIXES = {".safetensors"}
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin"}
MAX_HEADER_BYTES = 100 * 2**20
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
LIGHTNING_GLOBAL = "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"
_BENIGN_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "_codecs.encode",
                   "numpy.core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray")


class ModelCheckpoint:
    """Stand-in for Lightning's callback class that old .ckpt files pickle (as a dict key, never run)."""


Shapes = dict[str, tuple[int, ...]]


def refuse_oversized(path: Path, limit: int, what: str, hint: str) -> None:
    """UnrecognizedModel before any read when `path` (a file, or a folder's files) is bigger than any `what` is."""
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) if path.is_dir() else path.stat().st_size
    if size > limit:
        raise UnrecognizedModel(f"{path}: {size / 2**20:,.0f} MiB is too big for {what} (at most "
                                f"{limit / 2**20:,.0f} MiB): {hint}", path)


def read_safetensors_header(path: Path) -> tuple[Shapes, dict[str, str]]:
    """Validate a .safetensors header against the file size; return tensor shapes and metadata."""
    shapes, _, metadata = read_safetensors_entries(path)
    return shapes, metadata


def read_safetensors_entries(path: Path) -> tuple[Shapes, dict[str, str], dict[str, str]]:
    """Validate a .safetensors header against the file size; return shapes, dtype names and metadata."""
    size = path.stat().st_size
    if size < 8:
        raise BrokenModel(f"{path}: {size} bytes is too short for a safetensors file (empty or truncated)", path)
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise BrokenModel(f"{path}: not a valid safetensors file: header claims {header_len} bytes but the "
                              f"file has {size} (truncated download or not safetensors)", path)
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise BrokenModel(f"{path}: safetensors header is not valid JSON ({e})", path) from e
    metadata = header.pop("__metadata__", None) or {}
    data_len = size - 8 - header_len
    shapes: Shapes = {}
    dtypes: dict[str, str] = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
        except (TypeError, KeyError, ValueError) as e:
            raise BrokenModel(f"{path}: safetensors entry {name!r} is malformed ({entry!r})", path) from e
        if dtype not in DTYPE_BYTES:
            raise BrokenModel(f"{path}: tensor {name!r} has unknown dtype {dtype!r}", path)
        if not (0 <= begin <= end) or end > data_len:
            raise BrokenModel(f"{path}: tensor {name!r} claims bytes {begin}..{end} but the file holds only "
                              f"{data_len} data bytes (truncated download or lying header)", path)
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise BrokenModel(f"{path}: tensor {name!r} of shape {list(shape)} {dtype} needs "
                              f"{math.prod(shape) * DTYPE_BYTES[dtype]} bytes but the header gives {end - begin}",
                              path)
        shapes[name] = shape
        dtypes[name] = dtype
    return shapes, dtypes, {str(k): str(v) for k, v in metadata.items()}


@contextlib.contextmanager
def allowed_globals(unsafe: list[str] | None = None) -> Iterator[None]:
    """Allow the Lightning stub while unpickling when the file names it; everything else stays refused."""
    if unsafe and LIGHTNING_GLOBAL in unsafe:
        with torch.serialization.safe_globals([(ModelCheckpoint, LIGHTNING_GLOBAL)]):
            yield
    else:
        yield


def unsafe_globals(path: Path) -> list[str]:
    """Globals a torch zip checkpoint references outside the allow-list (static scan, nothing runs)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (ValueError, RuntimeError, OSError, zipfile.BadZipFile, pickle.UnpicklingError):
        return []  # not a (readable) zip checkpoint: torch.load(weights_only=True) below still refuses any code


def check_pickle_safety(path: Path) -> list[str]:
    """Raise UnsafeModel when the pickle references code; return the unsafe names that are allow-listed stubs."""
    unsafe = unsafe_globals(path)
    refused = [g for g in unsafe if g != LIGHTNING_GLOBAL]
    if refused:
        raise UnsafeModel(f"{path}: refusing to load a pickle that references {', '.join(refused)} (it could run "
                          "code). If you trust the file, convert it to .safetensors with a trusted tool and load "
                          "that instead.", path)
    return unsafe


def load_pickle(path: Path, mmap: bool = True, unsafe: list[str] | None = None) -> Any:
    """What a pickle holds, read by torch.load with weights_only=True (Lightning stub allow-listed).

    UnsafeModel when it references code (never unpickled), BrokenModel when it is empty, corrupt or truncated.
    With `mmap` the tensors stay in the file until read; without, they are read into plain memory. `unsafe`:
    the result of `check_pickle_safety` when the caller already ran it.
    """
    if path.stat().st_size == 0:
        raise BrokenModel(f"{path}: the file is empty", path)
    if unsafe is None:
        unsafe = check_pickle_safety(path)
    try:
        with allowed_globals(unsafe):
            try:
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        code = [g for g in pickle_globals(path) if not g.startswith(_BENIGN_GLOBALS)]
        if code:
            raise UnsafeModel(f"{path}: refusing to load a pickle that references {', '.join(code)} (it could run "
                              "code). Convert it to .safetensors with a trusted tool and load that instead.",
                              path) from e
        raise BrokenModel(f"{path}: not a readable checkpoint ({_first_line(e)})", path) from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, struct.error,
            IndexError, KeyError, TypeError, AttributeError) as e:  # torch's unpickler on bytes that are no pickle
        raise BrokenModel(f"{path}: corrupt or truncated checkpoint ({_first_line(e)})", path) from e


def load_pickle_state_dict(path: Path) -> dict[str, Any]:
    """A checkpoint pickle's state dict, read safely by `load_pickle`; unwraps `state_dict`."""
    obj = load_pickle(path)
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UnrecognizedModel(f"{path}: the pickle holds no tensors, so it is not a model checkpoint", path)
    return obj


def read_shapes(path: Path) -> tuple[Shapes, dict[str, str]]:
    """Tensor shapes and metadata of a single-file checkpoint, read safely."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return read_safetensors_header(path)
    if suffix in PICKLE_SUFFIXES:
        sd = load_pickle_state_dict(path)
        return {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)}, {}
    raise UnrecognizedModel(f"{path}: unknown file type {suffix!r} (expected .safetensors, .ckpt, .pt or .bin)", path)


def pickle_globals(path: Path, limit: int = 64 * 2**20) -> list[str]:
    """Every global a plain (non-zip) pickle file names, found by disassembly; nothing is executed."""
    import io
    import pickletools

    with path.open("rb") as f:
        stream = io.BytesIO(f.read(limit))
    found: list[str] = []
    strings: list[str] = []
    try:
        while stream.tell() < len(stream.getbuffer()):
            for op, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
    except (ValueError, EOFError, pickle.UnpicklingError, struct.error):
        pass  # raw tensor bytes follow the pickles in torch's legacy format
    return sorted(set(found))


def pickle_mentions(path: Path, prefix: str) -> bool:
    """Whether a torch zip pickle contains a string starting with `prefix`; disassembled, never executed."""
    import pickletools

    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                return False
            data = z.read(name)
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str) and arg.startswith(prefix):
                return True
    except (zipfile.BadZipFile, OSError, ValueError, pickle.UnpicklingError, EOFError):
        return False
    return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
