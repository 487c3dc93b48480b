"""The bench/ scripts (load, overhead, lora, hires, upscale) run end to end on tiny sizes (bench/README.md)."""

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
    rows = re.findall(r"^tiny (\S+) +fp32 .* model +([\d.]+) MiB +peak RSS +([\d.]+) MiB .* ratio ([\d.]+);",
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
        # The target is for the fast path: on a CPU without it (no native bf16) the bench reports it n/a (None).
        assert apply["layers"] > 50 and apply["ok"] in (None, apply["median_s"] <= 1.0), out
    assert lines["same"]["fuse_count_before"] == lines["same"]["fuse_count_after"] == 1 and lines["same"]["ok"], out
    compiled = lines["compile"]
    assert compiled["graphs"] == 1 and compiled["graphs_after_each"] == [1, 1, 1, 1], out
    assert all(compiled["allclose"]) and min(compiled["rel_change"]) > 1e-3 and compiled["ok"], out
    # Targets are enforced with --check: a limit nobody meets exits 1 and names the figures missed.
    done = subprocess.run([sys.executable, "bench/lora.py", "--tiny", "--check", "--figures", "apply", "same",
                           "--apply-rounds", "2", "--apply-limit", "0"], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)
    if lines["apply"]["ok"] is not None:
        assert done.returncode == 1 and "missed: apply, apply_keep_buffers\n" in done.stdout, done.stdout + done.stderr
    else:  # no fast path on this CPU (no native bf16): the apply target does not apply, so it cannot be missed
        assert done.returncode == 0 and "target median <= 0 s (fast path): n/a" in done.stdout, done.stdout
    assert re.search(r"^same: .* target .*: ok$", done.stdout, flags=re.MULTILINE), done.stdout


def read_figures(folder: Path, prefix: str) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob(f"{prefix}-*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_hires_bench_gives_the_engine_and_the_two_passes_by_hand_the_same_pixels(tmp_path):
    # Batch 2 with a second pass longer than the first: each image's own seed in both passes, A1111's step rule.
    out = run_bench("bench/hires.py", "--tiny", "--steps", "3", "--hires-steps", "5", "--denoising", "0.7",
                    "--batch", "2", "--runs", "3", "--threads", "1", "--limit", "100", "--out", str(tmp_path))
    (figure,) = read_figures(tmp_path, "hires")
    # The bench's own criterion: identical, or at most 1 level apart (some CPUs' kernels round the two paths apart).
    diff = figure["max_abs_pixel_diff"]
    assert figure["figure"] == "overhead" and diff <= 1 and figure["identical"] == (diff == 0), out
    assert ("pixels: identical" if diff == 0 else f"pixels: max abs diff {diff}") in out, out
    assert (figure["size"], figure["hires_size"], figure["batch"]) == (64, 128, 2), out
    assert figure["hires_steps"] == figure["hires_steps_run"] == 5, out  # A1111's rule: exactly the hires steps
    assert figure["engine_job_steps"] == 3 + 5, out  # the engine's progress counted both passes
    engine, by_hand = figure["engine_median_s"], figure["by_hand_median_s"]
    assert engine > 0 and by_hand > 0 and len(figure["engine_times_s"]) == len(figure["by_hand_times_s"]) == 3, out
    assert figure["ratio"] == pytest.approx(engine / by_hand) and f"ratio engine/by hand = {figure['ratio']:.3f}" in out


def test_upscale_bench_measures_a_real_size_rrdbnet_4x_upscale_in_a_fresh_child(tmp_path):
    out = run_bench("bench/upscale.py", "--figures", "upscale", "--size", "32", "--threads", "1",
                    "--out", str(tmp_path))
    (figure,) = read_figures(tmp_path, "upscale")
    assert figure["out_size"] == [128, 128] and (figure["nf"], figure["nb"]) == (64, 23), out
    assert figure["model_bytes"] > 60 * 2**20 and figure["runs"][0]["peak_reset"], out  # RealESRGAN_x4plus: 64 MiB
    # The child sees the model it loads: memory rises by about its size, and the peak is at least that.
    assert figure["loaded_bytes"] - figure["idle_bytes"] > figure["model_bytes"] / 2, out
    assert figure["above_idle_bytes"] >= figure["loaded_bytes"] - figure["idle_bytes"], out
    assert figure["load_s"] > 0 and figure["upscale_s"] > 0, out
    assert figure["ok"] == (figure["above_idle_bytes"] <= 2 * 10**9) and "target: ok" in out, out


def test_upscale_bench_decodes_with_and_without_vae_tiling_in_fresh_children(tmp_path):
    out = run_bench("bench/upscale.py", "--figures", "decode", "--decode-size", "128", "--tile", "64",
                    "--threads", "1", "--out", str(tmp_path))
    figures = {(f["figure"], f.get("variant")): f for f in read_figures(tmp_path, "upscale")}
    untiled, tiled = figures[("decode", "untiled")], figures[("decode", "tiled")]
    ratio = figures[("decode_ratio", None)]
    assert untiled["decode_s"] > 0 and tiled["decode_s"] > 0 and untiled["above_idle_bytes"] > 0, out
    assert ratio["memory_ratio"] == pytest.approx(tiled["above_idle_bytes"] / untiled["above_idle_bytes"]), out
    assert ratio["time_ratio"] == pytest.approx(tiled["decode_s"] / untiled["decode_s"]), out
    # Tiling really happened: tiles are blended (pixels differ from the one-piece decode) and need less memory.
    assert ratio["max_abs_pixel_diff"] > 0 and ratio["memory_ratio"] < 1, out
    assert f"memory above idle {ratio['memory_ratio']:.3f}, time {ratio['time_ratio']:.3f}" in out, out
