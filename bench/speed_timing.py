"""Timing and reporting for bench/speed.py: interleaved synchronised timing, figures, JSON lines."""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, warmup: int,
                     repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds per call of each fn: warm-up calls, then rounds calling every fn once.

    CPU seconds say what the work cost when other jobs share the machine and stretch the wall clock.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


class Recorder:
    """Prints each figure and appends it as one JSON line to <out>/speed-<device>-<date>.jsonl."""

    def __init__(self, out: Path | None, device: torch.device):
        self.env = _environment(device)
        self.path = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            slug = "".join(c if c.isalnum() else "-" for c in self.env["device_name"]).strip("-").lower()
            self.path = out / f"speed-{slug}-{datetime.date.today().isoformat()}.jsonl"

    def add(self, **figure: Any) -> None:
        line = {**figure, **self.env}
        keys = ("figure", "shape", "variant", "size", "batch", "median_s", "s_per_image", "it_per_s", "ratio",
                "tflops", "cpu_ratio", "peak_gib", "rel_err_vs_baseline", "seconds_to_full_speed", "first_image_s",
                "steady_s", "fxgraph_cache_hit", "host_syncs", "preview_loop_syncs", "note")
        print("  ".join(f"{k}={_fmt(line[k])}" for k in keys if k in line), flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")


class FigureLog:
    """Prints each figure's own line and appends the figure as one JSON line to <out>/<name>-<device>-<date>.jsonl;
    `missed` names the figures that missed their target."""

    def __init__(self, out: Path | None, device: torch.device, name: str):
        base = Recorder(out, device)
        self.env = base.env
        self.path = base.path.with_name(f"{name}-" + base.path.name.removeprefix("speed-")) if base.path else None
        self.missed: list[str] = []

    def add(self, line: str = "", **figure: Any) -> None:
        print(line, flush=True)
        if figure.get("ok") is False:
            self.missed.append(figure["figure"])
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({**figure, **self.env}) + "\n")

    def finish(self) -> int:
        """Say where the figures went and which missed their target; the exit status (1 when any missed)."""
        if self.path is not None:
            print(f"wrote {self.path}", flush=True)
        if self.missed:
            print(f"missed: {', '.join(self.missed)}", flush=True)
        return 1 if self.missed else 0


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _environment(device: torch.device) -> dict[str, Any]:
    import diffusers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    return {"device": device.type, "device_name": name, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "diffusers": diffusers.__version__, "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _cpu_name() -> str:
    from sdui.models.fast import CPUINFO

    for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines() if CPUINFO.exists() else []:
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "cpu"


def count_host_syncs(fn: Callable[[], Any]) -> int:
    """How many times one call of `fn` makes the host wait for the GPU (torch's CUDA sync debug mode)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def preview_loop_syncs(device: torch.device, steps: int = 20) -> int:
    """Host syncs of a denoising loop's worth of preview start/poll calls (the engine's per-step work); 0 = none."""
    from sdui.engine.preview import PreviewTaker

    latent = torch.randn(4, 64, 64, device=device)
    taker = PreviewTaker()
    taker.start(latent, 0)  # first call: the coefficient table moves to the device once
    taker.finish()

    def loop() -> None:
        for step in range(steps):
            latent.mul_(1.01)
            if step % 5 == 4:
                taker.start(latent, step)
            taker.poll()
    syncs = count_host_syncs(loop)
    taker.finish()
    return syncs


def figure_stats(times: tuple[dict, dict], name: str, images: int, iters: int, flops: float) -> dict[str, Any]:
    wall, cpu = times
    med = statistics.median(wall[name])
    return {"median_s": med, "times_s": [round(t, 5) for t in wall[name]], "s_per_image": med / images,
            "it_per_s": iters / med, "ratio": statistics.median(wall["baseline"]) / med,
            "tflops": flops / med / 1e12, "cpu_median_s": statistics.median(cpu[name]),
            "cpu_ratio": statistics.median(cpu["baseline"]) / statistics.median(cpu[name])}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.float(), ref.float()
    return float((out - ref).norm() / ref.norm())
