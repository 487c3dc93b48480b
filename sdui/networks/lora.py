"""Reading LoRA / LyCORIS files: kohya LoRA and LoCon, LoHa, LoKr, full diffs and the diffusers/PEFT layout.

`read_lora` loads a file safely and groups its tensors by the layer they change; nothing here touches a model
(`patch.py` fuses the deltas into one). The delta maths is LyCORIS's, as A1111 computes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdui.models.errors import BrokenModel, UnrecognizedModel
from sdui.models.files import (PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, load_pickle_state_dict, read_safetensors_header,
                               refuse_oversized)

MAX_LORA_BYTES = 4 * 2**30  # refused before reading; a smaller checkpoint is caught by its keys
CHECKPOINT_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner.")
BUNDLED_EMBEDDING_PREFIX = "bundle_emb."
PEFT_METADATA_KEY = "lora_adapter_metadata"  # diffusers' `save_lora_weights`: r, lora_alpha, alpha_pattern per model

# Other spellings of LoRA's two factors, read as kohya's.
ROLE_ALIASES = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight", "lora_B.bias": "lora_up.bias",
                "lora.down.weight": "lora_down.weight", "lora.up.weight": "lora_up.weight",
                "lora_linear_layer.down.weight": "lora_down.weight", "lora_linear_layer.up.weight": "lora_up.weight"}
KIND_ROLES = {  # `scale` (LyCORIS): a layer's whole scale, which A1111 uses instead of alpha / rank
    "lora": {"lora_down.weight", "lora_up.weight", "lora_mid.weight", "lora_up.bias", "alpha", "scale"},
    "loha": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha", "scale"},
    "lokr": {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "alpha", "scale"},
    "full": {"diff", "diff_b", "alpha", "scale"},
}
# A role that marks a layer type sdui cannot apply, whatever else the layer holds.
UNSUPPORTED_ROLES = {"dora_scale": "DoRA", "lora_magnitude_vector": "DoRA", "lora_magnitude_vector.weight": "DoRA",
                     "on_input": "IA3", "oft_blocks": "OFT", "oft_diag": "OFT", "rescale": "OFT", "boft_blocks": "BOFT",
                     "a1.weight": "GLoRA", "a2.weight": "GLoRA", "b1.weight": "GLoRA", "b2.weight": "GLoRA",
                     "w_norm": "norm", "b_norm": "norm"}
_PLAIN_ROLES = ("weight", "bias")
_KNOWN_ROLES = sorted({*ROLE_ALIASES, *UNSUPPORTED_ROLES, *_PLAIN_ROLES, *set().union(*KIND_ROLES.values())},
                      key=len, reverse=True)
_PROCESSOR_KEY = re.compile(r"^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")


@dataclass
class LoraModule:
    """The tensors of one layer's change, by role in kohya/LyCORIS spelling (PEFT's lora_A/lora_B as lora_down/up)."""

    key: str  # the file's name for the layer, e.g. `lora_unet_down_blocks_0_attentions_0_proj_in`
    kind: str  # "lora", "loha", "lokr", "full"
    tensors: dict[str, torch.Tensor]
    alpha: float | None = None  # from the layer's `alpha` tensor, or the PEFT metadata; None: scale 1

    @property
    def rank(self) -> int | None:
        """The decomposition's rank (LyCORIS's `dim`), which `alpha` is divided by."""
        t = self.tensors
        if self.kind == "lora":
            return int(t["lora_down.weight"].shape[0])
        if self.kind == "loha":
            return int(t["hada_w1_b"].shape[0])
        if self.kind == "lokr":
            factor = t.get("lokr_w1_b", t.get("lokr_w2_b"))
            return int(factor.shape[0]) if factor is not None else None
        return None

    def scale(self) -> float:
        """The layer's `scale` if the file has one, else alpha / rank when it gives an alpha, else 1."""
        if "scale" in self.tensors:
            return float(self.tensors["scale"].item())
        rank = self.rank
        return self.alpha / rank if self.alpha is not None and rank else 1.0

    def delta_shape(self) -> tuple[int, ...]:
        """The shape of the delta before it is reshaped to the weight's (its element count must match)."""
        t = self.tensors
        if self.kind == "lora":
            up, down, mid = t["lora_up.weight"], t["lora_down.weight"], t.get("lora_mid.weight")
            return (up.shape[0], *down.shape[1:]) if mid is None else (up.shape[0], down.shape[1], *mid.shape[2:])
        if self.kind == "loha":
            a, b, t1 = t["hada_w1_a"], t["hada_w1_b"], t.get("hada_t1")
            return (a.shape[0], b.shape[1]) if t1 is None else (a.shape[1], b.shape[1], *t1.shape[2:])
        if self.kind == "lokr":
            w1, w2 = _lokr_shape(t, "1"), _lokr_shape(t, "2")
            return (w1[0] * w2[0], w1[1] * w2[1], *w2[2:])
        return tuple(t["diff"].shape) if "diff" in t else ()

    def factors(self, dyn: int | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(up 2-D, down as stored) of a conventional LoRA, whose delta is up @ down: fused without materialising."""
        if self.kind != "lora" or "lora_mid.weight" in self.tensors:
            return None
        up, down = self.tensors["lora_up.weight"], self.tensors["lora_down.weight"]
        if dyn is not None:
            up, down = up[:, :dyn], down[:dyn]
        return up.reshape(up.shape[0], -1), down

    def delta(self, dyn: int | None = None) -> torch.Tensor:
        """The weight delta (unscaled), in fp32, of shape `delta_shape()`; `dyn` keeps a LoRA's first ranks."""
        t = {k: v.float() for k, v in self.tensors.items() if k != "scale"}
        if self.kind == "lora":
            up, down = t["lora_up.weight"], t["lora_down.weight"]
            if dyn is not None:
                up, down = up[:, :dyn], down[:dyn]
            mid = t.get("lora_mid.weight")
            if mid is not None:
                if dyn is not None:
                    mid = mid[:dyn, :dyn]
                return torch.einsum("n m k l, i n, m j -> i j k l", mid, up.reshape(up.size(0), -1),
                                    down.reshape(down.size(0), -1))
            return (up.reshape(up.size(0), -1) @ down.reshape(down.size(0), -1)).reshape(self.delta_shape())
        if self.kind == "loha":
            if "hada_t1" in t:
                return (make_weight_cp(t["hada_t1"], t["hada_w1_a"], t["hada_w1_b"])
                        * make_weight_cp(t["hada_t2"], t["hada_w2_a"], t["hada_w2_b"]))
            return (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])
        if self.kind == "lokr":
            w1, w2 = _lokr_factor(t, "1"), _lokr_factor(t, "2")
            if w2.dim() == 4:
                w1 = w1[:, :, None, None]
            return torch.kron(w1, w2.contiguous())
        return t["diff"]

    def bias_delta(self) -> torch.Tensor | None:
        """The bias delta: a full diff's `diff_b`, or PEFT's `lora_B.bias` (`lora_bias=True`); else None."""
        return self.tensors.get("diff_b", self.tensors.get("lora_up.bias"))


@dataclass
class LoraNetwork:
    """One LoRA file, parsed: its layers and any layer types sdui cannot apply (by type name)."""

    path: Path
    name: str
    metadata: dict[str, str] = field(default_factory=dict)
    modules: dict[str, LoraModule] = field(default_factory=dict)
    unsupported: dict[str, list[str]] = field(default_factory=dict)  # type name -> layer keys
    embeddings: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # kohya `bundle_emb.<name>.*`

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for m in self.modules.values() for t in m.tensors.values())


def make_weight_cp(t: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """LyCORIS's CP/Tucker rebuild: core `t` (r, r, kh, kw), `wa` (r, out), `wb` (r, in) -> (out, in, kh, kw)."""
    temp = torch.einsum("i j k l, j r -> i r k l", t, wb)
    return torch.einsum("i j k l, i r -> r j k l", temp, wa)


def read_lora(path: Path) -> LoraNetwork:
    """Read a LoRA file (.safetensors, or .pt/.ckpt with weights_only); ModelError subclasses name the file."""
    path = Path(path)
    refuse_oversized(path, MAX_LORA_BYTES, "a LoRA", "it looks like a checkpoint, not a LoRA")
    tensors, metadata = _read_tensors(path)
    network = LoraNetwork(path=path, name=path.stem, metadata=metadata)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(BUNDLED_EMBEDDING_PREFIX):
            name, _, rest = key.removeprefix(BUNDLED_EMBEDDING_PREFIX).partition(".")
            network.embeddings.setdefault(name, {})[rest] = value
            continue
        layer, role = split_key(key)
        groups.setdefault(layer, {})[ROLE_ALIASES.get(role, role)] = value
    kinds = {layer: _kind(roles) for layer, roles in groups.items()}
    if all(kind in ("plain", "unknown") for kind in kinds.values()) or any(
            kind == "plain" and layer.startswith(CHECKPOINT_PREFIXES) for layer, kind in kinds.items()):
        what = ("it looks like a checkpoint, not a LoRA" if any(k.startswith(CHECKPOINT_PREFIXES) for k in tensors)
                else "expected kohya lora_down/lora_up, LyCORIS hada_/lokr_/diff or PEFT lora_A/lora_B keys")
        raise UnrecognizedModel(f"{path}: holds no LoRA layers ({what})", path)
    peft_alphas = _peft_alphas(metadata)
    for layer, roles in groups.items():
        if set(roles) <= {"alpha", "scale"}:
            continue  # an alpha without its layer's tensors changes nothing
        if kinds[layer] not in KIND_ROLES:
            kind = "unknown" if kinds[layer] == "plain" else kinds[layer]
            network.unsupported.setdefault(kind, []).append(layer)
            continue
        alpha = roles.pop("alpha", None)
        network.modules[layer] = LoraModule(key=layer, kind=kinds[layer], tensors=roles, alpha=(
            float(alpha.item()) if alpha is not None else _alpha_for(layer, peft_alphas)))
    return network


def split_key(key: str) -> tuple[str, str]:
    """A file key -> (layer key, role): `lora_unet_x.lora_down.weight` -> (`lora_unet_x`, `lora_down.weight`)."""
    match = _PROCESSOR_KEY.match(key)
    if match:  # diffusers' old attention-processor LoRA: `...attn1.processor.to_q_lora.down.weight`
        target = "to_out.0" if match.group(2) == "to_out" else match.group(2)
        return f"{match.group(1)}.{target}", f"lora_{match.group(3)}.weight"
    if key.startswith(("lora_unet_", "lora_te")):
        layer, _, role = key.partition(".")
        return layer, role
    for role in _KNOWN_ROLES:
        if key.endswith("." + role):
            return key[: -len(role) - 1], role
    layer, _, role = key.rpartition(".")
    return (layer, role) if layer else (key, "")


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        _, metadata = read_safetensors_header(path)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), metadata
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise BrokenModel(f"{path}: corrupt safetensors LoRA ({e})", path) from e
    if suffix in PICKLE_SUFFIXES:
        raw = load_pickle_state_dict(path)
        tensors = {k: v if isinstance(v, torch.Tensor) else torch.tensor(float(v)) for k, v in raw.items()
                   if isinstance(v, torch.Tensor | int | float) and not isinstance(v, bool)}
        return tensors, {}
    raise UnrecognizedModel(f"{path}: unknown file type {suffix!r} for a LoRA (expected .safetensors, .pt or .ckpt)",
                            path)


def _kind(roles: dict[str, torch.Tensor]) -> str:
    """The layer type from its roles: a KIND_ROLES key, an unsupported type name, "plain" or "unknown"."""
    names = set(roles)
    if names <= set(_PLAIN_ROLES):
        return "plain"  # a model's own weight/bias: what a checkpoint holds
    for role in sorted(names):
        if role in UNSUPPORTED_ROLES:
            return UNSUPPORTED_ROLES[role]
    for kind, allowed in KIND_ROLES.items():
        if names <= allowed and names - {"alpha", "scale"}:
            return kind if _complete(kind, names) else "incomplete"
    return "unknown"


def _complete(kind: str, names: set[str]) -> bool:
    if kind == "lora":
        return {"lora_down.weight", "lora_up.weight"} <= names
    if kind == "loha":
        return {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= names and (
            {"hada_t1", "hada_t2"} <= names or not {"hada_t1", "hada_t2"} & names)
    if kind == "lokr":
        one = "lokr_w1" in names or {"lokr_w1_a", "lokr_w1_b"} <= names
        two = "lokr_w2" in names or {"lokr_w2_a", "lokr_w2_b"} <= names
        return one and two
    return "diff" in names or "diff_b" in names


def _lokr_factor(t: dict[str, torch.Tensor], i: str) -> torch.Tensor:
    if f"lokr_w{i}" in t:
        return t[f"lokr_w{i}"]
    if f"lokr_t{i}" in t:
        return make_weight_cp(t[f"lokr_t{i}"], t[f"lokr_w{i}_a"], t[f"lokr_w{i}_b"])
    return t[f"lokr_w{i}_a"] @ t[f"lokr_w{i}_b"]


def _lokr_shape(t: dict[str, torch.Tensor], i: str) -> tuple[int, ...]:
    if f"lokr_w{i}" in t:
        return tuple(t[f"lokr_w{i}"].shape)
    a, b = t[f"lokr_w{i}_a"], t[f"lokr_w{i}_b"]
    if f"lokr_t{i}" in t:
        return (a.shape[1], b.shape[1], *t[f"lokr_t{i}"].shape[2:])
    return (a.shape[0], b.shape[1])


def _peft_alphas(metadata: dict[str, str]) -> dict[str, object]:
    try:
        found = json.loads(metadata.get(PEFT_METADATA_KEY, "{}"))
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _matches(pattern: str, path: str) -> bool:
    """peft's target matching: the pattern as a regex for the whole path or its last dotted parts."""
    try:
        return re.match(rf"(.*\.)?({pattern})$", path) is not None
    except re.error:
        return path == pattern or path.endswith("." + pattern)


def _alpha_for(layer: str, config: dict[str, object]) -> float | None:
    """A PEFT layer's lora_alpha from diffusers' metadata (alpha_pattern first, as peft matches it), else None."""
    if not config:
        return None
    prefix, _, path = layer.partition(".")
    for scope in (f"{prefix}.", ""):
        patterns = config.get(f"{scope}alpha_pattern") or {}
        for pattern, value in (patterns.items() if isinstance(patterns, dict) else ()):
            if _matches(str(pattern), path if scope else layer) and isinstance(value, int | float):
                return float(value)
        if isinstance(config.get(f"{scope}lora_alpha"), int | float):
            return float(config[f"{scope}lora_alpha"])
    return None
