"""VAE files: every format loads the file's weights into the checkpoint VAE's shape; other families, other
architectures, broken and hostile files are refused with the file and the reason."""

import copy
import os
import pickle
import re

import pytest
import torch
from safetensors.torch import save_file

from sdui.models.errors import BrokenModel, ModelNotFound, UnrecognizedModel, UnsafeModel, WrongFamily
from sdui.networks.vae import (MAX_STD_RATIO, MIN_CORRELATION, check_latent_space, compare_latents, probe_picture,
                               read_vae, vae_beside)
from tests.networks.vae_files import (SD1_ARCHITECTURE, SDXL_ARCHITECTURE, finetuned, ldm_state_dict, same_weights,
                                      sd1_vae, sdxl_vae, wide_latent_vae, write_diffusers_folder, write_ldm_pickle,
                                      write_ldm_safetensors)


@pytest.fixture(scope="module")
def sd1():
    return sd1_vae()


@pytest.fixture(scope="module")
def sdxl():
    return sdxl_vae()


@pytest.fixture(scope="module")
def tuned(sd1):
    """SD1's encoder with another decoder, as SD1's ft-mse VAE."""
    return finetuned(sd1, "decoder")


def _decode(vae):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return vae.decode(latent.to(vae.dtype)).sample.float()


def _write_diffusers_single(vae, path):
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    return path


WRITERS = {
    "ldm.safetensors": lambda vae, tmp: write_ldm_safetensors(vae, tmp / "x.vae.safetensors"),
    "ldm.pt": lambda vae, tmp: write_ldm_pickle(vae, tmp / "x.vae.pt"),
    "lightning.ckpt": lambda vae, tmp: write_ldm_pickle(vae, tmp / "x.vae.ckpt", wrapped=True),
    "diffusers-folder": lambda vae, tmp: write_diffusers_folder(vae, tmp / "x-vae"),
    "diffusers.safetensors": lambda vae, tmp: _write_diffusers_single(vae, tmp / "x.safetensors"),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_each_format_loads_the_files_weights(tmp_path, sd1, tuned, kind):
    path = WRITERS[kind](tuned, tmp_path)
    vae = read_vae(path, sd1)
    assert same_weights(vae, tuned)
    assert not same_weights(vae, sd1)
    assert not torch.allclose(_decode(vae), _decode(sd1), atol=1e-3)
    assert torch.equal(_decode(vae), _decode(tuned))
    check_latent_space(vae, sd1, "x")


def test_lightning_file_keeps_only_the_vae(tmp_path, sd1, tuned):
    path = write_ldm_pickle(tuned, tmp_path / "kl-f8.ckpt", wrapped=True)
    raw = torch.load(path, weights_only=True)["state_dict"]
    assert any(k.startswith("loss.") for k in raw) and any(k.startswith("model_ema.") for k in raw)
    assert set(read_vae(path, sd1).state_dict()) == set(sd1.state_dict())


def test_old_diffusers_attention_names_load(tmp_path, sd1, tuned):
    renames = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
    old = {}
    for key, value in tuned.state_dict().items():
        for new, before in renames.items():
            key = key.replace(new, before) if ".attentions." in key else key
        old[key] = value.contiguous()
    assert "encoder.mid_block.attentions.0.query.weight" in old
    save_file(old, str(tmp_path / "old.safetensors"))
    assert same_weights(read_vae(tmp_path / "old.safetensors", sd1), tuned)


def test_the_vae_is_built_like_the_checkpoints(tmp_path, sd1, sdxl):
    like = copy.deepcopy(sd1).to(torch.bfloat16).to(memory_format=torch.channels_last)
    path = write_ldm_safetensors(sdxl, tmp_path / "xl.safetensors", dtype=torch.float16)
    vae = read_vae(path, like)
    assert dict(vae.config) == dict(like.config)
    assert vae.config.scaling_factor == 0.18215 != sdxl.config.scaling_factor
    assert vae.dtype == torch.bfloat16 and vae.device == like.device
    assert vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    expected = sdxl.state_dict()["decoder.conv_in.weight"].half().to(torch.bfloat16)
    assert torch.equal(vae.state_dict()["decoder.conv_in.weight"].contiguous(), expected)
    plain = read_vae(write_ldm_safetensors(sdxl, tmp_path / "f32.safetensors"), sd1)
    assert plain.dtype == torch.float32 and plain.decoder.conv_in.weight.is_contiguous()


def test_same_family_fits(sd1, tuned):
    check_latent_space(tuned, sd1, "ft-mse")
    encoder_tuned = finetuned(sd1, "encoder", noise=0.02)
    assert min(compare_latents(encoder_tuned, sd1).correlations) > 0.98
    check_latent_space(encoder_tuned, sd1, "anime")
    half = copy.deepcopy(tuned).half()
    check_latent_space(half, sd1, "fp16")
    check_latent_space(sd1, half, "fp32 on an fp16 model")
    assert half.dtype == torch.float16  # compared through a float32 copy, never changed in place


@pytest.mark.parametrize("direction", ["sdxl-on-sd1", "sd1-on-sdxl"])
def test_other_family_is_refused(tmp_path, sd1, sdxl, direction):
    source, own = (sdxl, sd1) if direction == "sdxl-on-sd1" else (sd1, sdxl)
    vae = read_vae(write_ldm_safetensors(source, tmp_path / "other.safetensors"), own)  # same shapes: loads
    agreement = compare_latents(vae, own)
    assert agreement.correlations == pytest.approx((-0.036, -0.035, -0.080, 0.196), abs=2e-3)
    assert agreement.std_ratio == pytest.approx(0.815 if direction == "sdxl-on-sd1" else 1.228, abs=2e-3)
    with pytest.raises(WrongFamily) as info:
        check_latent_space(vae, own, "other")
    assert "VAE 'other' does not fit this model: it encodes to another latent space" in str(info.value)
    assert "another model family" in str(info.value)


def test_a_retrained_encoder_is_refused_by_correlation(sd1):
    retrained = finetuned(sd1, "encoder", noise=0.2)
    agreement = compare_latents(retrained, sd1)
    assert 1 / MAX_STD_RATIO < agreement.std_ratio < MAX_STD_RATIO
    assert min(agreement.correlations) < MIN_CORRELATION
    with pytest.raises(WrongFamily, match="retrained"):
        check_latent_space(retrained, sd1, "retrained")


def test_a_wider_latent_spread_is_refused_by_the_std_ratio(sd1):
    wider = copy.deepcopy(sd1)
    with torch.no_grad():
        wider.quant_conv.weight.mul_(1.4)  # SDXL's latents spread ~1.4x SD1's
        wider.quant_conv.bias.mul_(1.4)
    agreement = compare_latents(wider, sd1)
    assert min(agreement.correlations) > 0.999 and agreement.std_ratio == pytest.approx(1.4, rel=1e-3)
    with pytest.raises(WrongFamily, match=r"1\.40x"):
        check_latent_space(wider, sd1, "wide")


def test_other_latent_channels_do_not_fit(sd1):
    with pytest.raises(WrongFamily, match="VAE 'flux' does not fit this model: it has 16 latent channels"):
        check_latent_space(wide_latent_vae(), sd1, "flux")


def test_nan_weights_are_broken(sd1):
    broken = copy.deepcopy(sd1)
    with torch.no_grad():
        broken.encoder.conv_in.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(BrokenModel, match="VAE 'nan'.*NaN"):
        check_latent_space(broken, sd1, "nan")


def test_probe_picture_is_fixed_and_colourful():
    picture = probe_picture()
    assert picture.shape == (1, 3, 64, 64) and torch.equal(picture, probe_picture())
    assert picture.min() == -1 and picture.max() == 1
    assert len({tuple(p) for p in picture[0].flatten(1).T.tolist()}) > 1000


def test_metadata_names_the_family(tmp_path, sd1, sdxl):
    lying = write_ldm_safetensors(sd1, tmp_path / "a.safetensors", {"modelspec.architecture": SDXL_ARCHITECTURE})
    with pytest.raises(WrongFamily, match=r"a\.safetensors.*modelspec\.architecture 'stable-diffusion-xl-v1-base/vae'"):
        read_vae(lying, sd1)  # SD1 weights: only the metadata tells
    assert same_weights(read_vae(lying, sdxl), sd1)
    honest = write_ldm_safetensors(sd1, tmp_path / "b.safetensors", {"modelspec.architecture": SD1_ARCHITECTURE})
    with pytest.raises(WrongFamily, match="scaling factor is 0.18215, this model's is 0.13025"):
        read_vae(honest, sdxl)
    read_vae(honest, sd1)
    unknown = write_ldm_safetensors(sd1, tmp_path / "c.safetensors", {"modelspec.architecture": "someday/vae"})
    read_vae(unknown, sdxl)


def test_folder_config_names_the_family(tmp_path, sd1, sdxl):
    xl = write_diffusers_folder(sdxl, tmp_path / "sdxl-vae")
    with pytest.raises(WrongFamily, match=r"sdxl-vae.*scaling_factor 0\.13025"):
        read_vae(xl, sd1)
    assert same_weights(read_vae(xl, sdxl), sdxl)
    # Many real folders leave scaling_factor out (diffusers' default 0.18215 applies): no evidence, no refusal.
    silent = write_diffusers_folder(sdxl, tmp_path / "silent", scaling_factor=None)
    vae = read_vae(silent, sdxl)
    assert vae.config.scaling_factor == 0.13025
    with pytest.raises(WrongFamily):
        check_latent_space(read_vae(silent, sd1), sd1, "silent")


def test_folder_of_another_architecture(tmp_path, sd1):
    with pytest.raises(WrongFamily, match=r"wide.*16 latent channels.*has 4"):
        read_vae(write_diffusers_folder(wide_latent_vae(), tmp_path / "wide"), sd1)
    narrow = copy.deepcopy(sd1)
    narrow.register_to_config(block_out_channels=[32, 64, 64, 128])
    narrow.save_config(tmp_path / "narrow")
    with pytest.raises(UnrecognizedModel, match=r"narrow.*block_out_channels \[32, 64, 64, 128\]"):
        read_vae(tmp_path / "narrow", sd1)
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "model_index.json").write_text("{}")
    with pytest.raises(UnrecognizedModel, match=r"pipe.*whole diffusers pipeline"):
        read_vae(tmp_path / "pipe", sd1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnrecognizedModel, match=r"empty.*no config.json"):
        read_vae(tmp_path / "empty", sd1)
    sd1.save_config(tmp_path / "no-weights")
    with pytest.raises(BrokenModel, match=r"no-weights.*no weights file"):
        read_vae(tmp_path / "no-weights", sd1)


def test_sixteen_latent_channels_are_refused(tmp_path, sd1):
    path = write_ldm_safetensors(wide_latent_vae(), tmp_path / "flux.safetensors")
    with pytest.raises(WrongFamily, match=r"flux\.safetensors.*16 latent channels.*has 4"):
        read_vae(path, sd1)


def test_files_that_are_not_this_vae(tmp_path, sd1):
    save_file({"a": torch.ones(3), "lora_unet_x.alpha": torch.ones(())}, str(tmp_path / "random.safetensors"))
    with pytest.raises(UnrecognizedModel, match=r"random\.safetensors.*no VAE tensors.*lora_unet_x"):
        read_vae(tmp_path / "random.safetensors", sd1)
    from sdui.models.layout import save_single_file
    from sdui.models.tiny import build_tiny_pipeline

    checkpoint = save_single_file(build_tiny_pipeline(), tmp_path / "model.safetensors")
    with pytest.raises(UnrecognizedModel, match=r"model\.safetensors.*whole checkpoint.*model\.diffusion_model\."):
        read_vae(checkpoint, sd1)
    wider = ldm_state_dict(sd1)
    wider["encoder.conv_in.weight"] = torch.zeros(48, 3, 3, 3)
    save_file(wider, str(tmp_path / "wider.safetensors"))
    with pytest.raises(UnrecognizedModel, match=r"wider\.safetensors.*encoder\.conv_in\.weight is \[48, 3, 3, 3\]"):
        read_vae(tmp_path / "wider.safetensors", sd1)
    deeper = ldm_state_dict(sd1) | {"encoder.down.4.block.0.conv1.weight": torch.zeros(64, 64, 3, 3)}
    torch.save(deeper, tmp_path / "deeper.pt")
    with pytest.raises(UnrecognizedModel, match=r"deeper\.pt.*does not have \(encoder\.down\.4\.block\.0\.conv1"):
        read_vae(tmp_path / "deeper.pt", sd1)
    (tmp_path / "x.onnx").write_bytes(b"\0" * 16)
    with pytest.raises(UnrecognizedModel, match=r"x\.onnx.*unknown VAE file type '\.onnx'"):
        read_vae(tmp_path / "x.onnx", sd1)
    with pytest.raises(ModelNotFound, match="nothing.pt"):
        read_vae(tmp_path / "nothing.pt", sd1)


def test_missing_tensors_are_named(tmp_path, sd1):
    sd = ldm_state_dict(sd1)
    del sd["decoder.conv_out.weight"], sd["encoder.mid.attn_1.q.bias"]
    save_file(sd, str(tmp_path / "partial.safetensors"))
    message = r"partial\.safetensors.*incomplete: 2 of 180.*decoder\.conv_out\.weight, encoder\.mid\.attn_1\.q\.bias"
    with pytest.raises(BrokenModel, match=message):
        read_vae(tmp_path / "partial.safetensors", sd1)


def test_truncated_and_corrupt_files(tmp_path, sd1):
    path = write_ldm_safetensors(sd1, tmp_path / "cut.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BrokenModel, match=r"cut\.safetensors.*truncated"):
        read_vae(path, sd1)
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json at all")
    with pytest.raises(BrokenModel, match=r"junk\.safetensors.*not valid JSON"):
        read_vae(tmp_path / "junk.safetensors", sd1)
    pt = write_ldm_pickle(sd1, tmp_path / "cut.pt")
    pt.write_bytes(pt.read_bytes()[:5000])
    with pytest.raises(BrokenModel, match=r"cut\.pt"):
        read_vae(pt, sd1)


class Evil:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_pickle_with_code_never_runs(tmp_path, sd1, writer):
    marker = tmp_path / "pwned"
    evil = Evil()
    evil.marker = str(marker)
    payload = {"state_dict": ldm_state_dict(sd1), "evil": evil}
    path = tmp_path / "evil.vae.pt"
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeModel, match=re.escape(str(path)) + ".*system"):
        read_vae(path, sd1)
    assert not marker.exists()


def test_a_file_too_big_for_a_vae_is_not_read(tmp_path, sd1):
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as f:
        f.truncate(2 * 2**30 + 1)  # sparse: nothing written, nothing read
    with pytest.raises(UnrecognizedModel, match=r"huge\.safetensors: 2,048 MiB is too big for a VAE"):
        read_vae(path, sd1)


def test_vae_beside_follows_automatic(tmp_path):
    checkpoint = tmp_path / "model.v2.safetensors"
    checkpoint.write_bytes(b"")
    assert vae_beside(checkpoint) is None
    (tmp_path / "model.vae.pt").write_bytes(b"")  # another stem: not this checkpoint's
    assert vae_beside(checkpoint) is None
    for suffix in (".vae.ckpt", ".vae.pt", ".vae.safetensors"):
        (tmp_path / f"model.v2{suffix}").write_bytes(b"")
        assert vae_beside(checkpoint) == tmp_path / f"model.v2{suffix}"
    folder = tmp_path / "diffusers-model"
    folder.mkdir()
    (tmp_path / "diffusers-model.vae.safetensors").write_bytes(b"")
    assert vae_beside(folder) is None
