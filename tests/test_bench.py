"""bench/load.py and bench/overhead.py run end to end on the tiny model (their figures are in bench/README.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run_bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_load_bench_loads_every_tiny_format_in_a_child_and_reports_its_peak(tmp_path):
    out = run_bench("bench/load.py", "--work", str(tmp_path))
    rows = re.findall(r"^tiny (\S+) +fp32 .* model +([\d.]+) MiB +peak RSS +([\d.]+) MiB .* ratio ([\d.]+)$",
                      out, flags=re.MULTILINE)
    assert [name for name, *_ in rows] == ["sdui-tiny-demo", "tiny.safetensors", "tiny.ckpt"], out
    # The same model from the three formats: the same bytes once loaded, well under the peak RSS of a process.
    assert len({model for _, model, _, _ in rows}) == 1 and float(rows[0][1]) > 1, out
    assert all(float(peak) > float(model) and float(ratio) > 0 for _, model, peak, ratio in rows), out
    assert (tmp_path / "tiny.safetensors").is_file() and (tmp_path / "tiny.ckpt").is_file()


def test_overhead_bench_gives_the_engine_and_plain_diffusers_the_same_pixels():
    # --limit 100: a shared CI box may time anything; what is checked is that the comparison runs and is fair.
    out = run_bench("bench/overhead.py", "--size", "64", "--steps", "4", "--runs", "5", "--threads", "1",
                    "--limit", "100")
    assert "identical pixels: True" in out, out
    ratio = float(re.search(r"ratio engine/direct = ([\d.]+)", out).group(1))
    engine = float(re.search(r"engine +median ([\d.]+) s", out).group(1))
    direct = float(re.search(r"direct +median ([\d.]+) s", out).group(1))
    assert engine > 0 and direct > 0 and ratio == pytest.approx(engine / direct, rel=0.03), out  # 3 decimals
