"""Process memory: glibc's allocator tuned once at start, and freed heap handed back after unloading a model.

glibc returns freed memory at the top of its heap to the system (and moves its mmap threshold as chunks come
and go), so a denoising step whose activations were just freed takes them again as fresh pages: a page fault per
4 KiB. With LoRA backups held that cost 225 k faults and 5 % per SD1.5 step on a CPU, and 11 % on the fp32 step
without any (bench/lora.py, bench/README.md). A fixed mmap threshold and no automatic trim keep that memory in
the process; `release_memory` still gives it back, explicitly, when a model is unloaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: bigger blocks (whole weights, big activations) are mmapped
NO_TRIM = -1  # mallopt: -1 turns automatic trimming off


@lru_cache(maxsize=1)
def _glibc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_allocator() -> bool:
    """Keep freed heap memory for the next step instead of re-faulting it (glibc only); True when applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NO_TRIM))


def release_memory(device: torch.device | None = None) -> None:
    """Collect garbage and hand freed heap back to the OS (glibc keeps it otherwise); empty the CUDA cache."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
