"""bench/load.py, bench/overhead.py and bench/lora.py run end to end on the tiny model (figures: bench/README.md)."""

from __future__ import annotations

import json
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


def test_lora_bench_reports_consistent_figures_and_fails_only_on_an_enforced_miss(tmp_path):
    out = run_bench("bench/lora.py", "--tiny", "--compile", "--threads", "1", "--rounds", "2", "--steps", "2",
                    "--apply-rounds", "3", "--out", str(tmp_path))
    lines = {json.loads(line)["figure"]: json.loads(line) for path in tmp_path.glob("lora-*.jsonl")
             for line in path.read_text(encoding="utf-8").splitlines()}
    assert sorted(lines) == ["apply", "apply_keep_buffers", "compile", "same", "step"], out
    step = lines["step"]
    # A shared box may time anything: what is checked is that each printed ratio and verdict follows from its numbers.
    assert step["ratio"] == pytest.approx(step["median"]["with"]["wall"] / step["median"]["without"]["wall"]), out
    assert len(step["runs"]["with"]) == len(step["runs"]["without"]) == 4 and step["repeatable"] and step["finite"]
    assert step["rel_change_with_lora"] > 1e-3 and step["ok"] == (step["ratio"] <= 1.03), out
    assert f"ratio {step['ratio']:.3f}" in out and ("MISSED" in out.split("step:")[1].splitlines()[0]) != step["ok"]
    for name in ("apply", "apply_keep_buffers"):
        apply = lines[name]
        assert len(apply["times_s"]) == 3 and apply["median_s"] > 0 and apply["first_s"] > 0, out
        assert apply["layers"] > 50 and apply["ok"] == (apply["median_s"] <= 1.0), out
    assert lines["same"]["fuse_count_before"] == lines["same"]["fuse_count_after"] == 1 and lines["same"]["ok"], out
    compiled = lines["compile"]
    assert compiled["graphs"] == 1 and compiled["graphs_after_each"] == [1, 1, 1, 1], out
    assert all(compiled["allclose"]) and min(compiled["rel_change"]) > 1e-3 and compiled["ok"], out
    # Targets are enforced with --check: a limit nobody meets exits 1 and names the figures missed.
    done = subprocess.run([sys.executable, "bench/lora.py", "--tiny", "--check", "--figures", "apply", "same",
                           "--apply-rounds", "2", "--apply-limit", "0"], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and "missed: apply, apply_keep_buffers\n" in done.stdout, done.stdout + done.stderr
    assert re.search(r"^same: .* target .*: ok$", done.stdout, flags=re.MULTILINE), done.stdout
