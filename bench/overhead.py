"""Engine overhead: sdui's txt2img vs a direct diffusers pipeline call on the same model, seed and steps.

    .venv/bin/python bench/overhead.py                       # tiny model, 256x256, 20 steps, 7 runs each
    .venv/bin/python bench/overhead.py --runs 9 --threads 1

Both sides use the same loaded pipeline and an "Euler a" scheduler built from the same config; runs
alternate (engine, direct, engine, ...) after one warm-up each, and the medians are compared. Exits 1
when the engine is more than --limit (default 5 %) slower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per side (>= 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--limit", type=float, default=0.05, help="largest accepted overhead (0.05 = 5 %%)")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5")

    import numpy as np
    import torch

    from sdui.engine.generate import Engine
    from sdui.engine.samplers import build_scheduler
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager, Task
    from sdui.models.tiny import ensure_demo_model
    from sdui.params import GenerationParams
    from sdui.settings import Settings
    from speed_timing import time_interleaved

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="sdui-bench-overhead-"))
    ensure_demo_model(work / "models")
    # The engine's own overhead, not the fast path's bf16 (bench/speed.py measures that): both sides plain fp32.
    settings = Settings.for_data_dir(work, device="cpu", fast_path=False)
    manager = ModelManager(Catalog(work / "models", work / "cache"), settings)
    engine = Engine(manager)
    params = GenerationParams(prompt="a photo of an astronaut riding a horse", negative_prompt="blurry",
                              sampler="Euler a", steps=args.steps, cfg_scale=7.0, width=args.size,
                              height=args.size, seed=1234)
    pipe = manager.get(None, Task.TXT2IMG)
    base_config = manager.base_scheduler_config(None)

    def run_engine():
        return engine.run(params).images[0]

    def run_direct():
        pipe.scheduler = build_scheduler(base_config, "Euler a")
        pipe.set_progress_bar_config(disable=True)
        return pipe(params.prompt, negative_prompt=params.negative_prompt, num_inference_steps=args.steps,
                    guidance_scale=params.cfg_scale, width=args.size, height=args.size,
                    generator=torch.Generator("cpu").manual_seed(params.seed)).images[0]

    first_engine, first_direct = run_engine(), run_direct()  # warm-up
    same = np.array_equal(np.asarray(first_engine), np.asarray(first_direct))
    times, cpu = time_interleaved({"engine": run_engine, "direct": run_direct}, torch.device("cpu"), 0, args.runs)
    engine_s, direct_s = statistics.median(times["engine"]), statistics.median(times["direct"])
    ratio = engine_s / direct_s
    # CPU time is less disturbed than wall time when other processes share the cores.
    cpu_ratio = statistics.median(cpu["engine"]) / statistics.median(cpu["direct"])
    print(f"tiny model {args.size}x{args.size}, {args.steps} steps, Euler a, {args.runs} runs each, "
          f"torch threads {torch.get_num_threads()}")
    print(f"engine  median {engine_s:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times['engine'])})")
    print(f"direct  median {direct_s:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times['direct'])})")
    print(f"identical pixels: {same}")
    print(f"ratio engine/direct = {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f} %, limit {100 * args.limit:.0f} %)")
    print(f"CPU-time ratio engine/direct = {cpu_ratio:.3f}")
    return 0 if ratio <= 1 + args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
