"""The speed fast path: per-device tuning of a loaded diffusers pipeline, and the autocast it runs under.

CPU: bf16 autocast where the CPU has native bf16 (avx512_bf16 / AMX, aarch64 bf16) with the UNet
stored in bf16, channels_last, at most one thread per physical core. CUDA: channels_last, fused QKV
projections. `--compile`: torch.compile of the UNet and the VAE decoder with a persistent inductor cache
(CUDA graphs on CUDA; inductor's C++ kernels on CPU).
`--no-fast-path` leaves the pipeline alone; `--no-half` keeps every computation in fp32. Imports only
torch (no gradio): bench/speed.py uses it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdui.settings import Settings

# CUDA graphs ("reduce-overhead") remove the per-kernel launch cost that bounds SD at batch 1.
DEFAULT_COMPILE_MODE = "reduce-overhead"
COMPILE_MODES = ("reduce-overhead", "max-autotune-no-cudagraphs", "default", "max-autotune")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
# Sizes and batches change between requests: allow a few specialisations before dynamo gives up.
DYNAMO_RECOMPILE_LIMIT = 32
CPUINFO = Path("/proc/cpuinfo")
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass
class FastPathInfo:
    """What `apply_fast_path` did to a pipeline, and why it skipped what it skipped."""

    device: str
    dtype: str = "float32"
    autocast_dtype: torch.dtype | None = None
    unet_weights: str | None = None  # set when the fast path changed the UNet's storage dtype
    channels_last: bool = False
    fused_qkv: bool = False
    compiled: list[str] = field(default_factory=list)
    compile_mode: str | None = None
    threads: int | None = None
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for logs and the UI's status text."""
        parts = [f"device {self.device} {self.dtype}"]
        autocast = str(self.autocast_dtype).removeprefix("torch.") if self.autocast_dtype else None
        parts.append(f"autocast {autocast}" if autocast else "no autocast")
        if self.unet_weights:
            parts.append(f"UNet weights {self.unet_weights}")
        if self.channels_last:
            parts.append("channels_last")
        if self.fused_qkv:
            parts.append("fused QKV")
        if self.compiled:
            parts.append(f"compiled {'+'.join(self.compiled)} ({self.compile_mode})")
        if self.threads:
            parts.append(f"{self.threads} threads")
        text = "fast path: " + ", ".join(parts)
        return text + (f"; skipped: {'; '.join(self.skipped)}" if self.skipped else "")


def _read_cpuinfo() -> str:
    return _read_text(CPUINFO)


@functools.lru_cache(maxsize=8)
def _read_text(path: Path) -> str:
    # Keyed by path: autocast_context asks on every batch, and tests point CPUINFO at their own files.
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bf16 natively (x86 avx512_bf16 / amx_bf16, aarch64 `bf16`).

    Without native bf16, oneDNN emulates it and bf16 is slower than fp32, so we stay in fp32.
    """
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            if flags & set(_X86_BF16_FLAGS) or "bf16" in flags:
                return True
    return False


def physical_cores(cpuinfo: str | None = None) -> int:
    """Physical cores this process may use: hyper-threads share one core's matmul units."""
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not key and core:
            cores.add((physical, core))
            physical = core = ""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    return max(1, min(len(cores), allowed) if cores else allowed)


def autocast_dtype(device: torch.device, settings: Settings) -> torch.dtype | None:
    """The autocast dtype the fast path runs `device` under, or None for plain execution.

    Only the CPU uses autocast: on CUDA the manager already loads the weights in fp16/bf16.
    """
    if not settings.fast_path or settings.no_half or torch.device(device).type != "cpu":
        return None
    return torch.bfloat16 if cpu_supports_bf16() else None


@contextlib.contextmanager
def autocast_context(device: torch.device, settings: Settings) -> Iterator[None]:
    """Wrap a pipeline call: bf16 autocast on a bf16-capable CPU, nothing otherwise."""
    dtype = autocast_dtype(device, settings)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


def apply_fast_path(pipe: Any, device: torch.device, dtype: torch.dtype, settings: Settings,
                    *, compile_mode: str = DEFAULT_COMPILE_MODE, cpu_bf16_weights: bool = True) -> FastPathInfo:
    """Tune a loaded pipeline in place for `device`; return what was applied.

    Call it once right after loading (placement and offload done or not: under `--lowvram` only
    channels_last applies, under `--medvram` nothing is compiled). `dtype` is the weights' dtype.
    Pipelines derived with `from_pipe` share the tuned modules.
    On a bf16 CPU the UNet is stored in bf16 (`cpu_bf16_weights`): from then on every call must run
    inside `autocast_context` (a call outside it raises a RuntimeError that says so).
    """
    device = torch.device(device)
    info = FastPathInfo(device=str(device), dtype=str(dtype).removeprefix("torch."))
    if not settings.fast_path:
        info.skipped.append("fast path off (--no-fast-path)")
        return info
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}; got {compile_mode!r}")
    if device.type == "cpu":
        _apply_cpu(pipe, settings, info, cpu_bf16_weights, compile_mode)
    elif device.type == "cuda":
        _apply_cuda(pipe, settings, info, compile_mode)
    else:
        info.skipped.append(f"no fast path for {device.type} yet")
    return info


def tune_vae(vae: torch.nn.Module, device: torch.device, settings: Settings,
             compile_mode: str = DEFAULT_COMPILE_MODE) -> torch.nn.Module:
    """What `apply_fast_path` does to a pipeline's VAE, for a VAE loaded on its own (a file chosen as `sd_vae`)."""
    device = torch.device(device)
    if not settings.fast_path or device.type not in ("cpu", "cuda"):
        return vae
    vae.to(memory_format=torch.channels_last)
    if settings.compile and not settings.lowvram and not settings.medvram:
        _enable_inductor_cache(Path(settings.cache_dir))
        vae.decoder.compile(mode=_without_cuda_graphs(compile_mode), dynamic=None)
    return vae


def _channels_last(pipe: Any, info: FastPathInfo) -> None:
    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.to(memory_format=torch.channels_last)
            info.channels_last = True


def _apply_cpu(pipe: Any, settings: Settings, info: FastPathInfo, bf16_weights: bool, mode: str) -> None:
    # Only ever lower the count: hyper-threads fight over one core's units, while a caller that chose
    # fewer threads (tests, a shared machine) knows better.
    cores = physical_cores()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
    info.threads = torch.get_num_threads()
    _channels_last(pipe, info)
    info.autocast_dtype = autocast_dtype(torch.device("cpu"), settings)
    if info.autocast_dtype is None:
        info.skipped.append("bf16: --no-half" if settings.no_half else "bf16: this CPU has no native bf16")
    elif bf16_weights and getattr(pipe, "unet", None) is not None:
        _bf16_unet(pipe.unet)
        info.unet_weights = "bfloat16"
    if not settings.compile:
        return
    # CUDA graphs do not exist on CPU; inductor's C++ kernels still remove most of the per-op dispatch.
    _compile(pipe, settings, info, _without_cuda_graphs(mode))


def _bf16_unet(unet: torch.nn.Module) -> None:
    """Store the UNet in bf16 (autocast would re-cast 860 M weights on every call), except two convs.

    `conv_out` stays fp32 and runs outside autocast so the noise prediction comes out in fp32: a bf16
    output would round cond and uncond independently, CFG multiplies that difference by its scale,
    and Euler-type schedulers would keep the latents in bf16 between steps. `conv_in` (first
    parameter) stays fp32 so `unet.dtype` still reads float32 and callers keep fp32 latents.
    """
    if getattr(unet, "_sdui_bf16", False):
        return
    unet.bfloat16()  # nn.Module.bfloat16: diffusers' .to(dtype) logs a spurious fp32 warning
    unet.conv_in.float()
    unet.conv_out.float()
    # A subclass rather than hooks: its `with autocast` traces under torch.compile, and the state dict is unchanged.
    unet.conv_out.__class__ = Fp32Conv2d
    unet.register_forward_pre_hook(_require_autocast)
    unet._sdui_bf16 = True


class Fp32Conv2d(torch.nn.Conv2d):
    """A Conv2d that computes in fp32 even inside a bf16 autocast region."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return super().forward(input.float())


def _require_autocast(module: torch.nn.Module, args: tuple) -> None:
    if not torch.is_autocast_enabled("cpu"):
        raise RuntimeError("this UNet holds bf16 weights (sdui fast path): call the pipeline inside "
                           "sdui.models.fast.autocast_context(device, settings)")


def _apply_cuda(pipe: Any, settings: Settings, info: FastPathInfo, mode: str) -> None:
    # Lets cuDNN pick the fastest convolution per shape (one trial per new size, then cached).
    torch.backends.cudnn.benchmark = True
    _channels_last(pipe, info)
    if settings.lowvram:
        # Sequential offload keeps weights on the meta device between uses: nothing to fuse or compile.
        info.skipped.append("fused QKV and compile: --lowvram")
        return
    info.fused_qkv = _fuse_qkv(pipe, info)
    if not settings.compile:
        return
    if settings.medvram:
        info.skipped.append("compile: --medvram moves the models every call")
        return
    _compile(pipe, settings, info, mode)


def _compile(pipe: Any, settings: Settings, info: FastPathInfo, mode: str) -> None:
    """torch.compile the UNet and the VAE decoder, kernels cached under the project's cache dir."""
    _enable_inductor_cache(Path(settings.cache_dir))
    dynamo_config = torch._dynamo.config
    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), DYNAMO_RECOMPILE_LIMIT))
    _compile_unet(pipe.unet, mode)
    info.compiled.append("unet")
    decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
    if decoder is not None:
        # The decoder runs once per image: CUDA graphs or autotuning would cost more than they save.
        decoder.compile(mode=_without_cuda_graphs(mode), dynamic=None)
        info.compiled.append("vae.decoder")
    info.compile_mode = mode


def _without_cuda_graphs(mode: str) -> str:
    return "max-autotune-no-cudagraphs" if mode == "max-autotune" else "default"


def _compile_unet(unet: torch.nn.Module, mode: str) -> None:
    """Replace the UNet's forward by a compiled one (hooks stay outside the graph); idempotent.

    dynamic=None: the first call compiles for its shape; a new size or batch recompiles once with those
    dims symbolic (automatic dynamic shapes) instead of once per size.
    """
    if getattr(unet, "_sdui_compiled", False):
        return
    compiled = torch.compile(unet.forward, mode=mode, fullgraph=True, dynamic=None)
    if mode not in CUDA_GRAPH_MODES:
        unet.forward = compiled
    else:
        def forward(*args: Any, **kwargs: Any) -> Any:
            return _copy_outputs(compiled(*args, **kwargs))
        unet.forward = forward
    unet._sdui_compiled = True


def _copy_outputs(output: Any) -> Any:
    """Move a CUDA-graph output out of the graph's static buffer, which the next replay overwrites.

    Samplers may keep the raw noise prediction across steps (PLMS at CFG 1 does): without the copy they
    would read the next step's output, or torch's "overwritten by a subsequent run" error.
    """
    if isinstance(output, tuple):
        return tuple(t.clone() if torch.is_tensor(t) else t for t in output)
    return type(output)(sample=output.sample.clone())


def _fuse_qkv(pipe: Any, info: FastPathInfo) -> bool:
    fused = False
    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is None or not hasattr(module, "fuse_qkv_projections"):
            continue
        try:
            module.fuse_qkv_projections()
            fused = True
        except ValueError as e:  # diffusers refuses models with added KV projections
            info.skipped.append(f"fused QKV on {name}: {e}")
    return fused


def _enable_inductor_cache(cache_dir: Path) -> None:
    """Keep inductor's compiled kernels and FX graphs under the project's cache so a restart reuses them."""
    target = cache_dir / "inductor"
    target.mkdir(parents=True, exist_ok=True)
    # Importing diffusers already sets the variable to torch's default (/tmp/torchinductor_<user>), so only
    # a value other than that default is the user's choice and wins; inductor reads it at each compile.
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == os.path.abspath(_torch_default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(target)
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    # SD's many 1x1 convolutions run faster as matmuls (diffusers' torch.compile guide).
    inductor_config.conv_1x1_as_mm = True


def _torch_default_cache_dir() -> str:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return default_cache_dir()
