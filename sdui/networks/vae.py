"""VAE files: A1111's LDM-layout .safetensors/.pt/.ckpt and diffusers folders, built like a checkpoint's own VAE.

`read_vae` loads one for a given model; `check_latent_space` refuses a VAE made for another model family; `vae_beside`
is A1111's "Automatic" rule (`<checkpoint>.vae.safetensors` next to the checkpoint).
"""

from __future__ import annotations

from pathlib import Path


def read_vae(path: Path, like):
    """An AutoencoderKL with `like`'s config and the weights at `path` (file or diffusers folder), on `like`'s
    device and dtype; ModelError subclasses name the file."""
    raise NotImplementedError


def check_latent_space(vae, own, name: str) -> None:
    """Raise WrongFamily when `vae` does not speak the latent space of `own` (the checkpoint VAE)."""
    raise NotImplementedError


def vae_beside(checkpoint: Path) -> Path | None:
    """`<checkpoint stem>.vae.safetensors` / `.vae.pt` / `.vae.ckpt` next to a single-file checkpoint, if present."""
    raise NotImplementedError
