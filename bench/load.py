"""Load benchmark: load time and peak RSS of sdui's loader, for the tiny model and an SD1.5-shaped file.

    .venv/bin/python bench/load.py                 # tiny model: diffusers folder, .safetensors, .ckpt
    .venv/bin/python bench/load.py --sd15-shaped   # also a random-weight 2.1 GB fp16 SD1.5-layout file

Each load runs in a fresh child process so its peak RSS (ru_maxrss) belongs to that load alone. The
ratio printed is (peak RSS - RSS before loading) / bytes of the loaded model; the target is <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path("/tmp/sdui-bench-load")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(path: Path, dtype_name: str) -> None:
    """Load once and print a JSON line with the numbers."""
    import torch

    from sdui.models.device import DevicePlan
    from sdui.models.load import load_pipeline, model_bytes

    dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
    plan = DevicePlan(device=torch.device("cpu"), dtype=dtype, vae_dtype=dtype, offload=None)
    # Import what loading pulls in before the baseline, so import cost is not counted as loading.
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel  # noqa: F401
    from diffusers.loaders import single_file_utils  # noqa: F401
    from transformers import CLIPTextModel  # noqa: F401

    from sdui.models.tokenizer import load_tokenizer

    load_tokenizer()
    load_tokenizer("!")

    before = _rss()
    start = time.perf_counter()
    pipe = load_pipeline(path, plan)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = model_bytes(pipe)
    print(json.dumps({"seconds": seconds, "before": before, "peak": peak, "after": _rss(), "model": size}))


def measure(path: Path, dtype: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, __file__, "--child", str(path), "--dtype", dtype], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_tiny(work: Path) -> list[Path]:
    from sdui.models.layout import save_single_file
    from sdui.models.tiny import build_tiny_pipeline, ensure_demo_model

    folder = ensure_demo_model(work)
    pipe = build_tiny_pipeline()
    files = [work / "tiny.safetensors", work / "tiny.ckpt"]
    for f in files:
        if not f.exists():
            save_single_file(pipe, f)
    return [folder, *files]


def make_sd15_shaped(work: Path) -> Path:
    """A random-weight fp16 original-layout file with SD1.5's exact keys and shapes (~2.1 GB), cached in /tmp."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdui.models.layout import pipeline_to_ldm
    from sdui.models.probe import CONFIGS_DIR

    target = work / "sd15-shaped.safetensors"
    if target.exists():
        return target
    cfg = CONFIGS_DIR / "sd1"
    with torch.device("meta"):  # shapes only: no 1 B-parameter init on the CPU
        modules = SimpleNamespace(
            unet=UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet")),
            vae=AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae")),
            text_encoder=CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder")),
        )
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for key, meta in pipeline_to_ldm(modules).items():
        if meta.dtype.is_floating_point:
            tensors[key] = (torch.randn(meta.shape, generator=gen) * 0.02).to(torch.float16)
        else:
            tensors[key] = torch.arange(meta.numel()).reshape(meta.shape).to(meta.dtype)
    from safetensors.torch import save_file

    work.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target.with_suffix(".partial")))
    target.with_suffix(".partial").rename(target)
    return target


def report(label: str, path: Path, dtype: str) -> dict:
    r = measure(path, dtype)
    ratio = (r["peak"] - r["before"]) / r["model"]
    print(f"{label:<34} {dtype}  file {_size(path):>9}  load {r['seconds']:6.2f} s  model {r['model'] / 2**20:8.1f} MiB"
          f"  peak RSS {r['peak'] / 2**20:8.1f} MiB (+{(r['peak'] - r['before']) / 2**20:.1f} while loading)"
          f"  ratio {ratio:.2f}")
    return {"ratio": ratio, **r}


def _size(path: Path) -> str:
    n = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{n / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sd15-shaped", action="store_true", help="also benchmark a 2.1 GB SD1.5-shaped file")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--work", type=Path, default=WORK, help="where the model files are written (kept between runs)")
    a = p.parse_args(argv)
    if a.child:
        child(a.child, a.dtype)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in make_tiny(a.work):
        report(f"tiny {path.name}", path, "fp32")
    ok = True
    if a.sd15_shaped:
        path = make_sd15_shaped(a.work)
        for dtype in ("fp16", "fp32"):
            r = report("sd15-shaped .safetensors (fp16 file)", path, dtype)
            ok = ok and r["ratio"] <= 1.5
        print("peak RSS while loading <= 1.5x model size:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
