"""Tiny ESRGAN upscaler files for tests, in RealESRGAN_x4plus's key layout, with deterministic random weights.

Real files have gc = 32 (spandrel assumes it); the tiny ones shrink nf (filters) and nb (RRDB blocks) instead.
A 2x file is RealESRGAN_x2plus's layout: the same 4x network behind a 2x pixel-unshuffle (12 input channels),
which spandrel reports as scale 2.
"""

from __future__ import annotations

from pathlib import Path

import torch

GROWTH_CHANNELS = 32  # ESRGAN's gc, fixed in spandrel
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}  # scale -> pixel-unshuffle factor in front of the 4x network


def tiny_esrgan_state_dict(scale: int = 4, nf: int = 8, nb: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a tiny RRDBNet (new-arch keys: conv_first, body.N.rdbK.convM, conv_body, conv_up1/2, ...)."""
    if scale not in _UNSHUFFLE:
        raise ValueError(f"scale must be 1, 2 or 4, got {scale}")
    generator = torch.Generator().manual_seed(seed)
    in_channels = 3 * _UNSHUFFLE[scale] ** 2
    gc = GROWTH_CHANNELS
    shapes: dict[str, tuple[int, int]] = {"conv_first": (nf, in_channels)}
    for block in range(nb):
        for rdb in (1, 2, 3):
            for conv in (1, 2, 3, 4):
                shapes[f"body.{block}.rdb{rdb}.conv{conv}"] = (gc, nf + (conv - 1) * gc)
            shapes[f"body.{block}.rdb{rdb}.conv5"] = (nf, nf + 4 * gc)
    shapes.update({"conv_body": (nf, nf), "conv_up1": (nf, nf), "conv_up2": (nf, nf), "conv_hr": (nf, nf),
                   "conv_last": (3, nf)})
    state = {}
    for name, (out_ch, in_ch) in shapes.items():
        # Small weights in the residual body keep the network local (its output depends on nearby pixels
        # mostly), as trained upscalers are: tiled and untiled runs then agree within a few levels.
        std = (0.2 if name.startswith("body.") else 1.0) / (in_ch * 9) ** 0.5
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * std
        state[f"{name}.bias"] = torch.randn(out_ch, generator=generator) * 0.01
    state["conv_last.bias"] = torch.full((3,), 0.5)  # outputs around mid-grey, not clamped to black or white
    return state


def write_tiny_esrgan(path: Path, scale: int = 4, nf: int = 8, nb: int = 1, *, params_ema: bool = False,
                      seed: int = 0) -> Path:
    """Write a tiny ESRGAN as .pth / .pt (optionally wrapped in `params_ema`, as Real-ESRGAN ships) or .safetensors."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = tiny_esrgan_state_dict(scale, nf, nb, seed)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"params_ema": state} if params_ema else state, path)
    return path
