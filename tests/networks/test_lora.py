"""LoRA / LyCORIS files read and fused into tiny pipelines: every format, exact restore, warnings, unsafe files."""

from __future__ import annotations

import copy
import os
import types

import pytest
import torch
from safetensors.torch import save_file

from sdui.models import fast
from sdui.models.errors import BrokenModel, UnrecognizedModel, UnsafeModel
from sdui.models.layout import save_single_file
from sdui.networks import lora as lora_module
from sdui.networks import patch as patch_module
from sdui.networks.lora import make_weight_cp, read_lora
from sdui.networks.patch import LoraPatcher, LoraUse
from sdui.settings import Settings
from tests.networks import lora_files as lf

ATTN = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
CONV = "down_blocks.0.resnets.0.conv1"
TE_Q = "encoder.layers.0.self_attn.q_proj"


@pytest.fixture
def pipe(tiny):
    """Fresh copies of the tiny model's UNet and text encoder (what a LoRA changes)."""
    return types.SimpleNamespace(unet=copy.deepcopy(tiny.unet), text_encoder=copy.deepcopy(tiny.text_encoder))


def components(p) -> dict:
    return {n: getattr(p, n, None) for n in ("unet", "text_encoder", "text_encoder_2")}


def snapshot(p) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, m in components(p).items() if m is not None
            for k, v in m.state_dict().items()}


def assert_identical(p, snap) -> None:
    now = snapshot(p)
    assert now.keys() == snap.keys()
    differ = [k for k in snap if not torch.equal(now[k], snap[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"


def changed(p, snap) -> set[str]:
    now = snapshot(p)
    return {k for k in snap if not torch.equal(now[k], snap[k])}


def unet_out(unet) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    sample, context = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 8, 32, generator=g)
    with torch.no_grad():
        return unet(sample, 10, encoder_hidden_states=context).sample


def te_out(te) -> torch.Tensor:
    with torch.no_grad():
        return te(torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407, 49407]]))[0]


def weight(p, name: str, component: str = "unet") -> torch.Tensor:
    return getattr(p, component).get_submodule(name).weight


def fuse_and_check(p, path, expect_te: bool = True) -> None:
    """Apply the file; UNet (and text encoder) outputs change, in place; restore is bit-identical."""
    snap, before_unet, before_te = snapshot(p), unet_out(p.unet), te_out(p.text_encoder)
    pointers = {k: v.data_ptr() for k, v in p.unet.state_dict().items()}
    patcher = LoraPatcher(components(p))
    assert patcher.apply([LoraUse(read_lora(path), label="x")]) == []
    assert patcher.fused and not torch.allclose(unet_out(p.unet), before_unet)
    assert expect_te != torch.equal(te_out(p.text_encoder), before_te)
    assert {k: v.data_ptr() for k, v in p.unet.state_dict().items()} == pointers
    patcher.restore()
    assert not patcher.fused
    assert_identical(p, snap)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_kohya_lora_changes_unet_and_text_encoder_and_restores_exactly(pipe, tmp_path, suffix):
    path = lf.write_kohya_lora(tmp_path / f"k{suffix}", pipe, alpha=2)
    network = read_lora(path)
    assert {m.kind for m in network.modules.values()} == {"lora"}
    assert network.modules[f"lora_unet_{ATTN.replace('.', '_')}"].scale() == 0.5
    snap = snapshot(pipe)
    fuse_and_check(pipe, path)
    touched = {k.rsplit(".", 1)[0] for k in changed_after(pipe, path, snap)}
    assert f"unet.{ATTN}" in touched and f"text_encoder.{TE_Q}" in touched and f"unet.{CONV}" not in touched


def changed_after(p, path, snap) -> set[str]:
    patcher = LoraPatcher(components(p))
    patcher.apply([LoraUse(read_lora(path))])
    found = changed(p, snap)
    patcher.restore()
    return found


@pytest.mark.parametrize("cp", [False, True])
def test_locon_changes_conv_layers(pipe, tmp_path, cp):
    path = lf.write_kohya_lora(tmp_path / "locon.safetensors", pipe, conv=True, cp=cp, alpha=4)
    assert ("lora_mid.weight" in read_lora(path).modules[f"lora_unet_{CONV.replace('.', '_')}"].tensors) == cp
    assert f"unet.{CONV}.weight" in changed_after(pipe, path, snapshot(pipe))
    fuse_and_check(pipe, path)


@pytest.mark.parametrize("options", [dict(), dict(conv=True), dict(conv=True, cp=True, alpha=2)])
def test_loha_changes_and_restores(pipe, tmp_path, options):
    path = lf.write_loha(tmp_path / "loha.safetensors", pipe, **options)
    assert {m.kind for m in read_lora(path).modules.values()} == {"loha"}
    assert (f"unet.{CONV}.weight" in changed_after(pipe, path, snapshot(pipe))) == bool(options.get("conv"))
    fuse_and_check(pipe, path)


@pytest.mark.parametrize("options", [dict(rank=None), dict(conv=True, alpha=1), dict(conv=True, cp=True),
                                     dict(decompose_w1=True)])
def test_lokr_changes_and_restores(pipe, tmp_path, options):
    path = lf.write_lokr(tmp_path / "lokr.safetensors", pipe, **options)
    assert {m.kind for m in read_lora(path).modules.values()} == {"lokr"}
    fuse_and_check(pipe, path)


@pytest.mark.parametrize("style", ["peft", "old", "processor"])
def test_diffusers_layouts_change_and_restore(pipe, tmp_path, style):
    path = lf.write_peft_lora(tmp_path / "peft.safetensors", pipe, style=style, alpha=2)
    fuse_and_check(pipe, path, expect_te=style != "processor")


def test_peft_alpha_from_metadata_or_alpha_keys_scales_alike(pipe, tmp_path):
    meta = read_lora(lf.write_peft_lora(tmp_path / "m.safetensors", pipe, alpha=2, rank=4))
    keys = read_lora(lf.write_peft_lora(tmp_path / "a.safetensors", pipe, alpha=2, rank=4, alpha_keys=True))
    plain = read_lora(lf.write_peft_lora(tmp_path / "p.safetensors", pipe, rank=4))
    layer = f"unet.{ATTN}"
    assert meta.modules[layer].scale() == keys.modules[layer].scale() == 0.5 and plain.modules[layer].scale() == 1
    original = weight(pipe, ATTN).clone()
    patcher = LoraPatcher(components(pipe))
    patcher.apply([LoraUse(meta)])
    up, down = (meta.modules[layer].tensors[r].float() for r in ("lora_up.weight", "lora_down.weight"))
    torch.testing.assert_close(weight(pipe, ATTN) - original, 0.5 * up @ down, atol=1e-6, rtol=1e-4)


def test_full_diff_changes_weights_and_biases(pipe, tmp_path):
    path = lf.write_full_diff(tmp_path / "full.safetensors", pipe)
    found = changed_after(pipe, path, snapshot(pipe))
    assert f"unet.{ATTN}.weight" in found and f"unet.{ATTN.replace('to_q', 'to_out.0')}.bias" in found
    fuse_and_check(pipe, path)


def test_weight_zero_changes_nothing(pipe, tmp_path):
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe, conv=True))
    snap = snapshot(pipe)
    patcher = LoraPatcher(components(pipe))
    assert patcher.apply([LoraUse(network, te=0.0, unet=0.0)]) == []
    assert not patcher.fused
    assert_identical(pipe, snap)


def test_two_loras_add_up(pipe, tmp_path):
    a = read_lora(lf.write_kohya_lora(tmp_path / "a.safetensors", pipe, seed=1, alpha=2))
    b = read_lora(lf.write_loha(tmp_path / "b.safetensors", pipe, seed=2))
    original = {n: weight(pipe, n).clone() for n in (ATTN, f"{ATTN[:-4]}to_k")}
    patcher = LoraPatcher(components(pipe))
    deltas = []
    for uses in ([LoraUse(a, unet=0.7)], [LoraUse(b, unet=-0.4)], [LoraUse(a, unet=0.7), LoraUse(b, unet=-0.4)]):
        patcher.apply(uses)
        deltas.append({n: weight(pipe, n) - w for n, w in original.items()})
    for n in original:
        assert deltas[0][n].abs().max() > 1e-3 and deltas[1][n].abs().max() > 1e-3
        torch.testing.assert_close(deltas[2][n], deltas[0][n] + deltas[1][n], atol=1e-6, rtol=1e-5)


def test_same_uses_again_do_no_work(pipe, tmp_path):
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe))
    patcher = LoraPatcher(components(pipe))
    patcher.apply([LoraUse(network, te=0.5, label="k")])
    fused = weight(pipe, ATTN).clone()
    weight(pipe, ATTN).data[0, 0] += 1.0  # any work would overwrite this from the backup
    assert patcher.apply([LoraUse(network, te=0.5, label="k")]) == [] and patcher.fuse_count == 1
    assert weight(pipe, ATTN)[0, 0] == fused[0, 0] + 1.0
    patcher.apply([LoraUse(network, te=0.6, label="k")])
    assert patcher.fuse_count == 2 and torch.equal(weight(pipe, ATTN), fused)  # rebuilt from the backup


def test_a_then_b_equals_b_on_a_fresh_model(tiny, tmp_path):
    fresh = types.SimpleNamespace(unet=copy.deepcopy(tiny.unet), text_encoder=copy.deepcopy(tiny.text_encoder))
    used = types.SimpleNamespace(unet=copy.deepcopy(tiny.unet), text_encoder=copy.deepcopy(tiny.text_encoder))
    a = read_lora(lf.write_kohya_lora(tmp_path / "a.safetensors", fresh, conv=True, seed=1))
    b = read_lora(lf.write_loha(tmp_path / "b.safetensors", fresh, seed=2))
    c = read_lora(lf.write_kohya_lora(tmp_path / "c.safetensors", fresh, seed=3, alpha=1))
    LoraPatcher(components(fresh)).apply([LoraUse(b), LoraUse(c, te=0.3)])
    patcher = LoraPatcher(components(used))
    patcher.apply([LoraUse(a)])
    patcher.apply([LoraUse(b), LoraUse(c, te=0.3)])
    assert_identical(used, snapshot(fresh))
    patcher.apply([])
    assert not patcher.fused
    assert_identical(used, snapshot(types.SimpleNamespace(unet=tiny.unet, text_encoder=tiny.text_encoder)))


def test_kept_buffers_are_reused_and_restore_stays_exact(pipe, tmp_path):
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe, conv=True))
    snap = snapshot(pipe)
    patcher = LoraPatcher(components(pipe), keep_buffers=True)
    patcher.apply([LoraUse(network)])
    fused = snapshot(pipe)
    patcher.restore()
    assert_identical(pipe, snap)
    spare = {k: b.data_ptr() for k, b in patcher._spare.items()}
    assert len(spare) == len(network.modules)
    patcher.apply([LoraUse(network)])
    assert_identical(pipe, fused)
    assert {k: b.data_ptr() for k, (_, b) in patcher._backups.items()} == spare and not patcher._spare
    patcher.restore()
    patcher.release()
    assert_identical(pipe, snap)
    assert not patcher._spare


def test_offloaded_meta_weights_are_reported(tmp_path):
    root = torch.nn.Module()
    root.proj = torch.nn.Linear(2, 3, bias=False, device="meta")
    network = read_lora(lf.save_lora(tmp_path / "k.safetensors", {"lora_unet_proj.lora_up.weight": torch.ones(3, 1),
                                                                  "lora_unet_proj.lora_down.weight": torch.ones(1, 2)}))
    assert LoraPatcher({"unet": root}).apply([LoraUse(network)]) == [
        "LoRA 'k' cannot be fused: this model's weights are offloaded (meta tensors, --lowvram): not applied"]


def _one_layer(tensors: dict, tmp_path, out: int, inp: int, name: str = "loha"):
    """A zero-weight Linear called `proj` under a UNet-like root, and the patcher's result for one file."""
    root = torch.nn.Module()
    root.proj = torch.nn.Linear(inp, out, bias=False)
    torch.nn.init.zeros_(root.proj.weight)
    network = read_lora(lf.save_lora(tmp_path / f"{name}.safetensors", tensors))
    assert LoraPatcher({"unet": root}).apply([LoraUse(network)]) == []
    return root.proj.weight.detach()


def test_loha_delta_hand_computed(tmp_path):
    tensors = {"lora_unet_proj.hada_w1_a": torch.tensor([[1.0], [2.0]]),
               "lora_unet_proj.hada_w1_b": torch.tensor([[1.0, 0.0, 3.0]]),
               "lora_unet_proj.hada_w2_a": torch.tensor([[0.5], [-1.0]]),
               "lora_unet_proj.hada_w2_b": torch.tensor([[2.0, 4.0, 1.0]]),
               "lora_unet_proj.alpha": torch.tensor(2.0)}  # rank 1: scale 2
    expected = torch.tensor([[2.0, 0.0, 3.0], [-8.0, 0.0, -12.0]])
    assert torch.equal(_one_layer(tensors, tmp_path, 2, 3), expected)


def test_lokr_delta_hand_computed(tmp_path):
    tensors = {"lora_unet_proj.lokr_w1": torch.tensor([[1.0, 2.0], [0.0, -1.0]]),
               "lora_unet_proj.lokr_w2_a": torch.tensor([[1.0]]),
               "lora_unet_proj.lokr_w2_b": torch.tensor([[1.0, 0.5]]),
               "lora_unet_proj.alpha": torch.tensor(0.5)}  # dim = w2_b rows = 1: scale 0.5
    expected = torch.tensor([[0.5, 0.25, 1.0, 0.5], [0.0, 0.0, -0.5, -0.25]])
    assert torch.equal(_one_layer(tensors, tmp_path, 2, 4, "lokr"), expected)


def test_peft_lora_bias_hand_computed(tmp_path):
    root = torch.nn.Module()
    root.proj = torch.nn.Linear(2, 3)
    torch.nn.init.zeros_(root.proj.weight)
    torch.nn.init.zeros_(root.proj.bias)
    tensors = {"unet.proj.lora_A.weight": torch.tensor([[1.0, 2.0]]),
               "unet.proj.lora_B.weight": torch.tensor([[1.0], [0.0], [-1.0]]),
               "unet.proj.lora_B.bias": torch.tensor([1.0, 2.0, 3.0]),
               "unet.proj.alpha": torch.tensor(2.0)}  # rank 1: scale 2, times the multiplier 0.5
    network = read_lora(lf.save_lora(tmp_path / "b.safetensors", tensors))
    assert LoraPatcher({"unet": root}).apply([LoraUse(network, unet=0.5)]) == []
    assert torch.equal(root.proj.weight.detach(), torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, -2.0]]))
    assert torch.equal(root.proj.bias.detach(), torch.tensor([1.0, 2.0, 3.0]))


def test_cp_rebuild_hand_computed():
    t, wa, wb = torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([[3.0]]), torch.tensor([[1.0, -1.0]])
    assert torch.equal(make_weight_cp(t, wa, wb), torch.tensor([[[[3.0, 6.0]], [[-3.0, -6.0]]]]))


def test_dyn_uses_the_first_ranks(pipe, tmp_path):
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe, rank=4, alpha=2, dtype=torch.float32))
    module = network.modules[f"lora_unet_{ATTN.replace('.', '_')}"]
    up, down = module.tensors["lora_up.weight"], module.tensors["lora_down.weight"]
    original = weight(pipe, ATTN).clone()
    LoraPatcher(components(pipe)).apply([LoraUse(network, dyn=2)])
    torch.testing.assert_close(weight(pipe, ATTN) - original, 0.5 * up[:, :2] @ down[:2], atol=1e-6, rtol=1e-5)


def test_te_and_unet_multipliers_act_separately(pipe, tmp_path):
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe))
    te_before, unet_before = te_out(pipe.text_encoder), unet_out(pipe.unet)
    patcher = LoraPatcher(components(pipe))
    patcher.apply([LoraUse(network, te=0.0, unet=1.0)])
    assert torch.equal(te_out(pipe.text_encoder), te_before) and not torch.allclose(unet_out(pipe.unet), unet_before)
    patcher.apply([LoraUse(network, te=1.0, unet=0.0)])
    assert not torch.equal(te_out(pipe.text_encoder), te_before) and torch.equal(unet_out(pipe.unet), unet_before)
    patcher.restore()
    original = weight(pipe, TE_Q, "text_encoder").clone()
    patcher.apply([LoraUse(network, te=1.0, unet=0.0)])
    full = weight(pipe, TE_Q, "text_encoder") - original
    patcher.apply([LoraUse(network, te=0.5, unet=0.0)])
    torch.testing.assert_close(weight(pipe, TE_Q, "text_encoder") - original, full / 2)


def test_channels_last_bf16_unet_fuses_in_place_and_restores_exactly(pipe, tmp_path, monkeypatch):
    reference = copy.deepcopy(pipe.unet)
    path = lf.write_kohya_lora(tmp_path / "locon.safetensors", pipe, conv=True, alpha=2)
    monkeypatch.setattr(fast, "cpu_supports_bf16", lambda cpuinfo=None: True)
    info = fast.apply_fast_path(pipe, torch.device("cpu"), torch.float32, Settings(fast_path=True))
    assert info.unet_weights == "bfloat16" and info.channels_last
    conv = weight(pipe, CONV)
    assert conv.dtype == torch.bfloat16 and not conv.is_contiguous()
    assert conv.is_contiguous(memory_format=torch.channels_last)
    snap, pointer = snapshot(pipe), conv.data_ptr()
    patcher = LoraPatcher(components(pipe))
    assert patcher.apply([LoraUse(read_lora(path))]) == []
    # The expected change, computed on the fp32 copy: the bf16 weight must hold it (to bf16 precision).
    LoraPatcher({"unet": reference}).apply([LoraUse(read_lora(path))])
    assert conv.data_ptr() == pointer and conv.is_contiguous(memory_format=torch.channels_last)
    expected = reference.get_submodule(CONV).weight - snap[f"unet.{CONV}.weight"].float()
    torch.testing.assert_close((conv.float() - snap[f"unet.{CONV}.weight"].float()), expected, atol=2e-2, rtol=0)
    assert (conv.float() - snap[f"unet.{CONV}.weight"].float()).abs().max() > 1e-2
    assert weight(pipe, "conv_in").dtype == torch.float32 and "unet.conv_in.weight" not in changed(pipe, snap)
    with fast.autocast_context(torch.device("cpu"), Settings(fast_path=True)):
        assert torch.isfinite(unet_out(pipe.unet)).all()
    patcher.restore()
    assert_identical(pipe, snap)


def test_channels_last_fp32_same_as_contiguous(pipe, tmp_path):
    path = lf.write_loha(tmp_path / "loha.safetensors", pipe, conv=True)
    plain = copy.deepcopy(pipe.unet)
    pipe.unet.to(memory_format=torch.channels_last)
    for unet in (plain, pipe.unet):
        LoraPatcher({"unet": unet}).apply([LoraUse(read_lora(path))])
    path = lf.write_kohya_lora(tmp_path / "locon.safetensors", pipe, conv=True)
    for unet in (plain, pipe.unet):
        LoraPatcher({"unet": unet}).apply([LoraUse(read_lora(path))])
    torch.testing.assert_close(weight(pipe, CONV), plain.get_submodule(CONV).weight, atol=1e-6, rtol=1e-5)


def test_non_contiguous_weight_changes_in_place(tmp_path):
    root = torch.nn.Module()
    root.proj = torch.nn.Linear(2, 3, bias=False)
    root.proj.weight = torch.nn.Parameter(torch.zeros(2, 3).t())  # a (3, 2) view that no reshape can alias
    tensors = {"lora_unet_proj.lora_up.weight": torch.tensor([[1.0], [2.0], [3.0]]),
               "lora_unet_proj.lora_down.weight": torch.tensor([[1.0, -1.0]])}
    network = read_lora(lf.save_lora(tmp_path / "k.safetensors", tensors))
    pointer = root.proj.weight.data_ptr()
    LoraPatcher({"unet": root}).apply([LoraUse(network)])
    assert root.proj.weight.data_ptr() == pointer
    assert torch.equal(root.proj.weight, torch.tensor([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]))


def test_fused_qkv_gets_the_lora_rows(pipe, tmp_path):
    path = lf.write_kohya_lora(tmp_path / "k.safetensors", pipe, te=False)
    fused = copy.deepcopy(pipe.unet)
    fused.fuse_qkv_projections()
    before = unet_out(fused)
    snap = {k: v.clone() for k, v in fused.state_dict().items()}
    LoraPatcher({"unet": pipe.unet}).apply([LoraUse(read_lora(path))])
    patcher = LoraPatcher({"unet": fused})
    assert patcher.apply([LoraUse(read_lora(path))]) == []
    qkv = fused.get_submodule(ATTN.replace("to_q", "to_qkv")).weight
    assert not torch.equal(qkv, snap[ATTN.replace("to_q", "to_qkv") + ".weight"])
    assert torch.equal(fused.get_submodule(ATTN).weight, snap[ATTN + ".weight"])  # unused once fused
    torch.testing.assert_close(unet_out(fused), unet_out(pipe.unet), atol=1e-5, rtol=1e-4)
    patcher.restore()
    assert torch.equal(unet_out(fused), before)
    assert all(torch.equal(v, snap[k]) for k, v in fused.state_dict().items())


def xl_copy(tiny_xl):
    return types.SimpleNamespace(**{n: copy.deepcopy(getattr(tiny_xl, n)) for n in ("unet", "text_encoder",
                                                                                   "text_encoder_2")})


@pytest.mark.parametrize("ldm", [True, False])
def test_sdxl_kohya_te1_te2_and_ldm_unet_names(tiny_xl, tmp_path, ldm):
    xl = xl_copy(tiny_xl)
    path = lf.write_kohya_lora(tmp_path / "xl.safetensors", xl, ldm=ldm, alpha=2)
    keys = set(read_lora(path).modules)
    assert any(k.startswith("lora_te1_") for k in keys) and any(k.startswith("lora_te2_") for k in keys)
    assert any(k.startswith("lora_unet_input_blocks_") for k in keys) == ldm
    assert_fuses_everywhere(xl, path, keys)


def test_sdxl_peft_layout(tiny_xl, tmp_path):
    xl = xl_copy(tiny_xl)
    path = lf.write_peft_lora(tmp_path / "xl.safetensors", xl, alpha=8)
    keys = set(read_lora(path).modules)
    assert any(k.startswith("text_encoder_2.text_model.") for k in keys)
    assert_fuses_everywhere(xl, path, keys)


def assert_fuses_everywhere(xl, path, keys) -> None:
    snap = snapshot(xl)
    patcher = LoraPatcher(components(xl))
    assert patcher.apply([LoraUse(read_lora(path))]) == []
    found = {k.split(".")[0] for k in changed(xl, snap)}
    assert found == {"unet", "text_encoder", "text_encoder_2"}
    assert len(changed(xl, snap)) == len(keys)
    patcher.restore()
    assert_identical(xl, snap)


def test_lora_for_another_family_is_not_applied(pipe, tiny_xl, tmp_path):
    snap = snapshot(pipe)
    patcher = LoraPatcher(components(pipe))
    xl = lf.write_kohya_lora(tmp_path / "xl.safetensors", tiny_xl)
    assert patcher.apply([LoraUse(read_lora(xl), label="xl")]) == [
        "LoRA 'xl' is made for another model family (cross-attention 64) but this model's is 32: not applied"]
    te_only = lf.write_kohya_lora(tmp_path / "xl_te.safetensors", tiny_xl, unet=False)
    assert patcher.apply([LoraUse(read_lora(te_only))]) == [
        "LoRA 'xl_te' is made for SDXL (two text encoders) but this model has one: not applied"]
    key = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    real = lf.save_lora(tmp_path / "real_xl.safetensors", {f"{key}.lora_down.weight": torch.zeros(4, 2048),
                                                          f"{key}.lora_up.weight": torch.zeros(640, 4)})
    assert patcher.apply([LoraUse(read_lora(real), label="r")]) == [
        "LoRA 'r' is made for SDXL (cross-attention 2048) but this model's is 32: not applied"]
    assert not patcher.fused
    assert_identical(pipe, snap)


@pytest.mark.parametrize("kind, title", [("OFT", "LyCORIS OFT"), ("DoRA", "DoRA"), ("IA3", "LyCORIS IA3"),
                                         ("GLoRA", "LyCORIS GLoRA"), ("norm", "LyCORIS norm")])
def test_unsupported_layer_type_means_not_applied_at_all(pipe, tmp_path, kind, title):
    network = read_lora(lf.write_unsupported(tmp_path / "u.safetensors", pipe, kind=kind))
    assert list(network.unsupported) == [kind] and network.modules
    snap = snapshot(pipe)
    patcher = LoraPatcher(components(pipe))
    assert patcher.apply([LoraUse(network, label="u")]) == [
        f"LoRA 'u' has {title} layers, which sdui cannot apply: not applied"]
    assert_identical(pipe, snap)


def test_unmatched_and_misfit_layers_are_reported(pipe, tmp_path):
    tensors = {"lora_unet_nowhere.lora_down.weight": torch.zeros(2, 3),
               "lora_unet_nowhere.lora_up.weight": torch.zeros(3, 2)}
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe, te=False))
    extra = read_lora(lf.save_lora(tmp_path / "extra.safetensors", {
        **{f"{m.key}.{r}": t for m in network.modules.values() for r, t in m.tensors.items()}, **tensors}))
    total, pristine = len(extra.modules), snapshot(pipe)
    patcher = LoraPatcher(components(pipe))
    assert patcher.apply([LoraUse(extra, label="e")]) == [
        f"LoRA 'e': 1 of {total} layers match no layer of this model (e.g. lora_unet_nowhere): the other "
        f"{total - 1} applied"]
    assert patcher.fused
    none = read_lora(lf.save_lora(tmp_path / "none.safetensors", tensors))
    assert patcher.apply([LoraUse(none, label="n")]) == ["LoRA 'n': none of its 1 layers match this model: not applied"]
    assert not patcher.fused
    assert_identical(pipe, pristine)  # the previous LoRA is undone, this one changes nothing
    key = f"lora_unet_{CONV.replace('.', '_')}"
    misfit = read_lora(lf.save_lora(tmp_path / "misfit.safetensors", {f"{key}.lora_down.weight": torch.zeros(2, 32),
                                                                      f"{key}.lora_up.weight": torch.zeros(32, 2)}))
    warnings = patcher.apply([LoraUse(misfit, label="m")])
    assert len(warnings) == 1 and warnings[0].startswith("LoRA 'm' does not fit this model") and CONV in warnings[0]


def test_failure_midway_restores_what_was_touched(pipe, tmp_path, monkeypatch):
    network = read_lora(lf.write_kohya_lora(tmp_path / "k.safetensors", pipe, conv=True))
    other = read_lora(lf.write_loha(tmp_path / "h.safetensors", pipe))
    snap = snapshot(pipe)
    patcher = LoraPatcher(components(pipe))
    patcher.apply([LoraUse(other)])
    calls = []
    real_add = patch_module._add

    def failing_add(target, change):
        calls.append(1)
        if len(calls) == 20:
            raise RuntimeError("out of memory (test)")
        real_add(target, change)

    monkeypatch.setattr(patch_module, "_add", failing_add)
    with pytest.raises(RuntimeError, match="test"):
        patcher.apply([LoraUse(network)])
    assert len(calls) == 20 and not patcher.fused
    assert_identical(pipe, snap)


def test_truncated_safetensors_is_broken_and_named(pipe, tmp_path):
    path = lf.write_kohya_lora(tmp_path / "cut.safetensors", pipe)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BrokenModel, match=r"cut\.safetensors"):
        read_lora(path)


class Evil:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = Evil()
    evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2), "evil": evil}, path)
    with pytest.raises(UnsafeModel, match=r"evil\.pt.*system"):
        read_lora(path)
    assert not marker.exists()


def test_checkpoint_or_non_lora_file_is_unrecognized(tiny, tmp_path):
    checkpoint = save_single_file(tiny, tmp_path / "model.safetensors")
    with pytest.raises(UnrecognizedModel, match=r"model\.safetensors.*looks like a checkpoint, not a LoRA"):
        read_lora(checkpoint)
    other = tmp_path / "unet.safetensors"
    save_file({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(2)}, str(other))
    with pytest.raises(UnrecognizedModel, match=r"unet\.safetensors.*no LoRA layers"):
        read_lora(other)


def test_file_too_big_is_refused_before_reading(pipe, tmp_path, monkeypatch):
    path = lf.write_kohya_lora(tmp_path / "big.safetensors", pipe)
    monkeypatch.setattr(lora_module, "MAX_LORA_BYTES", 1000)
    monkeypatch.setattr(lora_module, "_read_tensors", lambda p: pytest.fail("read before the size check"))
    with pytest.raises(UnrecognizedModel, match=r"big\.safetensors.*too big for a LoRA"):
        read_lora(path)
