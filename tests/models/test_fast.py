"""The fast path on the tiny model: bf16 latents agree with eager fp32, fallbacks, the CUDA branch's
structural changes (checked on CPU tensors), and bench/speed.py --tiny as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdui.models import fast
from sdui.models.fast import apply_fast_path, autocast_context, cpu_supports_bf16, physical_cores
from sdui.models.tiny import DEMO_NAME
from sdui.settings import Settings
from tests.conftest import torch_threads

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
# bf16 keeps 8 mantissa bits; over 20 steps with CFG 7 the tiny model's latents drift 0.67-0.74 % (issue 7: <= 1 %).
BF16_TOLERANCE = 1e-2
FP32_TOLERANCE = 1e-4
X86_CPUINFO = "processor\t: 0\nphysical id\t: 0\ncore id\t: 0\nflags\t\t: fpu sse avx2 avx512f {extra}\n\n"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def load_tiny(tiny_model_dir: Path, scheduler: str | None = None):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir / DEMO_NAME, local_files_only=True)
    if scheduler == "DPM++ 2M":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def final_latents(pipe, settings: Settings | None, steps: int = 20, size: int = 128,
                  cfg: float = 7.0) -> torch.Tensor:
    """Latents after the last step for a fixed seed; `settings` None = plain eager call."""
    gen = torch.Generator("cpu").manual_seed(1234)
    kwargs = dict(prompt="a photo of a cat", negative_prompt="blurry", num_inference_steps=steps,
                  guidance_scale=cfg, height=size, width=size, generator=gen, output_type="latent")
    with torch.no_grad():
        if settings is None:
            return pipe(**kwargs).images
        with autocast_context(CPU, settings):
            return pipe(**kwargs).images


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm())


@pytest.fixture(scope="module")
def references(tiny_model_dir) -> dict[str, torch.Tensor]:
    """Eager fp32 latents of the untouched tiny model, per scheduler."""
    return {name: final_latents(load_tiny(tiny_model_dir, name), None) for name in ("model's own", "DPM++ 2M")}


@pytest.mark.parametrize("scheduler", ["model's own", "DPM++ 2M"])
def test_fast_path_latents_agree_with_eager_fp32(tiny_model_dir, references, scheduler, keep_threads):
    pipe = load_tiny(tiny_model_dir, scheduler)
    settings = Settings(device="cpu")
    info = apply_fast_path(pipe, CPU, torch.float32, settings)
    latents = final_latents(pipe, settings)
    assert latents.dtype == torch.float32 and torch.isfinite(latents).all()
    err = rel_err(latents, references[scheduler])
    if cpu_supports_bf16():
        assert info.autocast_dtype == torch.bfloat16 and info.unet_weights == "bfloat16", info.describe()
        assert 0 < err <= BF16_TOLERANCE, f"relative error {err:.4f} vs eager fp32 ({info.describe()})"
    else:
        assert info.autocast_dtype is None, info.describe()
        assert err <= FP32_TOLERANCE, f"relative error {err:.2e} vs eager fp32 ({info.describe()})"
    assert info.channels_last and pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    # conv_in stays fp32 so callers that read unet.dtype (diffusers, the engine) keep fp32 latents.
    assert pipe.unet.dtype == torch.float32


def test_cpu_without_bf16_falls_back_to_fp32(tiny_model_dir, references, tmp_path, monkeypatch, keep_threads):
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_CPUINFO.format(extra="avx512_vnni"), encoding="utf-8")
    monkeypatch.setattr(fast, "CPUINFO", fake)
    pipe = load_tiny(tiny_model_dir)
    settings = Settings(device="cpu")
    info = apply_fast_path(pipe, CPU, torch.float32, settings)
    assert info.autocast_dtype is None and info.unet_weights is None
    assert any("no native bf16" in s for s in info.skipped), info.skipped
    assert rel_err(final_latents(pipe, settings), references["model's own"]) <= FP32_TOLERANCE


def test_no_half_keeps_fp32_and_no_fast_path_changes_nothing(tiny_model_dir, references, keep_threads):
    pipe = load_tiny(tiny_model_dir)
    settings = Settings(device="cpu", no_half=True)
    info = apply_fast_path(pipe, CPU, torch.float32, settings)
    assert info.autocast_dtype is None and "bf16: --no-half" in info.skipped
    assert rel_err(final_latents(pipe, settings), references["model's own"]) <= FP32_TOLERANCE

    plain = load_tiny(tiny_model_dir)
    off = Settings(device="cpu", fast_path=False)
    info = apply_fast_path(plain, CPU, torch.float32, off)
    assert not info.channels_last and info.autocast_dtype is None and info.skipped
    assert all(p.dtype == torch.float32 for p in plain.unet.parameters())
    assert torch.equal(final_latents(plain, off), references["model's own"])


def test_bf16_unet_outside_autocast_says_how_to_call_it(tiny_model_dir, references, tmp_path, monkeypatch,
                                                        keep_threads):
    fake = tmp_path / "cpuinfo"  # bf16 flags, so this runs (emulated if need be) on any CPU
    fake.write_text(X86_CPUINFO.format(extra="avx512_bf16"), encoding="utf-8")
    monkeypatch.setattr(fast, "CPUINFO", fake)
    pipe = load_tiny(tiny_model_dir)
    settings = Settings(device="cpu")
    apply_fast_path(pipe, CPU, torch.float32, settings)
    apply_fast_path(pipe, CPU, torch.float32, settings)  # a second call must not stack hooks
    with pytest.raises(RuntimeError, match="autocast_context"):
        final_latents(pipe, None, steps=2, size=64)
    assert rel_err(final_latents(pipe, settings), references["model's own"]) <= BF16_TOLERANCE
    gen = torch.Generator("cpu").manual_seed(1)
    with torch.no_grad(), autocast_context(CPU, settings):
        image = pipe("a cat", num_inference_steps=3, height=64, width=64, generator=gen).images[0]
    assert image.size == (64, 64)


@pytest.fixture
def compile_config(monkeypatch):
    """Put back the global torch settings the compile path changes (monkeypatch would delete config keys)."""
    import torch._inductor.config as inductor_config

    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    saved = [(torch._dynamo.config, "recompile_limit"), (inductor_config, "conv_1x1_as_mm"),
             (inductor_config, "fx_graph_cache")]
    values = [getattr(module, name) for module, name in saved]
    yield
    for (module, name), value in zip(saved, values):
        setattr(module, name, value)


def test_cuda_branch_fuses_qkv_and_marks_compile(tiny_model_dir, references, tmp_path, compile_config):
    """The CUDA branch's changes are device-agnostic until a compiled module runs: check them on CPU."""
    pipe = load_tiny(tiny_model_dir)
    info = apply_fast_path(pipe, torch.device("cuda"), torch.float32, Settings(cache_dir=tmp_path))
    assert info.fused_qkv and info.channels_last and not info.compiled and info.autocast_dtype is None
    # Fused projections are the same arithmetic: latents match the unfused eager run.
    assert rel_err(final_latents(pipe, None), references["model's own"]) <= FP32_TOLERANCE

    compiled = load_tiny(tiny_model_dir)
    info = apply_fast_path(compiled, torch.device("cuda"), torch.float16, Settings(cache_dir=tmp_path, compile=True))
    assert info.compiled == ["unet", "vae.decoder"] and info.compile_mode == "reduce-overhead"
    assert compiled.unet._sdui_compiled and "forward" in vars(compiled.unet)
    assert compiled.vae.decoder._compiled_call_impl is not None and torch._dynamo.config.recompile_limit >= 32
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor") and (tmp_path / "inductor").is_dir()

    lowvram = apply_fast_path(load_tiny(tiny_model_dir), torch.device("cuda"), torch.float16,
                              Settings(cache_dir=tmp_path, compile=True, lowvram=True))
    assert not lowvram.fused_qkv and not lowvram.compiled and "--lowvram" in lowvram.describe()


def static_output_compile(fn, mode=None, **kwargs):
    """A stand-in for torch.compile that hands back outputs as CUDA graphs do: one static buffer per shape,
    overwritten by the next call (the real thing needs a GPU). Modes without CUDA graphs run `fn` as is."""
    if mode not in fast.CUDA_GRAPH_MODES:
        return fn
    buffers: dict[tuple, torch.Tensor] = {}

    def replay(*args, **kw):
        out = fn(*args, **kw)
        sample = out[0] if isinstance(out, tuple) else out.sample
        static = buffers.setdefault(tuple(sample.shape), torch.empty_like(sample))
        static.copy_(sample)
        return (static,) if isinstance(out, tuple) else type(out)(sample=static)
    return replay


def test_cuda_graph_outputs_are_copied_before_a_sampler_keeps_them(tiny_model_dir, tmp_path, monkeypatch,
                                                                   compile_config):
    """PLMS at CFG 1 keeps the raw noise predictions of past steps; a static graph buffer would alias them."""
    monkeypatch.setattr(torch, "compile", static_output_compile)
    reference = final_latents(load_tiny(tiny_model_dir), None, steps=8, size=64, cfg=1.0)

    pipe = load_tiny(tiny_model_dir)
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    info = apply_fast_path(pipe, torch.device("cuda"), torch.float32, Settings(cache_dir=tmp_path, compile=True))
    assert info.compile_mode == "reduce-overhead"
    assert rel_err(final_latents(pipe, None, steps=8, size=64, cfg=1.0), reference) <= FP32_TOLERANCE


def test_new_sizes_and_batches_recompile_a_bounded_number_of_times(tiny_pipeline, tmp_path, monkeypatch,
                                                                   compile_config, keep_threads):
    """Automatic dynamic shapes: five request shapes cost three graphs, not five (no recompile storm)."""
    import copy

    graphs: list[list] = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(example_inputs)
        return graph_module.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, **kw: real_compile(fn, backend=counting_backend, **kw))
    pipe = copy.deepcopy(tiny_pipeline)
    eager = copy.deepcopy(tiny_pipeline.unet)
    torch._dynamo.reset()
    try:
        apply_fast_path(pipe, CPU, torch.float32, Settings(cache_dir=tmp_path, compile=True, no_half=True))
        assert pipe.unet._sdui_compiled
        for batch, side in [(2, 8), (2, 12), (2, 16), (4, 16), (8, 8)]:
            sample = torch.randn(batch, 4, side, side)
            text = torch.randn(batch, 77, pipe.unet.config.cross_attention_dim)
            with torch.no_grad():
                out = pipe.unet(sample, torch.tensor(500), text).sample
                expected = eager(sample, torch.tensor(500), text).sample
            assert out.shape == (batch, 4, side, side) and torch.allclose(out, expected, atol=1e-4)
    finally:
        torch._dynamo.reset()
    assert 2 <= len(graphs) <= 3, f"{len(graphs)} graphs compiled for 5 shapes"


def test_the_bf16_unet_compiles_as_one_graph_on_cpu(tiny_model_dir, references, tmp_path, monkeypatch,
                                                   compile_config, keep_threads):
    """fullgraph=True: any graph break raises. The fp32 conv_out inside bf16 autocast must trace (dynamo's
    eager backend here: inductor's C++ compile of this graph takes ~80 s; bench/README.md has its timings)."""
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_CPUINFO.format(extra="avx512_bf16"), encoding="utf-8")
    monkeypatch.setattr(fast, "CPUINFO", fake)
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, **kw: real_compile(fn, backend="eager", **kw))
    pipe = load_tiny(tiny_model_dir)
    settings = Settings(cache_dir=tmp_path, compile=True)
    torch._dynamo.reset()
    try:
        info = apply_fast_path(pipe, CPU, torch.float32, settings)
        assert info.unet_weights == "bfloat16" and info.compiled == ["unet", "vae.decoder"], info.describe()
        assert info.compile_mode == "default"  # no CUDA graphs on CPU
        latents = final_latents(pipe, settings)
    finally:
        torch._dynamo.reset()
    assert latents.dtype == torch.float32
    assert rel_err(latents, references["model's own"]) <= BF16_TOLERANCE


def test_bad_compile_mode_is_a_clear_error(tiny_pipeline):
    with pytest.raises(ValueError, match="compile_mode must be one of .*got 'fastest'"):
        apply_fast_path(tiny_pipeline, CPU, torch.float32, Settings(), compile_mode="fastest")


@pytest.mark.parametrize(("text", "expected"), [
    (X86_CPUINFO.format(extra="avx512_bf16"), True),
    (X86_CPUINFO.format(extra="amx_tile amx_bf16"), True),
    (X86_CPUINFO.format(extra="avx512_vnni"), False),
    ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),
    ("processor\t: 0\nFeatures\t: fp asimd\n", False),
    ("", False),
])
def test_cpu_supports_bf16_reads_the_flags(text, expected):
    assert cpu_supports_bf16(text) is expected


def test_physical_cores_counts_cores_not_hyperthreads():
    blocks = [f"processor\t: {i}\nphysical id\t: 0\ncore id\t: {i % 2}\n" for i in range(4)]
    assert physical_cores("\n".join(blocks) + "\n") == min(2, len(os.sched_getaffinity(0)))
    assert physical_cores("") == len(os.sched_getaffinity(0))


def test_speed_bench_tiny_writes_json_lines(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "bench/speed.py", "--tiny", "--threads", "1", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    files = list(tmp_path.glob("speed-*.jsonl"))
    assert len(files) == 1, files
    lines = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()]
    by_key = {(d["figure"], d["variant"]): d for d in lines}
    for key in [("step", "baseline"), ("step", "fast"), ("pipeline", "baseline"), ("pipeline", "fast")]:
        figure = by_key[key]
        assert len(figure["times_s"]) >= 5 and figure["median_s"] > 0, figure
        assert figure["ratio"] == pytest.approx(by_key[(key[0], "baseline")]["median_s"] / figure["median_s"])
        assert figure["it_per_s"] > 0 and figure["tflops"] > 0 and figure["device"] == "cpu"
    assert by_key[("step", "baseline")]["ratio"] == 1.0
    assert by_key[("step", "fast")]["finite"] and by_key[("step", "fast")]["rel_err_vs_baseline"] < 5e-2
    assert ("engine", "engine") in by_key and by_key[("engine", "engine")]["ratio"] > 0


def test_inductor_cache_goes_under_the_cache_dir_unless_the_user_chose_one(tmp_path, compile_config, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing diffusers leaves behind
    fast._enable_inductor_cache(tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    fast._enable_inductor_cache(tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


def test_a_restart_with_compile_reuses_the_kernels_of_the_first_start(tmp_path):
    """bench/speed.py's restart figure: two fresh processes run the Engine with --compile over one cache dir.

    Real inductor on CPU (the tiny model's fp32 UNet): the first start compiles, the second loads every graph.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "bench/speed.py", "--tiny", "--compile", "--figures", "restart",
                           "--threads", "1", "--repeats", "3", "--cache-dir", str(tmp_path), "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in next(tmp_path.glob("speed-*.jsonl")).read_text(encoding="utf-8").splitlines()]
    runs = {d["variant"]: d for d in lines if d["figure"] == "restart"}
    cold, warm = runs["cold"], runs["warm"]
    assert cold["fxgraph_cache_hit"] == 0 and cold["fxgraph_cache_miss"] >= 2, cold  # UNet and VAE decoder
    assert warm["fxgraph_cache_hit"] == cold["fxgraph_cache_miss"] and warm["fxgraph_cache_miss"] == 0, warm
    assert warm["steady_s"] > 0 and len(warm["times_s"]) == 3 and warm["ratio"] > 0
    assert any((tmp_path / "restart-bench" / "inductor").rglob("*")), "no kernels under the project's cache dir"
