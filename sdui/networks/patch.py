"""Fusing LoRA deltas into a pipeline's weights in place, and undoing it bit for bit from a backup.

As A1111's `network_weights_backup`: the first change to a weight keeps a copy; `restore()` copies it back.
Weights change in place (same tensors), so a compiled UNet is not recompiled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from sdui.networks.lora import LoraModule, LoraNetwork
from sdui.networks.lora_keys import UNET, Layer, cross_attention_width, layer_index

FAMILIES = {768: "SD1", 1024: "SD2", 2048: "SDXL"}  # by cross-attention width
UNSUPPORTED_TITLES = {"OFT": "LyCORIS OFT", "BOFT": "LyCORIS BOFT", "IA3": "LyCORIS IA3", "GLoRA": "LyCORIS GLoRA",
                      "norm": "LyCORIS norm", "DoRA": "DoRA", "unknown": "unrecognised",
                      "incomplete": "incomplete (a factor is missing)"}
SDXL_KEY_PREFIXES = ("lora_te1_", "lora_te2_", "text_encoder_2.")
_CROSS_ATTENTION_KEY = re.compile(r"attn2[._]to_k$")


@dataclass(frozen=True)
class LoraUse:
    """One LoRA as a job asks for it: multipliers for the text encoder(s) and the UNet."""

    network: LoraNetwork
    te: float = 1.0
    unet: float = 1.0
    dyn: int | None = None
    label: str = ""  # the name as the prompt wrote it (for warnings)


@dataclass(eq=False)
class _Change:
    """One LoRA layer's contribution to one tensor of the model."""

    module: LoraModule
    layer: Layer
    role: str  # "weight" or "bias"
    alpha: float  # multiplier * the layer's scale
    dyn: int | None


class LoraPatcher:
    """The LoRA deltas fused into one pipeline's modules (`unet`, `text_encoder`, `text_encoder_2`)."""

    def __init__(self, components: Mapping[str, torch.nn.Module | None],
                 backup_device: torch.device | str | None = None, keep_buffers: bool = False) -> None:
        self.components = {name: module for name, module in components.items() if module is not None}
        self.backup_device = backup_device  # None: beside the weight (fastest); "cpu" saves GPU memory
        # Keep the backups' memory after restore() for the next apply: fresh memory costs a page fault per
        # 4 KiB on first write (about 1 s of system time for SD1.5's 3.4 GB on a small CPU), at the price
        # of holding that memory while no LoRA is fused.
        self.keep_buffers = keep_buffers
        self._spare: dict[str, torch.Tensor] = {}
        self.fuse_count = 0  # how many `apply` calls changed weights (the same uses again do not)
        self._index: dict[str, Layer] | None = None
        self._backups: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # tensor key -> (tensor, its copy)
        self._uses: tuple[LoraUse, ...] = ()
        self._warnings: list[str] = []
        self.applied: tuple[LoraUse, ...] = ()  # the uses of the last apply that changed weights (not refused)

    @property
    def index(self) -> dict[str, Layer]:
        """Every file name of every patchable layer, built on first use."""
        if self._index is None:
            self._index = layer_index(self.components)
        return self._index

    @property
    def fused(self) -> bool:
        return bool(self._backups)

    def apply(self, uses: Sequence[LoraUse]) -> list[str]:
        """Make the weights original + the sum of `uses`' deltas; return warnings. The same uses again: no work."""
        uses = tuple(use for use in uses if use.te or use.unet)
        if _same(uses, self._uses):
            self.applied = tuple(new for new, old in zip(uses, self._uses) if any(old is a for a in self.applied))
            return list(self._warnings)
        warnings: list[str] = []
        plan: dict[str, list[_Change]] = {}
        applied = []
        for use in uses:
            changes, found = self._plan(use)
            warnings += found
            if changes:
                applied.append(use)
            for change in changes:
                plan.setdefault(f"{change.layer.component}:{change.layer.module_name}.{change.role}", []).append(change)
        try:
            with torch.no_grad():
                self._fuse(plan)
        except BaseException:
            self.restore()  # never leave the model half-patched
            raise
        self._uses, self._warnings, self.applied = uses, warnings, tuple(applied)
        self.fuse_count += 1
        return list(warnings)

    def restore(self) -> None:
        """Copy every changed weight back from its backup (bit-identical to before); free the backups
        (with `keep_buffers`, their memory waits for the next apply)."""
        with torch.no_grad():
            for key in list(self._backups):
                self._put_back(key)
        self._uses, self._warnings, self.applied = (), [], ()

    def release(self) -> None:
        """Free the spare backup memory that `keep_buffers` holds (the fused weights' own backups stay)."""
        self._spare.clear()

    def _put_back(self, key: str) -> None:
        tensor, backup = self._backups.pop(key)
        tensor.copy_(backup)
        if self.keep_buffers:
            self._spare[key] = backup

    def _fuse(self, plan: dict[str, list[_Change]]) -> None:
        for key in [key for key in self._backups if key not in plan]:
            self._put_back(key)
        for key, changes in plan.items():
            tensor = getattr(changes[0].layer.module, changes[0].role)
            if key in self._backups:
                tensor.copy_(self._backups[key][1])  # from the original, so A then B gives B's bits exactly
            else:
                self._backups[key] = (tensor, self._backup(key, tensor))
            for change in changes:
                _add(tensor if change.layer.rows is None else tensor[change.layer.rows], change)

    def _backup(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        device = torch.device(self.backup_device) if self.backup_device is not None else tensor.device
        spare = self._spare.pop(key, None)
        if spare is not None and (spare.shape, spare.dtype, spare.device) == (tensor.shape, tensor.dtype, device):
            return spare.copy_(tensor)
        return tensor.detach().to(device, copy=True)

    def _plan(self, use: LoraUse) -> tuple[list[_Change], list[str]]:
        """This use's changes, or none and a warning saying why it is not applied."""
        network, label = use.network, use.label or use.network.name
        if network.unsupported:
            types = " and ".join(UNSUPPORTED_TITLES.get(kind, kind) for kind in sorted(network.unsupported))
            return [], [f"LoRA '{label}' has {types} layers, which sdui cannot apply: not applied"]
        family = self._family_warning(label, network)
        if family:
            return [], [family]
        matched, missing = [], []
        for module in network.modules.values():
            layer = self.index.get(module.key)
            if layer is None:
                missing.append(module.key)
                continue
            if layer.tensor() is not None and layer.tensor().is_meta:
                return [], [f"LoRA '{label}' cannot be fused: this model's weights are offloaded (meta tensors, "
                            "--lowvram): not applied"]
            misfit = _misfit(module, layer)
            if misfit:
                return [], [f"LoRA '{label}' does not fit this model: {misfit}: not applied"]
            matched.append((module, layer))
        total = len(network.modules)
        if not matched:
            return [], [f"LoRA '{label}': none of its {total} layers match this model: not applied"]
        warnings = []
        if missing:
            warnings.append(f"LoRA '{label}': {len(missing)} of {total} layers match no layer of this model "
                            f"(e.g. {missing[0]}): the other {total - len(missing)} applied")
        changes = []
        for module, layer in matched:
            multiplier = use.unet if layer.component == UNET else use.te
            if not multiplier:
                continue
            alpha = multiplier * module.scale()
            if module.kind != "full" or "diff" in module.tensors:
                changes.append(_Change(module, layer, "weight", alpha, use.dyn))
            if module.bias_delta() is not None:
                changes.append(_Change(module, layer, "bias", alpha, use.dyn))
        return changes, warnings

    def _family_warning(self, label: str, network: LoraNetwork) -> str | None:
        width = cross_attention_width(self.components.get(UNET))
        for module in network.modules.values():
            if width is not None and _CROSS_ATTENTION_KEY.search(module.key) and len(module.delta_shape()) > 1:
                theirs = module.delta_shape()[1]
                if theirs != width:
                    family = FAMILIES.get(theirs, "another model family")
                    return (f"LoRA '{label}' is made for {family} (cross-attention {theirs}) but this model's is "
                            f"{width}: not applied")
        if "text_encoder_2" not in self.components and any(k.startswith(SDXL_KEY_PREFIXES) for k in network.modules):
            return f"LoRA '{label}' is made for SDXL (two text encoders) but this model has one: not applied"
        return None


def _same(a: tuple[LoraUse, ...], b: tuple[LoraUse, ...]) -> bool:
    return len(a) == len(b) and all(x.network is y.network and (x.te, x.unet, x.dyn, x.label) ==
                                    (y.te, y.unet, y.dyn, y.label) for x, y in zip(a, b))


def _misfit(module: LoraModule, layer: Layer) -> str | None:
    """Why `module`'s delta cannot go into `layer`'s weight (element count or rows differ), else None."""
    checks = []
    if module.kind != "full" or "diff" in module.tensors:
        checks.append(("weight", module.delta_shape()))
    if module.bias_delta() is not None:
        checks.append(("bias", tuple(module.bias_delta().shape)))
    for role, shape in checks:
        target = layer.tensor(role)
        if target is None or math.prod(shape) != target.numel() or shape[0] != target.shape[0]:
            have = "none" if target is None else "x".join(map(str, target.shape))
            return (f"its layer {module.key} changes a {'x'.join(map(str, shape))} {role} but this model's "
                    f"{layer.name} {role} is {have}")
    return None


def _add(target: torch.Tensor, change: _Change) -> None:
    """target += alpha * delta, in place; conventional LoRA as one addmm on a 2-D view of the weight."""
    module, alpha = change.module, change.alpha
    if change.role == "bias":
        target.add_(module.bias_delta().to(target.device, torch.float32).reshape(target.shape), alpha=alpha)
        return
    factors = module.factors(change.dyn)
    matrix, channels_last = _matrix_view(target) if factors is not None else (None, False)
    if matrix is not None:
        up, down = factors
        if channels_last and down.dim() == 4:
            down = down.permute(0, 2, 3, 1)  # the weight's own (out, kh, kw, in) order
        down = down.reshape(down.shape[0], -1)
        if matrix.dtype != torch.float16 or matrix.device.type != "cpu":
            # bf16 too: oneDNN accumulates in fp32 and rounds once, several times faster than fp32 maths + a cast.
            matrix.addmm_(up.to(matrix), down.to(matrix), alpha=alpha)
        else:
            # fp16 matmuls on a CPU are emulated and 20x slower: fp32 maths, one rounding into the weight.
            matrix.add_(up.to(matrix.device, torch.float32) @ down.to(matrix.device, torch.float32), alpha=alpha)
        return
    delta = module.delta(change.dyn).to(target.device)
    target.add_(delta.reshape(target.shape), alpha=alpha)


def _matrix_view(weight: torch.Tensor) -> tuple[torch.Tensor | None, bool]:
    """A 2-D view sharing `weight`'s memory (rows = out features), and whether it is channels_last; None if none."""
    if weight.is_contiguous():
        return weight.view(weight.shape[0], -1), False
    if weight.dim() == 4 and weight.permute(0, 2, 3, 1).is_contiguous():
        return weight.permute(0, 2, 3, 1).view(weight.shape[0], -1), True
    return None, False  # a reshape would copy and the update would be lost: add the materialised delta instead
