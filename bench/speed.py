"""Speed benchmark: plain diffusers eager vs sdui's fast path (and its Engine), side by side in one process.

Random weights of the real shapes (bench/speed_models.py); median of --repeats timed runs after
warm-up, the device synchronised, the two variants interleaved so background load hits both alike.
One JSON line per figure into --out. `ratio` = baseline median / this variant's median (> 1: faster).
Needs only torch, diffusers, transformers, safetensors and Pillow (no gradio).

    python bench/speed.py --tiny --out bench/results          # seconds, any CPU
    python bench/speed.py --shape sd15 --device cpu           # one SD1.5 UNet step with CFG at 512²
    python bench/speed.py --shape sd15 sdxl --device cuda --compile --memory --out bench/results

`restart` (with --compile) starts the Engine twice in fresh processes over one inductor cache: cold, then
warm, each timed from process start to the end of its first image, after which images run at full speed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from speed_timing import (ROOT, Recorder, count_host_syncs, figure_stats, preview_loop_syncs, rel_err, sync,
                          time_interleaved)

FIGURES = ("step", "pipeline", "engine", "restart")
PROMPT = "a photo of an astronaut riding a horse on the moon"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", nargs="+", choices=["sd15", "sdxl", "tiny"], default=["sd15"])
    p.add_argument("--tiny", action="store_true", help="shape tiny at 64², 4 steps: all figures in seconds on CPU")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default=None,
                   help="weights of both variants (default: fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--figures", nargs="+", choices=FIGURES, default=None,
                   help="default: all on CUDA and for tiny (restart only with --compile); only the UNet step "
                        "for real shapes on CPU")
    p.add_argument("--size", type=int, default=None, help="image side (default 512, SDXL 1024, tiny 128)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="fast path with torch.compile (CUDA)")
    p.add_argument("--ablate", action="store_true", help="CPU: also time bf16 autocast + channels_last alone")
    p.add_argument("--memory", action="store_true", help="peak GPU memory of default/medvram/lowvram/VAE tiling")
    p.add_argument("--memory-size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--cache-dir", type=Path, default=ROOT / "cache")
    p.add_argument("--out", type=Path, default=None, help="folder for the JSON lines file")
    p.add_argument("--restart-child", type=json.loads, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.tiny:
        a.shape, a.size, a.steps = ["tiny"], a.size or 64, min(a.steps, 4)
    return a


def count_flops(shape: str, size: int, batch: int) -> tuple[float, float]:
    """FLOPs of one UNet step with CFG (2 x batch latents) and of one VAE decode of `batch` latents."""
    from torch.utils.flop_counter import FlopCounterMode

    import speed_models as sm

    if shape == "tiny":
        from sdui.models.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline()
        unet, vae = pipe.unet, pipe.vae
    else:
        unet, vae = sm.meta_unet(sm.SHAPES[shape]), sm.meta_vae(sm.SHAPES[shape])
    device = next(unet.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as step:
        unet(**sm.unet_inputs(unet, size, batch, device, torch.float32))
    with torch.no_grad(), FlopCounterMode(display=False) as decode:
        vae.decode(torch.zeros(batch, 4, size // 8, size // 8, device=device))
    return float(step.get_total_flops()), float(decode.get_total_flops())


def bench_step(args, shape: str, size: int, batch: int, device, dtype, settings, rec, flops) -> None:
    """One UNet step with CFG: the stock module vs the fast-path copy (and, with --ablate, autocast only)."""
    import speed_models as sm

    from sdui.models.fast import apply_fast_path, autocast_context

    if shape == "tiny":
        from sdui.models.tiny import build_tiny_pipeline

        base = build_tiny_pipeline().unet.to(device, dtype)
    else:
        base = sm.build_unet(sm.SHAPES[shape], device, dtype)
    inputs = sm.unet_inputs(base, size, batch, device, dtype)
    fast = SimpleNamespace(unet=copy.deepcopy(base), vae=None)
    info = apply_fast_path(fast, device, dtype, settings, cpu_bf16_weights=True)
    variants: dict[str, tuple[torch.nn.Module, Any]] = {"baseline": (base, None), "fast": (fast.unet, settings)}
    described = {"baseline": "", "fast": info.describe()}
    if args.ablate and device.type == "cpu" and info.autocast_dtype is not None:
        ablation = SimpleNamespace(unet=copy.deepcopy(base), vae=None)
        described["autocast_channels_last"] = apply_fast_path(ablation, device, dtype, settings,
                                                              cpu_bf16_weights=False).describe()
        variants["autocast_channels_last"] = (ablation.unet, settings)
    outputs: dict[str, torch.Tensor] = {}

    def call(name: str) -> Callable[[], None]:
        module, fast_settings = variants[name]

        def run() -> None:
            with torch.no_grad():
                if fast_settings is None:
                    outputs[name] = module(**inputs).sample
                else:
                    with autocast_context(device, fast_settings):
                        outputs[name] = module(**inputs).sample
        return run

    times = time_interleaved({n: call(n) for n in variants}, device, args.warmup, args.repeats)
    for name in variants:
        out = outputs[name]
        rec.add(figure="step", shape=shape, variant=name, size=size, batch=batch, dtype=str(dtype)[6:],
                **figure_stats(times, name, batch, 1, flops[0]),
                rel_err_vs_baseline=rel_err(out, outputs["baseline"]), finite=bool(torch.isfinite(out).all()),
                fast_path=described[name])


def _png_bytes(images: list) -> int:
    total = 0
    for image in images:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        total += buf.tell()
    return total


def _pipeline_call(pipe: Any, args, size: int, batch: int, device, settings) -> Callable[[], None]:
    from sdui.models.fast import autocast_context

    def run() -> None:
        kwargs = {"prompt": [PROMPT] * batch, "num_inference_steps": args.steps, "height": size, "width": size,
                  "generator": torch.Generator("cpu").manual_seed(1)}
        with torch.no_grad():
            if settings is None:
                _png_bytes(pipe(**kwargs).images)
            else:
                with autocast_context(device, settings):
                    _png_bytes(pipe(**kwargs).images)
    return run


def _engine_call(pipe: Any, args, size: int, batch: int, settings,
                 tmp: Path) -> tuple[Callable[[], None] | None, str]:
    """sdui's Engine over a models dir holding `pipe` as a diffusers folder (None, why: it cannot be imported)."""
    try:
        from sdui.engine.generate import Engine
        from sdui.models.catalog import Catalog
        from sdui.models.manager import ModelManager
        from sdui.params import GenerationParams
    except ImportError as e:  # a bare GPU box: the engine needs requirements.txt beyond torch + diffusers
        return None, f"the engine needs {e.name}: pip install -r requirements.txt"

    pipe.save_pretrained(tmp / "speed-model", safe_serialization=True)
    engine_settings = dataclasses.replace(settings, ckpt_dir=tmp, no_save=True)
    catalog = Catalog(tmp, Path(settings.cache_dir))
    engine = Engine(ModelManager(catalog, engine_settings))
    params = GenerationParams(prompt=PROMPT, checkpoint="speed-model", sampler="Euler", steps=args.steps,
                              width=size, height=size, batch_size=batch, seed=1)

    def run() -> None:
        _png_bytes(engine.run(params).images)
    return run, ""


def bench_restart(args, shape: str, size: int, device, dtype, settings, rec, pipe) -> None:
    """Time to full speed of a cold and then a warm start with --compile, each in a fresh process."""
    if not settings.compile:
        rec.add(figure="restart", shape=shape, size=size, note="skipped: needs --compile")
        return
    cache = Path(settings.cache_dir) / "restart-bench"
    shutil.rmtree(cache, ignore_errors=True)  # the cold start must find no kernels
    runs = {}
    with tempfile.TemporaryDirectory(prefix="sdui-restart-") as tmp:
        pipe.save_pretrained(Path(tmp) / "speed-model", safe_serialization=True)
        child_settings = {"ckpt_dir": tmp, "cache_dir": str(cache), "compile": True, "device": str(device),
                          "no_half": settings.no_half, "bf16": settings.bf16, "no_save": True}
        for variant in ("cold", "warm"):
            spec = {"settings": child_settings, "size": size, "steps": args.steps, "threads": args.threads,
                    "images": max(3, args.repeats), "spawned": time.time()}
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--restart-child", json.dumps(spec)],
                                  capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise RuntimeError(f"restart child ({variant}) failed:\n{done.stderr[-3000:]}")
            runs[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    for variant, run in runs.items():
        rec.add(figure="restart", shape=shape, variant=variant, size=size, steps=args.steps, dtype=str(dtype)[6:],
                **run, ratio=runs["cold"]["seconds_to_full_speed"] / run["seconds_to_full_speed"])


def restart_child(spec: dict) -> int:
    """One app-like start: imports, Engine over the saved model with --compile, first image, then more images."""
    from sdui.engine.generate import Engine
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.params import GenerationParams
    from sdui.settings import Settings

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    values = spec["settings"]
    settings = Settings(**{**values, "ckpt_dir": Path(values["ckpt_dir"]), "cache_dir": Path(values["cache_dir"])})
    engine = Engine(ModelManager(Catalog(settings.ckpt_dir, settings.cache_dir), settings))
    params = GenerationParams(prompt=PROMPT, checkpoint="speed-model", sampler="Euler", steps=spec["steps"],
                              width=spec["size"], height=spec["size"], seed=1)
    start = time.perf_counter()
    _png_bytes(engine.run(params).images)
    first_image_s = time.perf_counter() - start
    seconds_to_full_speed = time.time() - spec["spawned"]
    steady = []
    for _ in range(spec["images"]):
        start = time.perf_counter()
        _png_bytes(engine.run(params).images)
        steady.append(time.perf_counter() - start)
    from torch._dynamo.utils import counters

    print(json.dumps({"seconds_to_full_speed": seconds_to_full_speed, "first_image_s": first_image_s,
                      "steady_s": statistics.median(steady), "times_s": [round(t, 4) for t in steady],
                      "fxgraph_cache_hit": counters["inductor"]["fxgraph_cache_hit"],
                      "fxgraph_cache_miss": counters["inductor"]["fxgraph_cache_miss"]}), flush=True)
    return 0


def bench_pipeline(args, shape: str, size: int, batch: int, device, dtype, settings, rec, flops, pipe,
                   figures: list[str]) -> None:
    """Whole images (text encoding, denoising, VAE decode, PNG encode): stock pipeline vs fast path vs Engine."""
    from sdui.models.fast import apply_fast_path

    fns: dict[str, Callable[[], None]] = {"baseline": _pipeline_call(pipe, args, size, batch, device, None)}
    describe, note = "", ""
    if "pipeline" in figures:
        fast = copy.deepcopy(pipe)
        describe = apply_fast_path(fast, device, dtype, settings).describe()
        fns["fast"] = _pipeline_call(fast, args, size, batch, device, settings)
    with tempfile.TemporaryDirectory(prefix="sdui-speed-") as tmp:
        if "engine" in figures:
            engine_fn, note = _engine_call(pipe, args, size, batch, settings, Path(tmp))
            if engine_fn is not None:
                fns["engine"] = engine_fn
        times = time_interleaved(fns, device, args.warmup, args.repeats)
        # Host waits per image; the engine's per-step previews must add none (PNG encoding needs one at the end).
        syncs = {name: count_host_syncs(fn) for name, fn in fns.items()} if device.type == "cuda" else {}
    total_flops = args.steps * flops[0] + flops[1]
    for name in fns:
        extra = {"host_syncs": syncs[name]} if syncs else {}
        if syncs and name == "engine":
            extra["preview_loop_syncs"] = preview_loop_syncs(device)
        rec.add(figure="engine" if name == "engine" else "pipeline", shape=shape, variant=name, size=size,
                batch=batch, steps=args.steps, dtype=str(dtype)[6:],
                **figure_stats(times, name, batch, args.steps, total_flops),
                fast_path=describe if name == "fast" else "", **extra)
    if note:
        rec.add(figure="engine", shape=shape, variant="engine", size=size, batch=batch, note=f"skipped: {note}")


def bench_memory(args, shape: str, device, dtype, rec) -> None:
    """Peak GPU memory of one short generation at --memory-size for each low-memory mode."""
    import speed_models as sm

    size = args.memory_size
    if device.type != "cuda":
        print("memory: skipped: needs CUDA", flush=True)
        rec.add(figure="memory", shape=shape, size=size, note="skipped: needs CUDA")
        return
    cpu_pipe = sm.build_pipeline(shape, "cpu", dtype)
    cpu_pipe.set_progress_bar_config(disable=True)
    setups = {
        "default": lambda p: p.to(device),
        "medvram": lambda p: p.enable_model_cpu_offload(device=device),
        "lowvram": lambda p: p.enable_sequential_cpu_offload(device=device),
        "vae_tiling": lambda p: (p.to(device), p.vae.enable_tiling()),
    }
    for mode, setup in setups.items():
        pipe = copy.deepcopy(cpu_pipe)
        try:
            setup(pipe)
        except ImportError as e:  # diffusers' offload needs accelerate
            rec.add(figure="memory", shape=shape, variant=mode, size=size, note=f"skipped: {e}")
            continue
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        note = ""
        try:
            with torch.no_grad():
                pipe(PROMPT, num_inference_steps=2, height=size, width=size, output_type="pil")
        except torch.cuda.OutOfMemoryError as e:
            note = f"out of memory: {str(e).splitlines()[0]}"
        sync(device)
        rec.add(figure="memory", shape=shape, variant=mode, size=size, steps=2, dtype=str(dtype)[6:],
                peak_gib=torch.cuda.max_memory_allocated(device) / 2**30, seconds=time.perf_counter() - start,
                note=note)
        del pipe
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    """Run every requested figure; return 0."""
    args = parse_args(argv)
    if args.restart_child is not None:
        return restart_child(args.restart_child)
    import speed_models as sm

    if args.threads:
        torch.set_num_threads(args.threads)
    from sdui.settings import Settings

    device = torch.device(args.device)
    default = "fp16" if device.type == "cuda" else "fp32"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or default]
    settings = Settings(cache_dir=args.cache_dir.resolve(), compile=args.compile, device=str(device),
                        no_half=dtype == torch.float32 and device.type == "cuda", bf16=dtype == torch.bfloat16)
    rec = Recorder(args.out, device)
    for shape in args.shape:
        size = args.size or (sm.SHAPES[shape].size if shape in sm.SHAPES else 64)
        figures = args.figures or (list(FIGURES) if device.type == "cuda" or shape == "tiny" else ["step"])
        if not args.compile and args.figures is None:
            figures = [f for f in figures if f != "restart"]
        pipe = None
        if {"pipeline", "engine", "restart"} & set(figures):
            pipe = sm.build_pipeline(shape, device, dtype)
            pipe.set_progress_bar_config(disable=True)
        for batch in args.batch:
            flops = count_flops(shape, size, batch)
            if "step" in figures:
                bench_step(args, shape, size, batch, device, dtype, settings, rec, flops)
            if {"pipeline", "engine"} & set(figures):
                bench_pipeline(args, shape, size, batch, device, dtype, settings, rec, flops, pipe, figures)
        if "restart" in figures:
            bench_restart(args, shape, size, device, dtype, settings, rec, pipe)
        del pipe
        if args.memory:
            bench_memory(args, shape, device, dtype, rec)
    if rec.path is not None:
        print(f"wrote {rec.path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
