"""Live previews: latents → small RGB image by A1111's "Approx cheap" linear map, no VAE call."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from PIL import Image

# Rows: the 4 latent channels; columns: their contribution to R, G, B (A1111's cheap_approximation).
SD_LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
SDXL_LATENT_RGB = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)
# Previews copied to the host but not yet finished; past this the oldest is dropped (a newer one will come).
MAX_IN_FLIGHT = 4


class Completion(Protocol):
    """Whether a device → host copy has landed; torch.cuda.Event has exactly these two methods."""

    def query(self) -> bool: ...

    def synchronize(self) -> None: ...


class Done:
    """The completion of a copy that finished before it was handed back (CPU, MPS)."""

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass


ToHost = Callable[[torch.Tensor], tuple[torch.Tensor, Completion]]


def copy_to_host(rgb: torch.Tensor) -> tuple[torch.Tensor, Completion]:
    """Start copying a device tensor to host memory; the host tensor is readable once the completion says so.

    On CUDA: a pinned buffer, a non-blocking copy and an event behind it, so the host does not wait for the GPU.
    Elsewhere the copy is done at once (pin_memory raises on a CPU-only torch).
    """
    if rgb.device.type != "cuda":
        return rgb.cpu(), Done()
    host = torch.empty(rgb.shape, dtype=rgb.dtype, pin_memory=True)
    host.copy_(rgb, non_blocking=True)
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(rgb.device))
    return host, event


def latent_rgb(latent: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    """One image's latent (4, h, w) or (1, 4, h, w) → h×w×3 uint8 on the latent's own device; never syncs."""
    if latent.dim() == 4:
        latent = latent[0]
    if latent.shape[0] != 4:
        raise ValueError(f"latent must have 4 channels for a preview; got shape {tuple(latent.shape)}")
    rgb = torch.einsum("lhw,lr->hwr", latent.detach().float(), coefs)
    # .float() again: under the fast path's autocast the einsum itself comes back in bf16.
    rgb = ((rgb.float() + 1.0) / 2.0).clamp(0.0, 1.0).nan_to_num(0.0)
    return (rgb * 255).round().to(torch.uint8)


def latent_coefs(sdxl: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 4×3 table for SD or SDXL latents on `device`, float32."""
    table = torch.tensor(SDXL_LATENT_RGB if sdxl else SD_LATENT_RGB, dtype=torch.float32)
    if torch.device(device).type == "cuda":
        table = table.pin_memory()  # from pageable memory even a non-blocking copy may wait for the GPU
    return table.to(device, non_blocking=True)


def latent_preview(latent: torch.Tensor, sdxl: bool = False) -> Image.Image:
    """One image's latent (4, h, w) or (1, 4, h, w) → an h×w RGB image (1/8 of the final size); waits for it."""
    rgb = latent_rgb(latent, latent_coefs(sdxl, latent.device))
    return Image.fromarray(rgb.cpu().numpy(), "RGB")


class PreviewTaker:
    """Previews taken inside the denoising loop without the host waiting for the device.

    start() queues the map and the copy to the host; poll() hands out the newest preview that has landed,
    each once; finish() waits for the last one (after the loop, where waiting is fine).
    """

    def __init__(self, sdxl: bool = False, to_host: ToHost = copy_to_host) -> None:
        self.sdxl = sdxl
        self.to_host = to_host
        self._coefs: dict[torch.device, torch.Tensor] = {}
        # Oldest first: (step, host tensor, completion). Copies on one stream land in the order started.
        self._in_flight: deque[tuple[int, torch.Tensor, Completion]] = deque(maxlen=MAX_IN_FLIGHT)

    def start(self, latent: torch.Tensor, step: int) -> None:
        """Queue a preview of one image's latent (4, h, w), taken at `step`; returns without waiting."""
        if latent.device not in self._coefs:
            self._coefs[latent.device] = latent_coefs(self.sdxl, latent.device)
        host, completion = self.to_host(latent_rgb(latent, self._coefs[latent.device]))
        self._in_flight.append((step, host, completion))

    def poll(self) -> tuple[int, Image.Image] | None:
        """(step, image) of the newest preview that has landed, or None; older ones still in flight are dropped."""
        for index in range(len(self._in_flight) - 1, -1, -1):
            step, host, completion = self._in_flight[index]
            if completion.query():
                for _ in range(index + 1):
                    self._in_flight.popleft()
                return step, to_image(host)
        return None

    def finish(self) -> tuple[int, Image.Image] | None:
        """(step, image) of the newest preview not handed out yet, waiting for its copy; None if there is none."""
        if not self._in_flight:
            return None
        step, host, completion = self._in_flight[-1]
        completion.synchronize()
        self._in_flight.clear()
        return step, to_image(host)


def to_image(host: torch.Tensor) -> Image.Image:
    """A landed h×w×3 uint8 host tensor → an RGB image of its own."""
    # np.array copies: the pinned buffer goes back to torch's host cache once this tensor is dropped.
    return Image.fromarray(np.array(host.numpy()), "RGB")
