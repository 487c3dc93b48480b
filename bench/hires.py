"""Hires fix benchmark: sdui's whole hires job vs the same two passes called by hand on plain diffusers pipelines.

    python bench/hires.py --tiny                                   # tiny model 64² -> 128², seconds, any CPU
    python bench/hires.py --threads 2 --out bench/results          # SD1.5-shaped 512² -> 1024², 2 + 2 steps, CPU
    python bench/hires.py --device cuda --shape sd15 sdxl --steps 20 --hires-steps 10 --out bench/results

`overhead` (the target figure): `Engine.run` with `enable_hr` (latent upscaler "Latent") against, on the same
loaded pipeline, StableDiffusionPipeline(output_type="latent") from the engine's own initial noise, the latents
upscaled with `torch.nn.functional.interpolate`, then StableDiffusionImg2ImgPipeline with the same
num_inference_steps / strength and per-image generators; same steps, sampler and seeds. Both plain (no fast path:
fp32 on CPU, --dtype on CUDA). A first call of each gives the pixel check (and warms up); then the two alternate
for --runs rounds and the medians are compared: ratio = engine / by hand, target <= 1.05 (--limit), pixels
identical or at most 1 level apart. Exits 1 when either is missed.
`engine` (default on CUDA): seconds per image of the same job through an Engine as production runs it (fast path).
Random weights of the real shapes (bench/speed_models.py), saved once as a diffusers folder for the Engine to load.
One JSON line per figure into --out (hires-<device>-<date>.jsonl).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from speed_timing import ROOT, FigureLog, time_interleaved

FIGURES = ("overhead", "engine")
OVERHEAD_LIMIT = 0.05  # engine <= 1.05 x the two passes by hand
PIXEL_LIMIT = 1  # largest accepted difference in 8-bit levels
PROMPT, NEGATIVE = "a photo of an astronaut riding a horse on the moon", "blurry"
SIDES = {"tiny": 64, "sd15": 512, "sdxl": 1024}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", nargs="+", choices=["sd15", "sdxl", "tiny"], default=["sd15"])
    p.add_argument("--tiny", action="store_true", help="the tiny model at 64² -> 128² (the smoke test)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None,
                   help="weights (default: fp32 on CPU, fp16 on CUDA)")
    p.add_argument("--figures", nargs="+", choices=FIGURES, default=None,
                   help="default: overhead on CPU; overhead and engine on CUDA (overhead for sd15 only)")
    p.add_argument("--size", type=int, default=None, help="first-pass side (default 512, SDXL 1024, tiny 64)")
    p.add_argument("--scale", type=float, default=None, help="hr_scale (default 2; SDXL 1.5: 1024² -> 1536²)")
    p.add_argument("--steps", type=int, default=2, help="first-pass steps")
    p.add_argument("--hires-steps", type=int, default=2, help="second-pass steps (hr_second_pass_steps)")
    p.add_argument("--denoising", type=float, default=0.5, help="denoising_strength of the second pass")
    p.add_argument("--sampler", default="Euler a")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="timed rounds after the first (pixel-check) call of each")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="leave glibc's malloc as it is (app.py tunes it at start: sdui/models/memory.py)")
    p.add_argument("--limit", type=float, default=OVERHEAD_LIMIT, help="largest accepted overhead (0.05 = 5 %%)")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the saved random models, kept and reused (default: a temp dir)")
    p.add_argument("--out", type=Path, default=None, help="folder for the JSON lines file")
    a = p.parse_args(argv)
    if a.tiny:
        a.shape = ["tiny"]
    if min(a.runs, a.steps, a.hires_steps, a.batch) < 1:
        p.error(f"--runs, --steps, --hires-steps and --batch must be >= 1; got {a.runs}, {a.steps}, "
                f"{a.hires_steps}, {a.batch}")
    return a


def save_model(shape: str, models: Path, dtype: torch.dtype) -> str:
    """A random-weight model of `shape` as a diffusers folder under `models` (once); returns its checkpoint name."""
    if shape == "tiny":
        from sdui.models.tiny import DEMO_NAME, ensure_demo_model

        ensure_demo_model(models)
        return DEMO_NAME
    import speed_models as sm

    name = f"{shape}-random-{str(dtype).removeprefix('torch.')}"
    target = models / name
    if not (target / "model_index.json").is_file():
        pipe = sm.build_pipeline(shape, "cpu", dtype)
        pipe.save_pretrained(target.with_name(name + ".partial"), safe_serialization=True)
        target.with_name(name + ".partial").rename(target)
        del pipe
        gc.collect()
    return name


def make_engine(work: Path, device: torch.device, dtype: torch.dtype, fast_path: bool):
    """An Engine (and its ModelManager) over the models in `work/models`, as app.py builds them."""
    from sdui.engine.generate import Engine
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.settings import Settings

    settings = Settings.for_data_dir(work, device=str(device), fast_path=fast_path, no_save=True,
                                     no_half=dtype == torch.float32 and device.type == "cuda",
                                     bf16=dtype == torch.bfloat16)
    manager = ModelManager(Catalog(settings.ckpt_dir, work / "cache", exclude=settings.network_dirs), settings)
    return Engine(manager), manager


def job_params(args, shape: str, checkpoint: str):
    from sdui.params import GenerationParams

    size = args.size or SIDES[shape]
    scale = args.scale or (1.5 if shape == "sdxl" else 2.0)
    return GenerationParams(prompt=PROMPT, negative_prompt=NEGATIVE, checkpoint=checkpoint, sampler=args.sampler,
                            steps=args.steps, cfg_scale=7.0, width=size, height=size, seed=1234,
                            batch_size=args.batch, enable_hr=True, hr_scale=scale, hr_upscaler="Latent",
                            hr_second_pass_steps=args.hires_steps, denoising_strength=args.denoising)


class EngineJob:
    """The whole hires job through `Engine.run`, with a progress callback as the UI passes (previews included)."""

    def __init__(self, engine, params):
        self.engine, self.params, self.last_step = engine, params, 0

    def __call__(self):
        def progress(p):
            self.last_step = p.step
        return self.engine.run(self.params, progress=progress).images


class ByHand:
    """The same two passes on plain diffusers pipelines sharing the loaded pipeline's modules."""

    def __init__(self, txt2img, params, scheduler_config: dict):
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

        from sdui.engine.hires import second_pass_steps

        self.txt2img, self.params, self.scheduler_config = txt2img, params, scheduler_config
        sdxl = getattr(txt2img, "text_encoder_2", None) is not None
        extra = {} if sdxl else {"requires_safety_checker": False}
        cls = StableDiffusionXLImg2ImgPipeline if sdxl else StableDiffusionImg2ImgPipeline
        self.img2img = cls(**txt2img.components, **extra)
        self.img2img.set_progress_bar_config(disable=True)
        txt2img.set_progress_bar_config(disable=True)
        self.steps, self.strength = second_pass_steps(params)
        self.hires_steps_run = 0

    def scheduler(self):
        from sdui.engine.samplers import build_scheduler

        return build_scheduler(self.scheduler_config, self.params.sampler)

    def __call__(self):
        params, pipe = self.params, self.txt2img
        seeds = [params.seed + i for i in range(params.batch_size)]
        side = pipe.vae_scale_factor
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        shape = (pipe.unet.config.in_channels, params.height // side, params.width // side)
        noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
        prompts = {"prompt": [params.prompt] * len(seeds), "negative_prompt": [params.negative_prompt] * len(seeds),
                   "guidance_scale": params.cfg_scale}
        size = params.hires_size()
        with torch.inference_mode():
            pipe.scheduler = self.scheduler()
            latents = pipe(**prompts, num_inference_steps=params.steps, width=params.width, height=params.height,
                           latents=noise.to(pipe.unet.dtype), generator=generators, output_type="latent").images
            upscaled = torch.nn.functional.interpolate(latents.float(), size=(size.height // side, size.width // side),
                                                       mode="bilinear", antialias=False).to(latents.dtype)
            self.img2img.scheduler = self.scheduler()
            images = self.img2img(**prompts, image=upscaled, strength=self.strength,
                                  num_inference_steps=self.steps, output_type="pil",
                                  generator=[torch.Generator("cpu").manual_seed(s) for s in seeds]).images
        self.hires_steps_run = self.img2img.num_timesteps
        return images


def pixel_difference(a: list, b: list) -> int:
    import numpy as np

    if [i.size for i in a] != [i.size for i in b]:
        raise RuntimeError(f"the engine made {[i.size for i in a]}, by hand {[i.size for i in b]}")
    return max(int(np.abs(np.asarray(x, dtype=np.int16) - np.asarray(y, dtype=np.int16)).max()) for x, y in zip(a, b))


def bench_overhead(args, shape: str, work: Path, checkpoint: str, device, dtype, log: FigureLog) -> None:
    """Engine.run vs the two passes by hand, plain pipelines, the same loaded weights; medians of alternating runs."""
    from sdui.models.manager import Task

    engine, manager = make_engine(work, device, dtype, fast_path=False)
    params = job_params(args, shape, checkpoint)
    job = EngineJob(engine, params)
    by_hand = ByHand(manager.get(checkpoint, Task.TXT2IMG), params, manager.base_scheduler_config(checkpoint))
    diff = pixel_difference(job(), by_hand())  # also the warm-up of each
    times, cpu = time_interleaved({"engine": job, "by_hand": by_hand}, device, 0, args.runs)
    engine_s, hand_s = statistics.median(times["engine"]), statistics.median(times["by_hand"])
    ratio, cpu_ratio = engine_s / hand_s, statistics.median(cpu["engine"]) / statistics.median(cpu["by_hand"])
    size = params.hires_size()
    ok = ratio <= 1 + args.limit and diff <= PIXEL_LIMIT
    log.add(f"{shape} {params.width}² -> {size.width}², {params.steps} + {by_hand.hires_steps_run} steps "
            f"({params.sampler}, img2img {by_hand.steps} steps at strength {by_hand.strength:.4f}), batch "
            f"{params.batch_size}, {str(dtype)[6:]}, {args.runs} runs each, torch threads {torch.get_num_threads()}\n"
            f"engine   median {engine_s:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times['engine'])})\n"
            f"by hand  median {hand_s:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times['by_hand'])})\n"
            f"pixels: {'identical' if diff == 0 else f'max abs diff {diff}'}\n"
            f"ratio engine/by hand = {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f} %, limit "
            f"{100 * args.limit:.0f} %); CPU-time ratio {cpu_ratio:.3f}; "
            f"target: {'ok' if ok else 'MISSED'}",
            figure="overhead", shape=shape, size=params.width, hires_size=size.width, batch=params.batch_size,
            steps=params.steps, hires_steps=params.hires_steps, hires_steps_run=by_hand.hires_steps_run,
            img2img_steps=by_hand.steps,
            strength=by_hand.strength, sampler=params.sampler, dtype=str(dtype)[6:], fast_path=False,
            engine_median_s=engine_s,
            by_hand_median_s=hand_s, engine_times_s=times["engine"], by_hand_times_s=times["by_hand"], ratio=ratio,
            cpu_ratio=cpu_ratio, engine_job_steps=job.last_step, max_abs_pixel_diff=diff, identical=diff == 0,
            limit=args.limit, ok=ok)
    manager.unload_all()


def bench_engine(args, shape: str, work: Path, checkpoint: str, device, dtype, log: FigureLog) -> None:
    """Seconds per image of the hires job through an Engine as production runs it (fast path on)."""
    from sdui.engine.generate import GenerationError

    engine, manager = make_engine(work, device, dtype, fast_path=True)
    params = job_params(args, shape, checkpoint)
    job = EngineJob(engine, params)
    size = params.hires_size()
    common = {"figure": "engine", "shape": shape, "size": params.width, "hires_size": size.width,
              "batch": params.batch_size, "steps": params.steps, "hires_steps": params.hires_steps,
              "sampler": params.sampler, "dtype": str(dtype)[6:], "fast_path": True}
    try:
        times, cpu = time_interleaved({"engine": job}, device, 1, args.runs)
    except GenerationError as e:  # random weights in half precision may overflow
        log.add(f"engine {shape}: skipped: {e}", **common, note=f"skipped: {e}")
        return
    finally:
        manager.unload_all()
    median = statistics.median(times["engine"])
    log.add(f"engine {shape} {params.width}² -> {size.width}², {params.steps} + {params.hires_steps} steps, batch "
            f"{params.batch_size}: {median / params.batch_size:.3f} s per image (median of {args.runs}; runs "
            f"{', '.join(f'{t:.3f}' for t in times['engine'])})",
            **common, median_s=median, times_s=times["engine"], s_per_image=median / params.batch_size,
            cpu_median_s=statistics.median(cpu["engine"]))


def main(argv: list[str] | None = None) -> int:
    """Run the requested figures; return 1 when the overhead or pixel target is missed."""
    args = parse_args(argv)
    from sdui.models.memory import tune_allocator

    tuned = not args.no_tune_allocator and tune_allocator()  # as app.py starts
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    default = "fp16" if device.type == "cuda" else "fp32"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or default]
    log = FigureLog(args.out, device, "hires")
    log.env["allocator_tuned"] = tuned
    with tempfile.TemporaryDirectory(prefix="sdui-bench-hires-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        for shape in args.shape:
            figures = args.figures or (["overhead", "engine"] if device.type == "cuda" else ["overhead"])
            if args.figures is None and shape == "sdxl":
                figures = ["engine"]  # by hand, SDXL's pipeline upcasts its fp16 VAE, the engine only on NaN
            checkpoint = save_model(shape, work / "models", dtype)
            if "overhead" in figures:
                bench_overhead(args, shape, work, checkpoint, device, dtype, log)
            if "engine" in figures:
                bench_engine(args, shape, work, checkpoint, device, dtype, log)
    return log.finish()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
