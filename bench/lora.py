"""LoRA benchmark: what a fused LoRA costs per step, how long apply + restore takes, and that compile survives it.

Random weights of the real SD1.5 UNet shape (bench/speed_models.py), run as production runs it on this CPU
(sdui's fast path: bf16 weights, channels_last, bf16 autocast; `--no-fast-path`: plain fp32). The LoRA is a
kohya LoCon written here (rank 32 on every attention linear / 1x1 conv and every ResNet and resampler conv),
read back with `read_lora` and fused with `LoraPatcher`, as a job's `<lora:...>` tag does.

    python bench/lora.py --tiny                                  # seconds, any CPU; targets not enforced
    python bench/lora.py --threads 2 --compile --out bench/results
    python bench/lora.py --threads 2 --no-fast-path              # the same in fp32

Figures, one line each (and one JSON line each into --out): `step` (one UNet step with CFG, batch 2 latents,
without vs with the LoRA fused: blocks of --steps steps, the order alternating round by round; target: ratio
<= 1.03), `apply` (`patcher.apply([use])` + `patcher.restore()`: median of --apply-rounds after the first, which
is given apart; target <= 1 s for the fast path), `apply_keep_buffers` (the same with `keep_buffers=True`),
`same` (the same set applied again: no work, `fuse_count` unchanged) and, with --compile, `compile` (the UNet's
forward under torch.compile with a counting backend through LoRA sets none, A, B, none: 1 graph, outputs equal
to eager). Exits 1 when a target is missed, unless --no-check or --tiny (--check enforces them anyway).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from speed_timing import ROOT, FigureLog, rel_err

FIGURES = ("step", "apply", "same", "compile")
STEP_RATIO_LIMIT = 1.03  # with / without the LoRA fused: the delta is in the weights, so ~1.0 + noise
APPLY_RESTORE_LIMIT_S = 1.0  # one apply + restore on the fast-path SD1.5 UNet
SAME_SET_LIMIT_S = 0.01  # "no work"
ALLCLOSE = {"rtol": 1e-4, "atol": 1e-4}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="sdui's tiny UNet at 128²: seconds; targets not enforced")
    p.add_argument("--no-fast-path", action="store_true", help="plain fp32 UNet, no autocast")
    p.add_argument("--compile", action="store_true", help="also the `compile` figure (counting backend)")
    p.add_argument("--figures", nargs="+", choices=FIGURES, default=None, help="default: all but compile")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="timed steps per block (default 2, tiny 5)")
    p.add_argument("--rounds", type=int, default=None, help="blocks per variant (default 6, tiny 6)")
    p.add_argument("--apply-rounds", type=int, default=None, help="apply + restore rounds (default 6, tiny 10)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="leave glibc's malloc as it is (app.py tunes it at start: sdui/models/memory.py)")
    p.add_argument("--step-limit", type=float, default=STEP_RATIO_LIMIT)
    p.add_argument("--apply-limit", type=float, default=APPLY_RESTORE_LIMIT_S)
    check = p.add_mutually_exclusive_group()
    check.add_argument("--no-check", action="store_true", help="report only; exit 0 whatever the figures")
    check.add_argument("--check", action="store_true", help="enforce the targets with --tiny too")
    p.add_argument("--work", type=Path, default=None, help="folder for the LoRA files (default: a temp dir)")
    p.add_argument("--out", type=Path, default=None, help="folder for the JSON lines file")
    a = p.parse_args(argv)
    a.figures = a.figures or [f for f in FIGURES if f != "compile" or a.compile]
    a.steps = a.steps or (5 if a.tiny else 2)
    a.rounds = a.rounds or 6
    a.apply_rounds = a.apply_rounds or (10 if a.tiny else 6)
    a.enforce = a.check or not (a.no_check or a.tiny)
    if min(a.steps, a.rounds, a.apply_rounds, a.rank) < 1:
        p.error(f"--steps, --rounds, --apply-rounds and --rank must be >= 1; got {a.steps}, {a.rounds}, "
                f"{a.apply_rounds}, {a.rank}")
    return a


def verdict(ok: bool | None, rule: str) -> str:
    return f"target {rule}: " + ("n/a" if ok is None else "ok" if ok else "MISSED")


def lora_layers(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The layers a kohya LoCon trains: every linear / conv of the transformer blocks, every ResNet / resampler conv."""
    out = []
    for name, module in unet.named_modules():
        conv = isinstance(module, torch.nn.Conv2d) and (".resnets." in name or "samplers." in name)
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and (".attentions." in name or conv):
            out.append((name, module))
    return out


def write_locon(path: Path, unet: torch.nn.Module, rank: int, seed: int) -> Path:
    """A kohya LoCon .safetensors (fp16, alpha = rank / 2) whose delta is ~10 % of each random weight."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in lora_layers(unet):
        out_ch, in_ch, *kernel = module.weight.shape
        r = min(rank, out_ch, in_ch)
        key = "lora_unet_" + name.replace(".", "_")
        fan_in = in_ch * (kernel[0] * kernel[1] if kernel else 1)
        down = torch.randn(r, in_ch, *kernel, generator=gen) / fan_in ** 0.5
        up = torch.randn(out_ch, r, *([1, 1] if kernel else []), generator=gen) * 0.2 / r ** 0.5
        tensors[f"{key}.lora_down.weight"] = down.half()
        tensors[f"{key}.lora_up.weight"] = up.half()
        tensors[f"{key}.alpha"] = torch.tensor(r / 2, dtype=torch.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
                                            "ss_network_alpha": str(rank / 2),
                                            "ss_network_args": f'{{"conv_dim": "{rank}", "conv_alpha": "{rank / 2}"}}'})
    return path


def build(args, device: torch.device, settings):
    """The UNet as production runs it (fast path or not), its step inputs, and what the fast path did."""
    import speed_models as sm

    from sdui.models.fast import apply_fast_path

    if args.tiny:
        from sdui.models.tiny import build_tiny_pipeline

        unet, size = build_tiny_pipeline().unet.eval(), 128
    else:
        unet, size = sm.build_unet(sm.SHAPES["sd15"], device), 512
    info = apply_fast_path(SimpleNamespace(unet=unet, vae=None), device, torch.float32, settings)
    return unet, sm.unet_inputs(unet, size, 1, device, torch.float32), info


def make_step(unet, inputs, device, settings):
    from sdui.models.fast import autocast_context

    def step() -> torch.Tensor:
        with torch.no_grad(), autocast_context(device, settings):
            return unet(**inputs).sample
    return step


def bench_step(args, unet, inputs, use, device, settings, rec, common) -> None:
    """Blocks of steps without / with the LoRA fused (ABBA order), on the same tensors; medians of all steps.

    User and system CPU time and minor page faults are kept apart: the weights are the same size either way,
    but the backups held while a LoRA is fused change where the malloc heap puts (and returns) activations.
    """
    from sdui.networks.patch import LoraPatcher

    patcher, step = LoraPatcher({"unet": unet}), make_step(unet, inputs, device, settings)
    first = {"without": step()}  # warm-up, one of each
    patcher.apply([use])
    first["with"] = step()
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    last = {}
    for r in range(args.rounds):
        for name in ("without", "with") if r % 2 == 0 else ("with", "without"):
            patcher.apply([use]) if name == "with" else patcher.restore()
            for _ in range(args.steps):
                before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                last[name] = step()
                wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
                runs[name].append({"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime
                                   - before.ru_stime, "minflt": after.ru_minflt - before.ru_minflt})
    patcher.restore()
    med = {n: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for n, rs in runs.items()}
    without, with_ = med["without"], med["with"]
    ratio, user_ratio = with_["wall"] / without["wall"], with_["user"] / without["user"]
    cpu_ratio = (with_["user"] + with_["sys"]) / (without["user"] + without["sys"])
    ok = ratio <= args.step_limit
    change = rel_err(last["with"], last["without"])
    repeatable = bool(torch.equal(last["without"], first["without"]) and torch.equal(last["with"], first["with"]))
    parts = {n: f"{m['wall']:.4f} s (user {m['user']:.3f} + sys {m['sys']:.3f} s, {m['minflt']:.0f} page faults)"
             for n, m in med.items()}
    rec.add(f"step: without LoRA median {parts['without']}, with LoRA {parts['with']}, ratio {ratio:.3f} "
            f"(cpu {cpu_ratio:.3f}, user {user_ratio:.3f}), {len(runs['with'])} steps each, output change "
            f"{change:.3g}, repeatable {repeatable}; {verdict(ok, f'ratio <= {args.step_limit:g}')}",
            figure="step", **common, median=med, runs=runs, ratio=ratio, cpu_ratio=cpu_ratio, user_ratio=user_ratio,
            steps_per_block=args.steps, rounds=args.rounds, rel_change_with_lora=change, repeatable=repeatable,
            finite=bool(torch.isfinite(last["with"]).all()), limit=args.step_limit, ok=ok)


def bench_apply(args, unet, use, rec, common, keep_buffers: bool, enforce: bool) -> None:
    """apply([use]) + restore() rounds with a fresh patcher; the first round (index, first touch) apart."""
    from sdui.networks.patch import LoraPatcher

    patcher = LoraPatcher({"unet": unet}, keep_buffers=keep_buffers)
    applies, restores, cpu = [], [], []
    for _ in range(args.apply_rounds + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        warnings = patcher.apply([use])
        mid = time.perf_counter()
        patcher.restore()
        applies.append(mid - start)
        restores.append(time.perf_counter() - mid)
        cpu.append(time.process_time() - start_cpu)
        if warnings:
            raise RuntimeError(f"the benchmark's LoRA did not apply cleanly: {warnings}")
    patcher.release()
    totals = [a + r for a, r in zip(applies, restores)]
    med, med_apply, med_restore = (statistics.median(t[1:]) for t in (totals, applies, restores))
    ok = med <= args.apply_limit if enforce else None
    name = "apply_keep_buffers" if keep_buffers else "apply"
    rec.add(f"{name}: apply+restore median {med:.4f} s (apply {med_apply:.4f} + restore {med_restore:.4f}, cpu "
            f"{statistics.median(cpu[1:]):.4f} s), first {totals[0]:.4f} s (apply {applies[0]:.4f}), "
            f"{args.apply_rounds} rounds, {len(use.network.modules)} layers, {backup_mib(unet, use):.0f} MiB "
            f"backed up; {verdict(ok, f'median <= {args.apply_limit:g} s' + ('' if enforce else ' (fast path)'))}",
            figure=name, **common, median_s=med, apply_median_s=med_apply, restore_median_s=med_restore,
            first_s=totals[0], first_apply_s=applies[0], times_s=totals[1:], cpu_median_s=statistics.median(cpu[1:]),
            keep_buffers=keep_buffers, limit=args.apply_limit, ok=ok)


def backup_mib(unet, use) -> float:
    from sdui.networks.lora_keys import layer_index

    index = layer_index({"unet": unet})
    return sum(index[k].tensor().numel() * index[k].tensor().element_size() for k in use.network.modules) / 2**20


def bench_same(args, unet, use, rec, common) -> None:
    """The same LoRA set asked for again (the next job with the same tags): no work, fuse_count unchanged."""
    from sdui.networks.patch import LoraPatcher, LoraUse

    patcher = LoraPatcher({"unet": unet})
    patcher.apply([use])
    before = patcher.fuse_count
    again = LoraUse(use.network, te=use.te, unet=use.unet, dyn=use.dyn, label=use.label)  # a new job's equal use
    start = time.perf_counter()
    patcher.apply([again])
    seconds = time.perf_counter() - start
    after = patcher.fuse_count
    patcher.restore()
    ok = after == before and seconds <= SAME_SET_LIMIT_S
    rec.add(f"same: same set again {seconds * 1e3:.3f} ms, fuse_count {before} -> {after}; "
            f"{verdict(ok, f'fuse_count unchanged and <= {SAME_SET_LIMIT_S * 1e3:g} ms')}",
            figure="same", **common, seconds=seconds, fuse_count_before=before, fuse_count_after=after,
            limit=SAME_SET_LIMIT_S, ok=ok)


def bench_compile(args, unet, inputs, uses: dict, device, settings, rec, common) -> None:
    """torch.compile of the UNet's forward (counting backend) through LoRA sets none, A, B, none: graphs stay 1."""
    from sdui.networks.patch import LoraPatcher

    graphs: list[int] = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(len(graph_module.graph.nodes))
        return graph_module.forward

    patcher, step = LoraPatcher({"unet": unet}), make_step(unet, inputs, device, settings)
    eager = unet.forward
    sets, equal, diffs, outputs, counts = ("none", "A", "B", "none"), [], [], [], []
    torch._dynamo.reset()
    start = time.perf_counter()
    try:
        compiled = torch.compile(eager, backend=counting_backend, fullgraph=True)
        for name in sets:
            patcher.apply([uses[name]] if name != "none" else [])
            unet.forward = compiled  # as sdui's fast path does: hooks stay outside the graph
            out = step()
            del unet.forward
            ref = step()
            counts.append(len(graphs))
            equal.append(bool(torch.allclose(out, ref, **ALLCLOSE)))
            diffs.append(float((out - ref).abs().max()))
            outputs.append(ref)
    finally:
        unet.__dict__.pop("forward", None)
        patcher.restore()
        torch._dynamo.reset()
    seconds = time.perf_counter() - start
    sees = [rel_err(outputs[1], outputs[0]), rel_err(outputs[2], outputs[1])]  # the LoRAs change the output
    ok = len(graphs) == 1 and all(equal) and min(sees) > 1e-3
    rec.add(f"compile: {len(graphs)} graph(s) for LoRA sets {', '.join(sets)} (after each: {counts}); compiled == "
            f"eager {equal} (max diff {max(diffs):.2g}); output change A {sees[0]:.3g}, B {sees[1]:.3g}; "
            f"{seconds:.1f} s; {verdict(ok, '1 graph, allclose')}",
            figure="compile", **common, graphs=len(graphs), graphs_after_each=counts, sets=list(sets),
            allclose=equal, max_abs_diff=diffs, rel_change=sees, seconds=seconds, ok=ok)


def main(argv: list[str] | None = None) -> int:
    """Run the requested figures; return 1 when an enforced target is missed."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sdui.models.memory import tune_allocator
    from sdui.networks.lora import read_lora
    from sdui.networks.patch import LoraUse
    from sdui.settings import Settings

    device = torch.device("cpu")
    tuned = not args.no_tune_allocator and tune_allocator()  # as app.py starts
    with tempfile.TemporaryDirectory(prefix="sdui-bench-lora-") as tmp:
        settings = Settings(device="cpu", cache_dir=Path(tmp), fast_path=not args.no_fast_path)
        start = time.perf_counter()
        unet, inputs, info = build(args, device, settings)
        work = args.work or Path(tmp)
        files = {name: write_locon(work / f"bench-{name}.safetensors", unet, args.rank, seed)
                 for name, seed in (("A", 0), ("B", 1))[: 2 if "compile" in args.figures else 1]}
        uses = {name: LoraUse(read_lora(path), label=name) for name, path in files.items()}
        use = uses["A"]
        rec = FigureLog(args.out, device, "lora")
        common = {"shape": "tiny" if args.tiny else "sd15", "rank": args.rank, "layers": len(use.network.modules),
                  "lora_mib": files["A"].stat().st_size / 2**20, "fast_path": info.describe(),
                  "allocator_tuned": tuned}
        print(f"{common['shape']} UNet ({sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M params), LoRA rank "
              f"{args.rank} on {common['layers']} layers ({common['lora_mib']:.1f} MiB), built in "
              f"{time.perf_counter() - start:.1f} s; {info.describe()}; {torch.get_num_threads()} threads; "
              f"allocator {'tuned' if tuned else 'as glibc has it'}", flush=True)
        production = info.unet_weights is not None  # the apply target is for the fast path's bf16 UNet
        if "apply" in args.figures:
            bench_apply(args, unet, use, rec, common, keep_buffers=False, enforce=production)
            bench_apply(args, unet, use, rec, common, keep_buffers=True, enforce=production)
        if "same" in args.figures:
            bench_same(args, unet, use, rec, common)
        if "step" in args.figures:
            bench_step(args, unet, inputs, use, device, settings, rec, common)
        if "compile" in args.figures:
            bench_compile(args, unet, inputs, uses, device, settings, rec, common)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB", flush=True)
    if rec.path is not None:
        print(f"wrote {rec.path}", flush=True)
    if rec.missed:
        print(f"missed: {', '.join(rec.missed)}" + ("" if args.enforce else " (not enforced)"), flush=True)
    return 1 if rec.missed and args.enforce else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
