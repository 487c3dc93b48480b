"""Extra networks through the Engine on the real manager: LoRA, embeddings and VAE, and a cache that never leaks.

Real files in A1111's folders (written by tests/networks/*_files.py for the tiny model), real diffusers pipelines.
"""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from sdui.engine.generate import Engine
from sdui.engine.samplers import build_scheduler
from sdui.models.catalog import Catalog
from sdui.models.errors import ModelError, UnsafeModel, WrongFamily
from sdui.models.layout import save_single_file
from sdui.models.manager import ModelManager, Task
from sdui.models.tiny import DEMO_NAME, build_tiny_pipeline
from sdui.outputs.infotext import params_from_infotext, read_params
from sdui.params import GenerationParams
from sdui.settings import Settings
from tests.networks import embedding_files, lora_files, vae_files

from .conftest import pixels, small


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny_model_dir):
    """An A1111-style data dir: the tiny model, LoRAs, embeddings and VAEs made for it (and some that do not fit)."""
    root = tmp_path_factory.mktemp("data")
    models = root / "models"
    shutil.copytree(tiny_model_dir / DEMO_NAME, models / "Stable-diffusion" / DEMO_NAME)
    pipe = build_tiny_pipeline()
    lora = models / "Lora"
    lora.mkdir(parents=True)
    lora_files.write_kohya_lora(lora / "style.safetensors", pipe, rank=4, conv=True, seed=1, std=0.3)
    lora_files.write_kohya_lora(lora / "other.safetensors", pipe, rank=4, seed=2, std=0.3)
    lora_files.write_loha(lora / "sub" / "loha.safetensors", pipe, rank=4, seed=3)
    lora_files.write_unsupported(lora / "oft.safetensors", pipe, kind="OFT")
    from tests.engine.conftest import build_tiny_sdxl

    lora_files.write_kohya_lora(lora / "xl.safetensors", build_tiny_sdxl(), rank=4, seed=4)
    (lora / "broken.safetensors").write_bytes((10_000).to_bytes(8, "little") + b'{"a": ')
    emb = root / "embeddings"
    emb.mkdir()
    same = embedding_files.vectors(2, 32, seed=7) * 50
    embedding_files.write_a1111_pt(emb / "twin-one.pt", same)
    embedding_files.write_emb_params_safetensors(emb / "twin-two.safetensors", same)
    embedding_files.write_emb_params_safetensors(emb / "wide.safetensors", embedding_files.vectors(1, 768))
    vae = models / "VAE"
    vae_files.write_ldm_safetensors(vae_files.finetuned(pipe.vae, "decoder", noise=0.2), vae / "ft.safetensors")
    vae_files.write_ldm_safetensors(vae_files.sdxl_vae(), vae / "sdxl_vae.safetensors")
    return root


def _manager(data_dir, cache) -> ModelManager:
    settings = Settings.for_data_dir(data_dir, cache_dir=cache, device="cpu", fast_path=False)
    return ModelManager(Catalog(settings.ckpt_dir, cache, exclude=settings.network_dirs), settings)


@pytest.fixture(scope="module")
def engine(data_dir, tmp_path_factory) -> Engine:
    return Engine(_manager(data_dir, tmp_path_factory.mktemp("extras-cache")))


def _same(a, b) -> bool:
    return np.array_equal(pixels(a), pixels(b))


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name in ("unet", "text_encoder", "vae")
            for k, v in getattr(pipe, name).state_dict().items()}


def test_a_plain_job_after_any_sequence_of_jobs_equals_one_on_a_fresh_model(engine, data_dir, tmp_path, photo):
    fresh = Engine(_manager(data_dir, tmp_path / "fresh"))
    expected = fresh.run(small(sampler="Euler")).images[0]
    loaded = _weights(fresh.manager.get(None))
    cancel = threading.Event()
    jobs = [small(prompt="a <lora:style:1> twin-one", vae="ft.safetensors", sampler="DPM++ 2M"),
            small(prompt="x <lora:loha:0.7>", negative_prompt="<lora:other:-1>", mode="img2img", init_image=photo),
            small(prompt="<lora:broken:1>"),  # refused: the job fails before any work
            small(prompt="<lora:style:0.5>", batch_count=3, vae="ft.safetensors")]
    for params in jobs:
        if params.batch_count == 3:
            cancel.set()  # interrupted before its first batch: still a prepared pipeline that must be restored
        try:
            engine.run(params, cancel=cancel)
        except ModelError:
            pass
    cancel.clear()
    assert _same(engine.run(small(sampler="Euler")).images[0], expected)
    after = _weights(engine.manager.get(None))
    assert all(torch.equal(after[k], v) for k, v in loaded.items()), "a weight differs from the loaded model"


def test_lora_changes_the_image_weight_zero_does_not_and_the_infotext_keeps_the_prompt(engine, data_dir):
    plain = engine.run(small()).images[0]
    prompt = "a photo of a cat <lora:style:0.8>"
    with_lora = engine.run(small(prompt=prompt))
    assert not _same(with_lora.images[0], plain)
    assert _same(engine.run(small(prompt="a photo of a cat <lora:style:0>")).images[0], plain)
    assert _same(engine.run(small(prompt="a photo of a cat <lora:style:te=0:unet=0>")).images[0], plain)
    text = with_lora.infotexts[0]
    assert text.split("\n")[0] == prompt and with_lora.warnings == []
    addnet = engine.manager.extras.hashes.addnet(data_dir / "models" / "Lora" / "style.safetensors")[:12]
    assert f'Lora hashes: "style: {addnet}"' in text
    # Only the UNet or only the text encoder: both change the picture, differently.
    unet_only = engine.run(small(prompt="a photo of a cat <lora:style:te=0:unet=0.8>")).images[0]
    te_only = engine.run(small(prompt="a photo of a cat <lora:style:te=0.8:unet=0>")).images[0]
    assert len({pixels(i).tobytes() for i in (plain, unet_only, te_only, with_lora.images[0])}) == 4
    # In the negative prompt too (A1111 applies a tag wherever it is written).
    assert _same(engine.run(small(negative_prompt="blurry <lora:style:0.8>", prompt="a photo of a cat")).images[0],
                 with_lora.images[0])


def test_the_same_loras_in_the_next_job_are_not_applied_again(engine):
    prompt = "<lora:style:1> <lora:other:0.5>"
    first = engine.run(small(prompt=prompt))
    patcher = engine.manager._entry(engine.manager.info(None)).patcher
    weight = next(p for n, p in engine.manager.get(None).unet.named_parameters() if n.endswith("attn1.to_q.weight"))
    original = weight.clone()  # get() restored the loaded weights
    fused_before = patcher.fuse_count
    second = engine.run(small(prompt=prompt))
    fused = weight.clone()
    third = engine.run(small(prompt=prompt))
    assert patcher.fuse_count == fused_before + 1, "the same LoRA set was fused again for the third job"
    assert torch.equal(weight, fused) and not torch.equal(fused, original)
    assert _same(first.images[0], second.images[0]) and _same(second.images[0], third.images[0])


def test_loras_that_cannot_apply_are_warnings_and_the_image_is_still_made(engine):
    plain = engine.run(small()).images[0]
    result = engine.run(small(prompt="a photo of a cat <lora:missing:1> <lora:xl:1> <lora:oft:1> "
                                     "<hypernet:h:1> <lora:style:0:lbw=ALL>"))
    assert _same(result.images[0], plain)
    warnings = "\n".join(result.warnings)
    for needle in ("LoRA 'missing' not found", "'xl'", "OFT", "hypernet", "'lbw'"):
        assert needle in warnings, (needle, result.warnings)
    assert len(result.warnings) == 5
    assert "Lora hashes" not in result.infotexts[0], "a LoRA that was not applied must not be named as used"
    mixed = engine.run(small(prompt="a photo of a cat <lora:oft:1> <lora:style:1>"))
    parameters = mixed.infotexts[0].split("\n")[-1]
    assert parameters.count('Lora hashes: "style: ') == 1 and "oft" not in parameters


def test_a_corrupt_or_unsafe_lora_refuses_the_job_and_runs_nothing(engine, data_dir, tmp_path):
    with pytest.raises(ModelError, match=r"broken\.safetensors"):
        engine.run(small(prompt="<lora:broken:1>"))
    marker = tmp_path / "pwned"
    evil = data_dir / "models" / "Lora" / "evil.pt"
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(1), "run": _Evil(marker)}, evil)
    try:
        engine.manager.extras.refresh()
        with pytest.raises(UnsafeModel, match=r"evil\.pt"):
            engine.run(small(prompt="<lora:evil:1>"))
    finally:
        evil.unlink()
        engine.manager.extras.refresh()
    assert not marker.exists()
    assert engine.run(small()).images, "the engine keeps working"


class _Evil:
    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_regenerating_from_an_infotext_finds_a_renamed_lora_by_its_hash(engine, data_dir):
    made = engine.run(small(prompt="cat <lora:other:1>"))
    lora = data_dir / "models" / "Lora"
    os.rename(lora / "other.safetensors", lora / "renamed.safetensors")
    try:
        engine.manager.extras.refresh()
        again = engine.run(params_from_infotext(made.infotexts[0], small()))
    finally:
        os.rename(lora / "renamed.safetensors", lora / "other.safetensors")
        engine.manager.extras.refresh()
    assert _same(again.images[0], made.images[0])
    assert again.warnings == ["LoRA 'other' not found by name: used 'renamed.safetensors', which has its hash"]


def test_two_embeddings_with_the_same_vectors_give_the_same_image(engine, data_dir):
    plain = engine.run(small(prompt="a photo of a cat")).images[0]
    one = engine.run(small(prompt="a photo of a twin-one cat"))
    two = engine.run(small(prompt="a photo of a twin-two cat"))
    assert _same(one.images[0], two.images[0]) and not _same(one.images[0], plain)
    sha = engine.manager.extras.hashes.sha256(data_dir / "embeddings" / "twin-one.pt")[:12]
    assert f'TI hashes: "twin-one: {sha}"' in one.infotexts[0]
    emphasised = engine.run(small(prompt="a photo of a (twin-one:1.4) cat")).images[0]
    assert not _same(emphasised, one.images[0])
    skipped = engine.run(small(negative_prompt="wide, blurry"))
    assert any("embedding 'wide'" in w and "768" in w for w in skipped.warnings), skipped.warnings
    assert "TI hashes" not in skipped.infotexts[0]


def test_a_vae_file_decodes_and_is_named_in_the_infotext_without_reloading_the_checkpoint(engine, data_dir):
    manager = engine.manager
    own = engine.run(small()).images[0]
    loads = manager.load_count
    chosen = engine.run(small(vae="ft.safetensors"))
    assert not _same(chosen.images[0], own)
    sha = manager.extras.hashes.sha256(data_dir / "models" / "VAE" / "ft.safetensors")
    assert f"VAE hash: {sha[:10]}, VAE: ft.safetensors," in chosen.infotexts[0]
    assert _same(engine.run(small(vae="None")).images[0], own)
    assert _same(engine.run(small(vae="ft")).images[0], chosen.images[0])
    assert manager.load_count == loads, "switching VAE must not reload the checkpoint"
    assert manager.get(None, Task.TXT2IMG).vae is not chosen  # the cached pipeline keeps its own VAE
    missing = engine.run(small(vae="nope.safetensors"))
    assert _same(missing.images[0], own) and "VAE 'nope.safetensors' not found" in missing.warnings[0]
    with pytest.raises(WrongFamily, match=r"sdxl_vae\.safetensors"):
        engine.run(small(vae="sdxl_vae.safetensors"))


def test_automatic_uses_the_vae_beside_a_single_file_checkpoint(data_dir, tmp_path):
    models = tmp_path / "models"
    pipe = build_tiny_pipeline()
    save_single_file(pipe, models / "tiny.safetensors")
    manager = _manager(data_dir, tmp_path / "cache")
    manager.catalog = Catalog(models, tmp_path / "cache")
    engine = Engine(manager)
    own = engine.run(small(checkpoint="tiny")).images[0]
    vae_files.write_ldm_safetensors(vae_files.finetuned(pipe.vae, "decoder", noise=0.2),
                                    models / "tiny.vae.safetensors")
    assert [i.rel for i in manager.catalog.refresh()] == ["tiny.safetensors"]
    automatic = engine.run(small(checkpoint="tiny"))
    assert not _same(automatic.images[0], own) and "VAE: tiny.vae.safetensors" in automatic.infotexts[0]
    assert _same(engine.run(small(checkpoint="tiny", vae="None")).images[0], own)


def test_the_prepared_pipeline_is_put_back_on_error(engine):
    manager = engine.manager
    pipe = manager.get(None, Task.TXT2IMG)
    vae, scheduler = pipe.vae, pipe.scheduler
    with pytest.raises(RuntimeError, match="boom"):
        with manager.prepare(small(vae="ft.safetensors", prompt="<lora:style:1>"), Task.TXT2IMG) as job:
            assert job.pipe is pipe and job.pipe.vae is not vae and job.prompt == ""
            job.pipe.scheduler = build_scheduler(job.scheduler_config, "Euler")
            raise RuntimeError("boom")
    assert pipe.vae is vae and pipe.scheduler is scheduler


def test_changing_loras_under_compile_recompiles_nothing_and_the_graph_sees_the_new_weights(engine, monkeypatch):
    """Weights change in place: a compiled UNet keeps its graph and computes with the fused LoRA."""
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(1)
        return graph_module.forward

    unet = engine.manager.get(None).unet
    eager = unet.forward
    torch._dynamo.reset()
    try:
        unet.forward = torch.compile(eager, backend=counting_backend, fullgraph=True)
        images = [engine.run(small(prompt=p)).images[0] for p in ("<lora:style:1>", "<lora:other:1>", "x")]
        compiled_graphs = len(graphs)
    finally:
        unet.forward = eager
        torch._dynamo.reset()
    assert compiled_graphs == 1, f"{compiled_graphs} graphs for three LoRA sets"
    assert all(_same(a, engine.run(small(prompt=p)).images[0])
               for a, p in zip(images, ("<lora:style:1>", "<lora:other:1>", "x")))


def test_sdxl_loras_and_clip_l_clip_g_embeddings_through_the_engine(sdxl_manager, tmp_path):
    """SDXL: a kohya LoRA with lora_te1_/lora_te2_ and LDM UNet names, a clip_l + clip_g embedding; an SD1 LoRA
    is reported, not applied."""
    from tests.engine.conftest import build_tiny_sdxl

    settings = Settings.for_data_dir(tmp_path, ckpt_dir=sdxl_manager.settings.ckpt_dir, device="cpu", fast_path=False)
    engine = Engine(ModelManager(Catalog(settings.ckpt_dir, tmp_path / "cache"), settings))
    xl = build_tiny_sdxl()
    settings.lora_dir.mkdir(parents=True)
    settings.embeddings_dir.mkdir()
    lora_files.write_kohya_lora(settings.lora_dir / "xl.safetensors", xl, rank=4, seed=5, std=0.3)
    lora_files.write_kohya_lora(settings.lora_dir / "sd1.safetensors", build_tiny_pipeline(), rank=4, seed=6)
    clip_l, clip_g = embedding_files.vectors(2, 32, seed=8) * 50, embedding_files.vectors(2, 32, seed=9) * 50
    embedding_files.write_sdxl_safetensors(settings.embeddings_dir / "xl-one.safetensors", clip_l, clip_g)
    embedding_files.write_sdxl_safetensors(settings.embeddings_dir / "xl-two.safetensors", clip_l, clip_g)
    embedding_files.write_emb_params_safetensors(settings.embeddings_dir / "sd1-only.safetensors", clip_l)
    plain = engine.run(small()).images[0]
    lora = engine.run(small(prompt="a photo of a cat <lora:xl:1>"))
    assert not _same(lora.images[0], plain) and lora.warnings == [] and 'Lora hashes: "xl: ' in lora.infotexts[0]
    sd1 = engine.run(small(prompt="a photo of a cat <lora:sd1:1>"))
    assert _same(sd1.images[0], plain) and "LoRA 'sd1'" in sd1.warnings[0]
    one, two = (engine.run(small(prompt=f"a photo of a {name} cat")) for name in ("xl-one", "xl-two"))
    assert _same(one.images[0], two.images[0]) and not _same(one.images[0], plain)
    assert "TI hashes" in one.infotexts[0]
    assert "sd1-only" in engine.manager.embeddings().skipped
    assert "xl-one" in engine.manager.embeddings().loaded


def _centre_mask(size=(64, 64)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


REGENERATED = {
    "txt2img": {},
    "img2img": {"mode": "img2img", "denoising_strength": 0.7},
    "inpaint": {"mode": "inpaint", "denoising_strength": 0.8, "mask_blur": 2, "inpaint_full_res": True,
                "inpaint_full_res_padding": 8},
    "outpaint": {"mode": "outpaint", "denoising_strength": 0.9, "outpaint_right": 32, "mask_blur": 4},
    "hires": {"enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 2, "denoising_strength": 0.6,
              "hr_upscaler": "Latent (nearest-exact)"},
}


@pytest.mark.parametrize("kind", REGENERATED)
def test_regenerating_from_its_own_infotext_gives_the_same_pixels(engine, photo, kind):
    """Each mode with a LoRA, an embedding, a VAE, Clip skip 2 and NV noise with ENSD: the infotext is all it takes
    (with the init image and mask a PNG does not store)."""
    inputs = {} if kind in ("txt2img", "hires") else {"init_image": photo.resize((64, 64))}
    if kind == "inpaint":
        inputs["mask"] = _centre_mask()
    made = engine.run(small(prompt="a cat <lora:style:0.8>, twin-one", vae="ft.safetensors", clip_skip=2,
                            randn_source="NV", eta_noise_seed_delta=31337, **REGENERATED[kind], **inputs))
    read = read_params(made.infotexts[0], GenerationParams(**inputs, mode=REGENERATED[kind].get("mode", "txt2img")))
    assert read.warnings == [] and made.warnings == []
    assert read.mode.value == REGENERATED[kind].get("mode", "txt2img")
    again = engine.run(read.params)
    assert again.infotexts == made.infotexts
    assert _same(again.images[0], made.images[0])
