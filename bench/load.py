"""Load benchmark: load time and peak RSS of sdui's loader, for the tiny model and an SD1.5-shaped file.

    .venv/bin/python bench/load.py                 # tiny model: diffusers folder, .safetensors, .ckpt
    .venv/bin/python bench/load.py --sd15-shaped   # also a random-weight 2.1 GB fp16 SD1.5-layout file
    .venv/bin/python bench/load.py --lightning-ckpt  # also a 4.3 GB fp32 Lightning .ckpt shaped as sd-v1-4.ckpt

Each load runs in a fresh child process so its peak RSS (ru_maxrss) belongs to that load alone. The
ratio printed is (peak RSS - RSS before loading) / bytes of the loaded model; the target is <= 1.5
(<= 1.25 for the .ckpt). The .ckpt is also loaded, in its own fresh child, by one plain
`torch.load(weights_only=True, mmap=True)`, and then with every tensor read once: its load time is
compared with both (target <= 1.5x the plain torch.load).
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

    load_tokenizer("<|endoftext|>")  # the call load_single_file makes (lru_cache keys by the arguments given)
    load_tokenizer("!")

    before = _rss()
    start = time.perf_counter()
    pipe = load_pipeline(path, plan).pipe
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = model_bytes(pipe)
    after = _rss()
    # Mmapped weights are read on first use: read each once, as the first generation would.
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in component.state_dict().values():
                tensor.float().sum()
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "before": before, "peak": peak, "after": after, "model": size,
                      "peak_after_use": used}))


def child_torch_load(path: Path, touch: bool) -> None:
    """The baseline: one plain torch.load of the pickle (mmapped), optionally reading every tensor once."""
    import torch

    from sdui.models.files import LIGHTNING_GLOBAL, ModelCheckpoint

    before = _rss()
    start = time.perf_counter()
    with torch.serialization.safe_globals([(ModelCheckpoint, LIGHTNING_GLOBAL)]):
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)["state_dict"]
    if touch:
        for value in state.values():
            value.sum()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = sum(v.numel() * v.element_size() for v in state.values())
    print(json.dumps({"seconds": seconds, "before": before, "peak": peak, "after": _rss(), "model": size}))


def measure(path: Path, dtype: str, baseline: str | None = None) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    extra = ["--baseline", baseline] if baseline else []
    out = subprocess.run([sys.executable, __file__, "--child", str(path), "--dtype", dtype, *extra], env=env,
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
    target = work / "sd15-shaped.safetensors"
    if target.exists():
        return target
    tensors = _sd15_tensors()
    from safetensors.torch import save_file

    work.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target.with_suffix(".partial")))
    target.with_suffix(".partial").rename(target)
    return target


def _sd15_tensors() -> dict:
    """Random fp16 tensors under SD1.5's original-layout keys and shapes."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdui.models.layout import pipeline_to_ldm
    from sdui.models.probe import CONFIGS_DIR

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
    return tensors


def make_lightning_ckpt(work: Path) -> Path:
    """An fp32 PyTorch Lightning checkpoint as sd-v1-4.ckpt is (state_dict, global_step, a pickled ModelCheckpoint
    callback class), with SD1's exact keys and shapes and random weights (~4.3 GB), in A1111's classic folder."""
    import types

    import torch

    from sdui.models.files import LIGHTNING_GLOBAL

    target = work / "models" / "ldm" / "stable-diffusion-1" / "model.ckpt"
    if target.exists():
        return target
    state = {k: v.to(torch.float32) for k, v in _sd15_tensors().items()}
    module_name, class_name = LIGHTNING_GLOBAL.rsplit(".", 1)
    parts = module_name.split(".")
    for i in range(1, len(parts) + 1):  # pickle imports the class by name: fake the package chain
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    callback = type(class_name, (), {"__module__": module_name})
    setattr(sys.modules[module_name], class_name, callback)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    torch.save({"epoch": 6, "global_step": 470000, "pytorch-lightning_version": "1.4.2", "state_dict": state,
                "callbacks": {callback: {"monitor": None, "best_model_score": None}}}, str(partial))
    partial.rename(target)
    return target


def report(label: str, path: Path, dtype: str) -> dict:
    r = measure(path, dtype)
    ratio = (r["peak"] - r["before"]) / r["model"]
    used = (r["peak_after_use"] - r["before"]) / r["model"]
    print(f"{label:<34} {dtype}  file {_size(path):>9}  load {r['seconds']:6.2f} s  model {r['model'] / 2**20:8.1f} MiB"
          f"  peak RSS {r['peak'] / 2**20:8.1f} MiB (+{(r['peak'] - r['before']) / 2**20:.1f} while loading)"
          f"  ratio {ratio:.2f}; after reading every weight once {used:.2f}")
    return {"ratio": ratio, "ratio_after_use": used, **r}


def _size(path: Path) -> str:
    n = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{n / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sd15-shaped", action="store_true", help="also benchmark a 2.1 GB SD1.5-shaped file")
    p.add_argument("--lightning-ckpt", action="store_true", help="also benchmark a 4.3 GB fp32 Lightning .ckpt")
    p.add_argument("--repeat", type=int, default=3, help="loads of the .ckpt per way (medians are compared)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--baseline", choices=["torch-load", "torch-load-touch"], help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--work", type=Path, default=WORK, help="where the model files are written (kept between runs)")
    a = p.parse_args(argv)
    if a.child:
        if a.baseline:
            child_torch_load(a.child, touch=a.baseline == "torch-load-touch")
        else:
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
    if a.lightning_ckpt:
        path = make_lightning_ckpt(a.work)
        runs = []  # alternating, then the medians: single loads on a shared 2-core box vary a lot
        for _ in range(a.repeat):
            runs.append((measure(path, "fp32", "torch-load"), measure(path, "fp32", "torch-load-touch"),
                         report("sd-v1-4-shaped Lightning .ckpt", path, "fp32")))
        plain, touched, r = (sorted(group, key=lambda x: x["seconds"])[len(group) // 2] for group in zip(*runs))
        print(f"plain torch.load(weights_only=True, mmap=True): {plain['seconds']:.2f} s; with every tensor read "
              f"once: {touched['seconds']:.2f} s (peak +{(touched['peak'] - touched['before']) / 2**20:.0f} MiB)")
        time_ratio = r["seconds"] / plain["seconds"]
        print(f"load time / plain torch.load: {time_ratio:.2f}x (target <= 1.5); / torch.load + read: "
              f"{r['seconds'] / touched['seconds']:.2f}x; peak RSS ratio {r['ratio']:.2f}, after reading every "
              f"weight once {r['ratio_after_use']:.2f} (target <= 1.25)")
        ok = ok and time_ratio <= 1.5 and max(r["ratio"], r["ratio_after_use"]) <= 1.25
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
