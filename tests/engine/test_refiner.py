"""A1111's refiner through the real engine: two tiny SD1 checkpoints, which UNet runs at which step, and the rest."""

from __future__ import annotations

import contextlib
import shutil
import threading

import numpy as np
import pytest
import torch

from sdui.engine.generate import Engine
from sdui.engine.refiner import switch_step
from sdui.engine.result import Progress
from sdui.engine.samplers import build_scheduler
from sdui.models.catalog import Catalog
from sdui.models.layout import write_tiny_checkpoint
from sdui.models.manager import ModelManager
from sdui.models.tiny import (DEMO_NAME, SD_SCHEDULER_CONFIG, TINY_CLIP_G_PROJECTION, TINY_CLIP_G_WIDTH,
                              TINY_CROSS_ATTENTION_DIM, save_tiny_model)
from sdui.outputs.infotext import parse_infotext
from sdui.settings import Settings

from .conftest import pixels, small

REFINER = "tiny-refiner"


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir):
    """The demo model, a copy whose UNet weights are perturbed (the refiner), a 9-channel and an SDXL tiny model."""
    from diffusers import StableDiffusionPipeline

    root = tmp_path_factory.mktemp("refiner-models")
    shutil.copytree(tiny_model_dir / DEMO_NAME, root / DEMO_NAME)
    pipe = StableDiffusionPipeline.from_pretrained(root / DEMO_NAME, local_files_only=True)
    noise = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for weight in pipe.unet.parameters():
            weight.add_(0.05 * torch.randn(weight.shape, generator=noise))
    pipe.save_pretrained(root / REFINER, safe_serialization=True)
    save_tiny_model(root / "tiny-inpainting", in_channels=9)
    save_tiny_model(root / "tiny-sdxl", family="sdxl")
    return root


@pytest.fixture(scope="module")
def engine(models, tmp_path_factory) -> Engine:
    cache = tmp_path_factory.mktemp("refiner-cache")
    # One model in memory (the default): the refiner must still load beside the job's own model.
    settings = Settings.for_data_dir(cache, ckpt_dir=models, device="cpu", fast_path=False, models_in_memory=1)
    return Engine(ModelManager(Catalog(models, cache), settings))


def job(**changes):
    """10 Euler steps of the demo model at 64², the perturbed copy as refiner."""
    base = dict(checkpoint=DEMO_NAME, sampler="Euler", steps=10, refiner_checkpoint=REFINER)
    base.update(changes)
    return small(**base)


@contextlib.contextmanager
def unet_calls(engine):
    """Each denoiser call of the jobs run inside, as (which UNet, its timestep, the latents' side)."""
    engine.run(job(steps=1))  # loads both (a refiner is prepared whether it switches or not)
    calls: list[tuple[str, float, int]] = []
    handles = []
    for label, name in (("base", DEMO_NAME), ("refiner", REFINER)):
        def record(module, args, kwargs, label=label):
            calls.append((label, float(args[1]), int(args[0].shape[-1])))
        handles.append(engine.manager.get(name).unet.register_forward_pre_hook(record, with_kwargs=True))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def labels(calls) -> list[str]:
    return [label for label, _, _ in calls]


@pytest.mark.parametrize("sampler, steps, switch_at, by_steps, base_calls, calls", [
    # Uniform: timesteps 999, 888, ..., 111, 0. (999 - 222) / 1000 < 0.8 <= (999 - 111) / 1000
    ("Euler", 10, 0.8, False, 8, 10),
    ("Euler", 10, 0.5, False, 5, 10),  # (999 - 555) / 1000 < 0.5 <= (999 - 444) / 1000
    ("Euler", 10, 0.8, True, 8, 10),  # 8 / 10 >= 0.8
    # Karras: timesteps 999, 916, 815, 687, 523, 327, 146, 41, 7, 0: the noise is gone sooner than the steps
    ("DPM++ 2M", 10, 0.8, False, 6, 10),  # (999 - 146) / 1000 >= 0.8
    ("DPM++ 2M", 10, 0.8, True, 8, 10),
    # Heun calls twice a step (9 calls for 5 steps); A1111 counts 10: by steps the refiner makes only the last
    ("Heun", 5, 0.8, False, 7, 9),
    ("Heun", 5, 0.8, True, 8, 9),
])
def test_the_refiner_takes_over_at_a1111s_step(engine, sampler, steps, switch_at, by_steps, base_calls, calls):
    with unet_calls(engine) as seen:
        result = engine.run(job(sampler=sampler, steps=steps, refiner_switch_at=switch_at,
                                refiner_switch_by_steps=by_steps))
    assert labels(seen) == ["base"] * base_calls + ["refiner"] * (calls - base_calls)
    info = parse_infotext(result.infotexts[0])
    assert info["Refiner"].startswith(f"{REFINER} [") and info["Refiner switch at"] == f"{switch_at:g}"
    assert info.get("Refiner switch by sampling steps") == ("True" if by_steps else None)
    assert info["Model"] == DEMO_NAME


def test_the_switch_step_follows_the_rule_without_a_pipeline():
    def at(sampler, steps, switch_at, strength=None, by_steps=False):
        scheduler = build_scheduler(SD_SCHEDULER_CONFIG, sampler)
        return switch_step(scheduler, steps, strength, switch_at, by_steps)

    assert at("Euler", 20, 0.8) == 16 and at("Euler", 20, 0.5) == 10  # A1111's 20-step defaults
    assert at("Euler", 10, 1.0) is None  # the last call is at (999 - 0) / 1000 < 1: never
    assert at("Euler", 10, 0.01) == 1  # the first call is at t = 999: 0 done
    assert at("DDIM", 4, 0.2) == 0  # DDIM starts at t = 751: a quarter is already done
    assert at("Euler", 10, 0.5, strength=0.5) == 0  # img2img starts at t = 444: more than half done
    assert at("Euler", 10, 0.8, strength=0.5) == 3 and at("Euler", 10, 0.8, strength=0.5, by_steps=True) == 4


def test_switch_at_1_and_the_refiner_being_the_checkpoint_change_nothing(engine):
    plain = engine.run(job(refiner_checkpoint=""))
    for same in (engine.run(job(refiner_switch_at=1.0)), engine.run(job(refiner_checkpoint=DEMO_NAME))):
        assert np.array_equal(pixels(same.images[0]), pixels(plain.images[0]))
        assert "Refiner" not in parse_infotext(same.infotexts[0])
        assert same.infotexts[0] == plain.infotexts[0]


def test_the_refiner_changes_the_picture_and_repeats_it(engine):
    refined = engine.run(job())
    assert not np.array_equal(pixels(refined.images[0]), pixels(engine.run(job(refiner_checkpoint="")).images[0]))
    refiner_alone = engine.run(job(checkpoint=REFINER, refiner_checkpoint=""))
    assert not np.array_equal(pixels(refined.images[0]), pixels(refiner_alone.images[0]))
    assert np.array_equal(pixels(refined.images[0]), pixels(engine.run(job()).images[0]))


def test_every_batch_switches_and_a_batch_equals_its_single_run(engine):
    with unet_calls(engine) as seen:
        batch = engine.run(job(batch_count=2, batch_size=2, seed=40))
    assert labels(seen) == (["base"] * 8 + ["refiner"] * 2) * 2
    single = engine.run(job(seed=43))
    assert np.abs(pixels(batch.images[3]) - pixels(single.images[0])).max() <= 1


def test_the_refiner_unet_never_stays_in_the_base_pipeline(engine):
    manager = engine.manager
    engine.run(job(steps=1))
    own = manager.get(DEMO_NAME).unet
    refiner_unet = manager.get(REFINER).unet

    def base_unets():
        return [manager.get(DEMO_NAME, task).unet for task in ("txt2img", "img2img")]

    engine.run(job())
    assert all(unet is own for unet in base_unets())
    cancel = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.step == 9:  # the refiner's first step
            cancel.set()

    interrupted = engine.run(job(), progress=on_progress, cancel=cancel)
    assert interrupted.interrupted and "Refiner" in parse_infotext(interrupted.infotexts[0])
    assert all(unet is own for unet in base_unets())

    def fail(module, args):
        raise RuntimeError("the refiner's UNet broke")

    handle = refiner_unet.register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="broke"):
            engine.run(job())
    finally:
        handle.remove()
    assert all(unet is own for unet in base_unets())
    assert manager.get(REFINER).unet is refiner_unet


@pytest.mark.parametrize("hires_pass, first, second", [
    ("second pass", ["base"] * 4, ["base"] * 3 + ["refiner"]),  # A1111's default
    ("first pass", ["base"] * 3 + ["refiner"], ["base"] * 4),
    ("both passes", ["base"] * 3 + ["refiner"], ["base"] * 3 + ["refiner"]),
])
def test_hires_fix_switches_in_the_passes_its_setting_names(engine, hires_pass, first, second):
    params = job(steps=4, enable_hr=True, hr_scale=2.0, hr_second_pass_steps=4, denoising_strength=1.0,
                 hires_refiner_pass=hires_pass)
    with unet_calls(engine) as seen:
        result = engine.run(params)
    assert result.images[0].size == (128, 128)
    assert [label for label, _, side in seen if side == 8] == first
    assert [label for label, _, side in seen if side == 16] == second
    info = parse_infotext(result.infotexts[0])
    assert info["Refiner"].startswith(REFINER) and info["Refiner switch at"] == "0.8"
    assert info.get("Hires refiner") == (None if hires_pass == "second pass" else hires_pass)


def test_the_refiner_that_is_the_hires_checkpoint_makes_no_switch_in_the_second_pass(engine):
    params = job(steps=4, enable_hr=True, hr_second_pass_steps=4, denoising_strength=1.0, hr_checkpoint=REFINER)
    with unet_calls(engine) as seen:
        result = engine.run(params)
    assert labels(seen) == ["base"] * 4 + ["refiner"] * 4  # the hires pass runs on the refiner checkpoint anyway
    assert "Refiner" not in parse_infotext(result.infotexts[0])


def test_img2img_switches_within_its_own_steps_or_refines_from_the_first(engine, photo):
    with unet_calls(engine) as seen:
        engine.run(job(mode="img2img", init_image=photo, denoising_strength=0.5))
    assert labels(seen) == ["base"] * 3 + ["refiner"] * 2  # 5 steps from t = 444: 111 is the first >= 0.8 done
    # Half done already at the first step: the refiner makes the whole pass, as if it were the checkpoint.
    whole = engine.run(job(mode="img2img", init_image=photo, denoising_strength=0.5, refiner_switch_at=0.5))
    alone = engine.run(job(mode="img2img", init_image=photo, denoising_strength=0.5, checkpoint=REFINER,
                           refiner_checkpoint=""))
    assert np.array_equal(pixels(whole.images[0]), pixels(alone.images[0]))
    info = parse_infotext(whole.infotexts[0])
    assert info["Model"] == DEMO_NAME and info["Refiner switch at"] == "0.5"


def test_txt2img_refined_from_its_first_step_is_the_refiners_picture(engine):
    # DDIM's 4 steps start at t = 751: a quarter done before the first call, so 0.2 hands over the whole pass.
    with unet_calls(engine) as seen:
        whole = engine.run(job(sampler="DDIM", steps=4, refiner_switch_at=0.2))
    assert labels(seen) == ["refiner"] * 4
    alone = engine.run(job(sampler="DDIM", steps=4, checkpoint=REFINER, refiner_checkpoint=""))
    assert np.array_equal(pixels(whole.images[0]), pixels(alone.images[0]))
    assert parse_infotext(whole.infotexts[0])["Refiner switch at"] == "0.2"
    assert all(engine.manager.get(DEMO_NAME, task).unet is not engine.manager.get(REFINER, "img2img").unet
               for task in ("txt2img", "img2img"))


def test_inpaint_with_a_refiner_keeps_the_pixels_outside_the_mask(engine, photo, center_mask):
    result = engine.run(job(mode="inpaint", init_image=photo, mask=center_mask, denoising_strength=0.75))
    assert "Refiner" in parse_infotext(result.infotexts[0])
    assert np.array_equal(pixels(result.images[0])[:8], pixels(photo)[:8])


def test_both_models_stay_loaded_and_the_base_stays_the_current_one(engine):
    manager = engine.manager
    engine.run(job())
    loads = manager.load_count
    for _ in range(2):
        engine.run(job())
    assert manager.load_count == loads  # over models_in_memory=1 while a refiner job keeps them both
    assert set(manager.loaded()) >= {manager.info(DEMO_NAME).title, manager.info(REFINER).title}
    assert manager.info(None).title == manager.info(DEMO_NAME).title


@pytest.mark.parametrize("refiner, message", [
    ("no-such-model", "refiner_checkpoint 'no-such-model' is not installed"),
    ("tiny-inpainting", "refiner_checkpoint 'tiny-inpainting' has a UNet with 9 input channels"),
    ("tiny-sdxl", "refiner_checkpoint 'tiny-sdxl' works in another latent space"),
])
def test_a_refiner_that_cannot_continue_is_refused_before_any_step(engine, refiner, message):
    steps: list[Progress] = []
    with pytest.raises(ValueError, match=message):
        engine.run(job(refiner_checkpoint=refiner), progress=steps.append)
    assert steps == []


@pytest.fixture(scope="module")
def sdxl_engine(tmp_path_factory) -> Engine:
    """A tiny SDXL base and a tiny SDXL refiner (bigG only, aesthetic-score time ids), as single files."""
    models = tmp_path_factory.mktemp("sdxl-refiner-models")
    write_tiny_checkpoint(models / "tiny-xl.safetensors", family="sdxl")
    write_tiny_checkpoint(models / "tiny-xl-refiner.safetensors", family="sdxl-refiner")
    cache = tmp_path_factory.mktemp("sdxl-refiner-cache")
    settings = Settings.for_data_dir(cache, ckpt_dir=models, device="cpu", fast_path=False)
    return Engine(ModelManager(Catalog(models, cache), settings))


def test_an_sdxl_refiner_continues_an_sdxl_base_with_its_own_conditioning(sdxl_engine, photo):
    params = small(checkpoint="tiny-xl", refiner_checkpoint="tiny-xl-refiner", sampler="Euler", steps=10,
                   batch_size=2)
    plain = sdxl_engine.run(params.replace(refiner_checkpoint=""))  # loads the base; the next job the refiner
    sdxl_engine.run(params.replace(steps=1))
    calls = []
    handles = []
    for label, name in (("base", "tiny-xl"), ("refiner", "tiny-xl-refiner")):
        def record(module, args, kwargs, label=label):
            calls.append((label, kwargs["encoder_hidden_states"].shape[-1],
                          kwargs["added_cond_kwargs"]["text_embeds"].shape[-1],
                          kwargs["added_cond_kwargs"]["time_ids"].tolist()))
        unet = sdxl_engine.manager.get(name, "img2img").unet  # the refiner has no txt2img pipeline; same UNet
        handles.append(unet.register_forward_pre_hook(record, with_kwargs=True))
    try:
        result = sdxl_engine.run(params)
        calls_txt2img, calls[:] = list(calls), []
        whole = sdxl_engine.run(params.replace(mode="img2img", init_image=photo, denoising_strength=0.3,
                                               refiner_switch_at=0.5))
    finally:
        for handle in handles:
            handle.remove()
    base = ("base", TINY_CROSS_ATTENTION_DIM + TINY_CLIP_G_WIDTH, TINY_CLIP_G_PROJECTION, [[64, 64, 0, 0, 64, 64]] * 4)
    # The refiner's own prompts (OpenCLIP bigG only) and A1111's aesthetic scores: 2.5 negative, 6 positive.
    aesthetic = [[64, 64, 0, 0, 2.5]] * 2 + [[64, 64, 0, 0, 6]] * 2  # [negative × 2, positive × 2], as the embeds
    refined = ("refiner", TINY_CLIP_G_WIDTH, TINY_CLIP_G_PROJECTION, aesthetic)
    assert calls_txt2img == [base] * 8 + [refined] * 2
    assert not np.array_equal(pixels(result.images[0]), pixels(plain.images[0]))
    assert parse_infotext(result.infotexts[0])["Refiner"].startswith("tiny-xl-refiner [")
    # img2img from t = 299, already more than half done: the refiner's own img2img pipeline makes the whole pass.
    assert calls == [refined] * 3 and "Refiner" in parse_infotext(whole.infotexts[0])
    # txt2img from noise on an SDXL refiner alone (DDIM's 4 steps start a quarter done): refused before any step
    with pytest.raises(ValueError, match="refiner_switch_at 0.2 hands the whole pass to the refiner"):
        sdxl_engine.run(params.replace(sampler="DDIM", steps=4, refiner_switch_at=0.2))


def test_the_refiner_says_what_of_the_prompt_its_steps_leave_out(engine):
    plain = engine.run(job(refiner_switch_at=0.5))
    assert not plain.warnings
    edited = engine.run(job(prompt="a cat AND a dog", negative_prompt="[blurry:ugly:0.8]", refiner_switch_at=0.5))
    assert any("only the first AND part" in w for w in edited.warnings)
    assert any("prompt editing and alternation after the switch" in w for w in edited.warnings)
    before = engine.run(job(prompt="a [cat:dog:0.2]", refiner_switch_at=0.5))  # switched before the refiner
    assert not before.warnings
