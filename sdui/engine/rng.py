"""Random-number generators: NVIDIA's Philox emulated on the CPU, and the per-image generator diffusers draws from.

- `philox4x32`: the Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers: as easy as
  1, 2, 3", SC'11; Random123), vectorised with numpy.
- `PhiloxGenerator`: A1111's "NV" source, the numbers `torch.randn(..., device="cuda")` gives after
  `manual_seed(seed)` on an NVIDIA card, drawn on any machine.
- `ImageGenerator` and `route_randn_tensor`: the one hook into diffusers. Pipelines and schedulers draw their noise
  (img2img/inpaint initial noise, the VAE's latent sample, ancestral/SDE step noise) through
  `diffusers.utils.torch_utils.randn_tensor`, which each module imports by name and which only knows
  torch.Generators. `route_randn_tensor` replaces that name, in the loaded diffusers modules, with a dispatch that
  draws from ImageGenerators and hands every other call, unchanged, to diffusers' own function. It runs only before
  a call that is handed ImageGenerators, never at import, and a module it replaced stays replaced (the dispatch is
  stateless, so other threads' calls are unaffected). Draws in `diffusers.schedulers` modules are step noise; draws
  anywhere else belong to the pipeline (initial noise, VAE sample).

Which generator each image gets (seeds, sources, ENSD) is decided in `noise.py`.
"""

from __future__ import annotations

import functools
import math
import sys
import threading

import numpy as np
import torch

_MASK32 = np.uint64(0xFFFFFFFF)
PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))  # the round multipliers
PHILOX_W = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))  # the Weyl key increments (golden ratio, sqrt(3) - 1)
PHILOX_ROUNDS = 10

# Box-Muller as curand (and A1111's emulation) computes it: 2**-32 and 2*pi*2**-32 rounded to float32, and half of
# each added, so a 32-bit word maps into the open interval (0, 1) (resp. (0, 2*pi)) and log never sees 0.
_TWO_POW32_INV = float(np.float32(2.3283064e-10))
_TWO_POW32_INV_2PI = float(np.float32(2.3283064e-10 * 6.2831855))

SEED_LIMIT = 2**64  # the 64-bit seed becomes the two key words


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = PHILOX_ROUNDS) -> np.ndarray:
    """Philox4x32-`rounds` of each counter column: `counter` (4, N) and `key` (2,) or (2, N) 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(counter[i], dtype=np.uint64) for i in range(4))
    k0, k1 = (np.asarray(key[i], dtype=np.uint64) for i in range(2))
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + PHILOX_W[0]) & _MASK32, (k1 + PHILOX_W[1]) & _MASK32
        p0, p1 = c0 * PHILOX_M[0], c2 * PHILOX_M[1]  # exact: two 32-bit factors fit in 64 bits
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK32, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK32
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The first normal of Box-Muller on two 32-bit words (radius from `x`, angle from `y`), as float32."""
    u = x.astype(np.float64) * _TWO_POW32_INV + _TWO_POW32_INV / 2
    v = y.astype(np.float64) * _TWO_POW32_INV_2PI + _TWO_POW32_INV_2PI / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """torch.randn on an NVIDIA card, emulated: a seed and an offset that counts the draws, as A1111's NV source.

    Element i of a draw is Box-Muller on the first two words of Philox4x32-10 at counter (offset, 0, i, 0) with the
    key (seed & 0xFFFFFFFF, seed >> 32); the offset then grows by one per draw, whatever its size.
    """

    def __init__(self, seed: int) -> None:
        seed = int(seed)
        if not 0 <= seed < SEED_LIMIT:
            raise ValueError(f"seed must be between 0 and {SEED_LIMIT - 1}; got {seed}")
        self.seed = seed
        self.offset = 0

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The next draw: standard normal float32 numbers of `shape`, on the CPU."""
        n = math.prod(shape)
        if n >= 2**32:
            raise ValueError(f"a draw holds at most 2**32 - 1 numbers; got shape {tuple(shape)}")
        counter = np.zeros((4, n), dtype=np.uint64)
        counter[0] = self.offset
        counter[2] = np.arange(n, dtype=np.uint64)
        key = np.array([self.seed & 0xFFFFFFFF, self.seed >> 32], dtype=np.uint64)
        self.offset += 1
        words = philox4x32(counter, key)
        return torch.from_numpy(box_muller(words[0], words[1]).reshape(tuple(shape)))


Stream = torch.Generator | PhiloxGenerator  # one sequence of draws


def draw(stream: Stream, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The next draw of one stream: on the torch.Generator's own device, or (Philox) float32 on the CPU, cast."""
    if isinstance(stream, PhiloxGenerator):
        return stream.randn(shape).to(dtype)
    return torch.randn(shape, generator=stream, device=stream.device, dtype=dtype)


class ImageGenerator:
    """One image's generator in a diffusers call, where a torch.Generator alone cannot give the numbers.

    The pipeline's own draws (the VAE's latent sample, the img2img/inpaint initial noise) come from `initial`, the
    step noise a scheduler draws from `step`: the same stream continued, or a fresh one (A1111's seed + ENSD).
    diffusers can draw from it only after `route_randn_tensor`; without it its randn_tensor fails loudly.
    """

    def __init__(self, initial: Stream, step: Stream | None = None) -> None:
        self.initial = initial
        self.step = initial if step is None else step

    def randn(self, shape: tuple[int, ...], for_step: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return draw(self.step if for_step else self.initial, shape, dtype)


_route_lock = threading.Lock()
_dispatches: dict[tuple, object] = {}  # (diffusers randn_tensor, for_step) -> its dispatching randn_tensor
# diffusers' own definition stays as it is: modules imported later take the original and are routed next time.
_NOT_ROUTED = ("diffusers.utils.torch_utils", "diffusers.utils")


def route_randn_tensor(generators: list) -> None:
    """Before a diffusers call handed `generators`: let the loaded diffusers modules draw from ImageGenerators.

    Nothing happens when all of them are torch.Generators. Safe to call before every call and from any thread.
    """
    if not any(isinstance(g, ImageGenerator) for g in generators):
        return
    from diffusers.utils import torch_utils

    original = torch_utils.randn_tensor
    with _route_lock:
        for name, module in list(sys.modules.items()):
            if not name.startswith("diffusers.") or name in _NOT_ROUTED or module is None:
                continue
            if vars(module).get("randn_tensor") is original:
                module.randn_tensor = _dispatch(original, for_step=name.startswith("diffusers.schedulers."))


def _dispatch(original, for_step: bool):
    if (original, for_step) not in _dispatches:
        @functools.wraps(original)
        def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None, **kwargs):
            generators = generator if isinstance(generator, list) else [generator]
            if not any(isinstance(g, ImageGenerator) for g in generators):
                return original(shape, generator=generator, device=device, dtype=dtype, layout=layout, **kwargs)
            return _draw(tuple(shape), generators, for_step, device, dtype)

        _dispatches[original, for_step] = randn_tensor
    return _dispatches[original, for_step]


def _draw(shape: tuple[int, ...], generators: list, for_step: bool, device, dtype) -> torch.Tensor:
    """randn_tensor's rule on ImageGenerators: one generator draws the whole shape, a list one row per generator."""
    if not all(isinstance(g, ImageGenerator) for g in generators):
        raise TypeError("a generator list mixes ImageGenerators with other generators")
    dtype = dtype or torch.float32
    if len(generators) == 1:
        noise = generators[0].randn(shape, for_step, dtype)
    else:
        noise = torch.cat([generators[i].randn((1, *shape[1:]), for_step, dtype) for i in range(shape[0])])
    return noise.to(device or torch.device("cpu"))
