"""How close sdui's NV emulation is to the card: Philox noise vs torch.randn on an NVIDIA GPU, same seeds.

    python3 bench/rng.py --out bench/results        # needs a CUDA device (an NVIDIA card); prints the max difference

Also checks that randn_source "GPU" draws on the device and keeps drawing there for the step noise. Exit status 1
when a figure misses (emulated vs card above 1e-5).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speed_timing import FigureLog  # noqa: E402
from sdui.engine import noise, rng  # noqa: E402

CASES = ((0, (3, 4)), (1234, (1, 4, 64, 64)), (2**32 - 1, (4, 128, 128)))
TOLERANCE = 1e-5  # CUDA's float32 Box-Muller vs the emulation's float64 one: a few ulps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON lines of the figures")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() or torch.version.hip is not None:
        print("bench/rng.py needs an NVIDIA card (CUDA): nothing to compare here", flush=True)
        return 2
    device = torch.device("cuda")
    log = FigureLog(args.out, device, "rng")
    for seed, shape in CASES:
        card = torch.Generator("cuda").manual_seed(seed)
        emulated = rng.PhiloxGenerator(seed)
        for draw in (1, 2):  # the second draw checks how the offset advances
            diff = (emulated.randn(shape) - torch.randn(shape, generator=card, device="cuda").cpu()).abs().max().item()
            log.add(f"NV vs card  seed {seed} shape {shape} draw {draw}: max |diff| {diff:.3g}", figure="nv_vs_card",
                    seed=seed, shape=list(shape), draw=draw, max_abs_diff=diff, ok=diff <= TOLERANCE)
    shape = CASES[1][1][1:]
    batch = noise.batch_noise([7], shape, source="GPU", device="cuda")
    card = torch.Generator("cuda").manual_seed(7)
    same_first = torch.equal(batch.latents[0].to("cuda"), torch.randn(shape, generator=card, device="cuda"))
    log.add(f"GPU source: initial noise equals the card's generator: {same_first}", figure="gpu_source_initial",
            ok=same_first)
    return log.finish()


if __name__ == "__main__":
    raise SystemExit(main())
