"""Choosing the torch device and dtypes once, from the settings (CUDA fp16/bf16, MPS fp16, CPU fp32)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdui.settings import Settings


@dataclass(frozen=True)
class DevicePlan:
    """Where models run and in which precision; `vae_dtype` differs when --no-half-vae is set."""

    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype
    offload: str | None  # None, "model" (--medvram) or "sequential" (--lowvram); CUDA only


def choose_device(settings: Settings) -> DevicePlan:
    """Pick the device (settings.device or the best available) and matching dtypes."""
    if settings.device:
        try:
            device = torch.device(settings.device)
        except RuntimeError as e:
            raise ValueError(f"--device must be cpu, cuda, cuda:N or mps, got {settings.device!r}") from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {settings.device!r} asked for CUDA but torch sees no CUDA device")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"--device {settings.device!r} asked for MPS but it is not available")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cpu" or settings.no_half:
        dtype = torch.float32
    elif device.type == "cuda" and settings.bf16:
        dtype = torch.bfloat16
    else:
        dtype = torch.float16
    vae_dtype = torch.float32 if settings.no_half_vae else dtype
    offload = None
    if device.type == "cuda":
        offload = "sequential" if settings.lowvram else "model" if settings.medvram else None
    return DevicePlan(device=device, dtype=dtype, vae_dtype=vae_dtype, offload=offload)
