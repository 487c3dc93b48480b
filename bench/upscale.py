"""Upscale memory benchmark: peak RSS of a 4x RRDBNet upscale, and of a 2048² VAE decode with and without tiling.

    python bench/upscale.py --size 64 --decode-size 256 --tile 128     # the smoke test's sizes, seconds
    python bench/upscale.py --threads 2 --out bench/results            # the real figures, minutes

Every measurement runs in a fresh child process that imports and builds everything first, takes its idle RSS,
resets its peak (Linux clear_refs) and then does the work: the figure is the peak RSS (ru_maxrss) above idle.
`upscale`: `Upscalers.upscale(image, 4, name)` of a --size² image (default 1024²) with an RRDBNet of
RealESRGAN_x4plus's real size (nf 64, nb 23, gc 32; random weights written here as a .pth or .safetensors in
an ESRGAN folder), tiled as production tiles (tile 192, overlap 8). Target: peak <= 2 GB above idle; the model
load and the upscale are timed apart. `decode`: an SD1.5-shaped VAE (bench/speed_models.py, random weights)
decodes one --decode-size² image (default 2048²) in one piece and with diffusers' tiling (`vae.enable_tiling()`,
what the engine turns on above VAE_TILING_PIXELS); peak RSS and time of each, their ratios, and how far the
tiled pixels are from the untiled ones. --runs > 1 alternates the children and reports medians.
One JSON line per figure into --out (upscale-<device>-<date>.jsonl). Exits 1 when the upscale target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from speed_timing import ROOT, FigureLog, sync

FIGURES = ("upscale", "decode")
UPSCALE_LIMIT_BYTES = 2 * 10**9  # peak RSS above idle for the 4x upscale
MODEL_NAME = "RealESRGAN_x4plus-random"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES))
    p.add_argument("--size", type=int, default=1024, help="side of the image upscaled 4x")
    p.add_argument("--nf", type=int, default=64, help="RRDBNet filters (RealESRGAN_x4plus: 64)")
    p.add_argument("--nb", type=int, default=23, help="RRDB blocks (RealESRGAN_x4plus: 23)")
    p.add_argument("--format", choices=["pth", "safetensors"], default="pth", help="the model file written")
    p.add_argument("--decode-size", type=int, default=2048, help="side of the decoded image")
    p.add_argument("--tile", type=int, default=None, help="VAE tile side in pixels (default: diffusers', 512)")
    p.add_argument("--runs", type=int, default=1, help="children per variant, alternating; medians reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in the children")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="leave glibc's malloc as it is (app.py tunes it at start: sdui/models/memory.py)")
    p.add_argument("--out", type=Path, default=None, help="folder for the JSON lines file")
    p.add_argument("--child", type=json.loads, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.size % 8 or a.decode_size % 8 or min(a.size, a.decode_size, a.runs, a.nf, a.nb) < 1:
        p.error(f"--size and --decode-size must be positive multiples of 8 and --runs, --nf, --nb >= 1; got "
                f"{a.size}, {a.decode_size}, {a.runs}, {a.nf}, {a.nb}")
    return a


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux clear_refs 5), so the peak is the work's alone.

    Without it the peak could be an earlier high-water mark (building the model, or the parent's before exec).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def gpu_peak(device: torch.device) -> dict:
    return {"gpu_peak_bytes": torch.cuda.max_memory_allocated(device)} if device.type == "cuda" else {}


def upscale_child(spec: dict) -> dict:
    """One 4x upscale through sdui's Upscalers: idle RSS, model load, upscale, peak RSS."""
    import numpy as np
    from PIL import Image

    from sdui.settings import Settings
    from sdui.upscalers import Upscalers
    from sdui.upscalers.reading import load_descriptor  # noqa: F401  (imported before the baseline)
    from sdui.upscalers.spandrel_import import import_spandrel

    import_spandrel()
    device = torch.device(spec["device"])
    settings = Settings.for_data_dir(Path(spec["data_dir"]), device=spec["device"])
    upscalers = Upscalers(settings, device)
    size = spec["size"]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    idle, peak_reset = rss_bytes(), reset_peak()
    start = time.perf_counter()
    upscalers.model(upscalers.find(MODEL_NAME))
    load_s = time.perf_counter() - start
    loaded = rss_bytes()
    start = time.perf_counter()
    out = upscalers.upscale(image, 4, MODEL_NAME)
    sync(device)
    upscale_s = time.perf_counter() - start
    return {"idle": idle, "peak_reset": peak_reset, "loaded": loaded, "peak": peak_bytes(), "load_s": load_s,
            "upscale_s": upscale_s, "out_size": list(out.size), **gpu_peak(device)}


def decode_child(spec: dict) -> dict:
    """One VAE decode of a random latent, tiled or not; the 8-bit pixels are saved for the parent to compare."""
    import numpy as np

    import speed_models as sm

    device = torch.device(spec["device"])
    vae = sm.build_vae(sm.SHAPES["sd15"], device)
    if spec["tiled"]:
        vae.enable_tiling()
        if spec["tile"]:
            vae.tile_sample_min_size, vae.tile_latent_min_size = spec["tile"], spec["tile"] // 8
    side = spec["size"] // 8
    latents = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    idle, peak_reset = rss_bytes(), reset_peak()
    start = time.perf_counter()
    with torch.inference_mode():
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    sync(device)
    decode_s = time.perf_counter() - start
    peak = peak_bytes()
    pixels = (decoded / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8)  # diffusers' postprocess
    np.save(spec["pixels"], pixels.cpu().numpy())
    return {"idle": idle, "peak_reset": peak_reset, "peak": peak, "decode_s": decode_s,
            "out_size": list(decoded.shape[-2:]), **gpu_peak(device)}


def run_child(args, spec: dict) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    spec = {**spec, "device": args.device, "threads": args.threads, "tune_allocator": not args.no_tune_allocator}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['figure']} child failed (exit {done.returncode}; -9: killed, out of memory?):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(spec: dict) -> int:
    from sdui.models.memory import tune_allocator

    tuned = spec["tune_allocator"] and tune_allocator()  # as app.py starts, before anything is allocated
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    result = (upscale_child if spec["figure"] == "upscale" else decode_child)(spec)
    print(json.dumps({**result, "threads": torch.get_num_threads(), "allocator_tuned": tuned}), flush=True)
    return 0


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k, v in runs[0].items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def bench_upscale(args, work: Path, log: FigureLog) -> None:
    """4x of a --size² image with the real-size RRDBNet through Upscalers.upscale, in fresh children."""
    from sdui.settings import Settings

    from tests.upscalers.esrgan_files import write_tiny_esrgan  # the tests' writer, at the real nf/nb

    # A .pth is wrapped in `params_ema`, as Real-ESRGAN ships its files.
    path = write_tiny_esrgan(work / "models" / "ESRGAN" / f"{MODEL_NAME}.{args.format}", 4, args.nf, args.nb,
                             params_ema=True)
    spec = {"figure": "upscale", "data_dir": str(work), "size": args.size}
    runs = [run_child(args, spec) for _ in range(args.runs)]
    m = medians(runs)
    above = m["peak"] - m["idle"]
    ok = above <= UPSCALE_LIMIT_BYTES
    out_w, out_h = runs[0]["out_size"]
    tiling = Settings()  # the child's: production's defaults
    allocator = "tuned" if runs[0]["allocator_tuned"] else "as glibc has it"
    log.add(f"upscale: {args.size}² -> {out_w}x{out_h}, RRDBNet nf {args.nf} nb {args.nb} ({mib(path.stat().st_size)} "
            f".{args.format}), tile {tiling.upscaler_tile} overlap {tiling.upscaler_tile_overlap}, torch threads "
            f"{runs[0]['threads']}, allocator {allocator}: load {m['load_s']:.2f} s, upscale {m['upscale_s']:.2f} s; "
            f"RSS idle {mib(m['idle'])}, model loaded {mib(m['loaded'])}, peak {mib(m['peak'])} (+{mib(above)} above "
            f"idle, limit +{mib(UPSCALE_LIMIT_BYTES)}); target: {'ok' if ok else 'MISSED'}",
            figure="upscale", size=args.size, out_size=[out_w, out_h], nf=args.nf, nb=args.nb, format=args.format,
            tile=tiling.upscaler_tile, tile_overlap=tiling.upscaler_tile_overlap,
            model_bytes=path.stat().st_size, runs=runs, idle_bytes=m["idle"], loaded_bytes=m["loaded"],
            peak_bytes=m["peak"], above_idle_bytes=above, load_s=m["load_s"], upscale_s=m["upscale_s"],
            limit_bytes=UPSCALE_LIMIT_BYTES, ok=ok)


def bench_decode(args, work: Path, log: FigureLog) -> None:
    """A --decode-size² VAE decode untiled and tiled, alternating fresh children; pixels compared."""
    import numpy as np

    runs: dict[str, list[dict]] = {"untiled": [], "tiled": []}
    for r in range(args.runs):
        for variant in ("untiled", "tiled") if r % 2 == 0 else ("tiled", "untiled"):
            spec = {"figure": "decode", "tiled": variant == "tiled", "tile": args.tile, "size": args.decode_size,
                    "pixels": str(work / f"{variant}.npy")}
            runs[variant].append(run_child(args, spec))
    untiled, tiled = np.load(work / "untiled.npy"), np.load(work / "tiled.npy")
    diff = np.abs(untiled.astype(np.int16) - tiled.astype(np.int16))
    m = {variant: medians(rs) for variant, rs in runs.items()}
    for variant, med in m.items():
        log.add(f"decode {variant}: {args.decode_size}², {med['decode_s']:.2f} s; RSS idle {mib(med['idle'])}, peak "
                f"{mib(med['peak'])} (+{mib(med['peak'] - med['idle'])} above idle)",
                figure="decode", variant=variant, size=args.decode_size, tile=args.tile or 512, runs=runs[variant],
                idle_bytes=med["idle"], peak_bytes=med["peak"], above_idle_bytes=med["peak"] - med["idle"],
                decode_s=med["decode_s"])
    memory_ratio = (m["tiled"]["peak"] - m["tiled"]["idle"]) / (m["untiled"]["peak"] - m["untiled"]["idle"])
    time_ratio = m["tiled"]["decode_s"] / m["untiled"]["decode_s"]
    log.add(f"decode tiled/untiled: memory above idle {memory_ratio:.3f}, time {time_ratio:.3f}; pixels max abs diff "
            f"{int(diff.max())}, mean {diff.mean():.2f}",
            figure="decode_ratio", size=args.decode_size, tile=args.tile or 512, memory_ratio=memory_ratio,
            time_ratio=time_ratio, max_abs_pixel_diff=int(diff.max()), mean_abs_pixel_diff=float(diff.mean()))


def main(argv: list[str] | None = None) -> int:
    """Run the requested figures, each measurement in a child; return 1 when the upscale target is missed."""
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child)
    log = FigureLog(args.out, torch.device(args.device), "upscale")
    with tempfile.TemporaryDirectory(prefix="sdui-bench-upscale-") as tmp:
        if "upscale" in args.figures:
            bench_upscale(args, Path(tmp), log)
        if "decode" in args.figures:
            bench_decode(args, Path(tmp), log)
    return log.finish()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
