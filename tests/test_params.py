"""GenerationParams: defaults as A1111, enum strings accepted, validate() names field, rule and value."""

from __future__ import annotations

import pytest
from PIL import Image

from sdui.params import GenerationParams, MaskedContent, Mode


def test_defaults_are_a1111s():
    p = GenerationParams()
    assert (p.steps, p.cfg_scale, p.width, p.height, p.sampler, p.seed, p.denoising_strength, p.mask_blur) == (
        20, 7.0, 512, 512, "Euler a", -1, 0.75, 4)
    p.validate()


def test_enum_fields_accept_their_string_values():
    p = GenerationParams(mode="inpaint", masked_content="latent noise")
    assert p.mode is Mode.INPAINT and p.masked_content is MaskedContent.LATENT_NOISE
    with pytest.raises(ValueError, match="masked_content must be one of .*got 'bogus'"):
        GenerationParams(masked_content="bogus")


@pytest.mark.parametrize("changes, message", [
    ({"width": 100}, "width must be a multiple of 8 .*got 100"),
    ({"height": 4096}, "height must be a multiple of 8 between 64 and 2048; got 4096"),
    ({"steps": 0}, "steps must be between 1 and 150; got 0"),
    ({"steps": 151}, "steps .*got 151"),
    ({"steps": 2.5}, "steps must be a whole number; got 2.5"),
    ({"cfg_scale": float("nan")}, "cfg_scale must be a number"),
    ({"seed": -2}, "seed must be -1 .*got -2"),
    ({"batch_size": 0}, "batch_size .*got 0"),
    ({"sampler": "Fast"}, "sampler must be one of .*got 'Fast'"),
    ({"schedule": "Weird"}, "schedule type must be one of .*got 'Weird'"),
    ({"mode": "img2img"}, "init_image is required for img2img"),
])
def test_invalid_fields_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        GenerationParams(**changes).validate()


def test_image_modes_check_their_own_fields():
    image = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match="denoising_strength must be between 0 and 1; got -0.1"):
        GenerationParams(mode="img2img", init_image=image, denoising_strength=-0.1).validate()
    with pytest.raises(ValueError, match="mask is required for inpaint"):
        GenerationParams(mode="inpaint", init_image=image).validate()
    with pytest.raises(ValueError, match="outpaint_left must be a non-negative multiple of 8; got 5"):
        GenerationParams(mode="outpaint", init_image=image, outpaint_left=5).validate()
    with pytest.raises(ValueError, match="outpaint needs at least one side"):
        GenerationParams(mode="outpaint", init_image=image).validate()
    with pytest.raises(ValueError, match="outpainted size must be at most 2048x2048; got 2560x512"):
        GenerationParams(mode="outpaint", init_image=image, outpaint_right=2048).validate()
    with pytest.raises(ValueError, match=r"subseed_strength \(variation seed\) works in txt2img only; got 0.5"):
        GenerationParams(mode="img2img", init_image=image, subseed_strength=0.5).validate()
    GenerationParams(mode="outpaint", init_image=image, outpaint_left=64).validate()


def test_old_combined_sampler_names_are_accepted():
    GenerationParams(sampler="DPM++ 2M Karras").validate()


@pytest.mark.parametrize("mode", list(Mode))
def test_negative_masked_area_padding_is_refused_in_every_mode(mode):
    image = Image.new("RGB", (64, 64))
    params = GenerationParams(mode=mode, width=64, height=64, init_image=image, mask=Image.new("L", (64, 64)),
                              outpaint_right=64, inpaint_full_res_padding=-1)
    with pytest.raises(ValueError, match="inpaint_full_res_padding must be between 0 and 256; got -1"):
        params.validate()


@pytest.mark.parametrize(("changes", "message"), [
    ({"randn_source": "cuda"}, "randn_source must be one of CPU, GPU, NV; got 'cuda'"),
    ({"eta_noise_seed_delta": -1}, "eta_noise_seed_delta must be between 0 and"),
    ({"eta_noise_seed_delta": 1.5}, "eta_noise_seed_delta must be a whole number"),
])
def test_rng_fields_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        GenerationParams(**changes).validate()


def test_img2img_needs_at_least_one_step_after_the_denoising_strength():
    image = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match="denoising_strength 0.45 of 2 steps leaves no step to run"):
        GenerationParams(mode="img2img", init_image=image, steps=2, denoising_strength=0.45).validate()
    GenerationParams(mode="img2img", init_image=image, steps=3, denoising_strength=0.45).validate()


@pytest.mark.parametrize("changes, field", [
    ({"refiner_switch_at": 0.0}, "refiner_switch_at must be above 0 and at most 1"),
    ({"refiner_switch_at": 1.5}, "refiner_switch_at must be above 0"),
    ({"refiner_switch_at": "0.8"}, "refiner_switch_at must be a number"),
    ({"hires_refiner_pass": "third pass"}, "hires_refiner_pass must be one of 'first pass', 'second pass'"),
    ({"refiner_checkpoint": None}, "refiner_checkpoint must be a checkpoint title or name"),
    ({"refiner_switch_by_steps": 1}, "refiner_switch_by_steps must be true or false"),
])
def test_refiner_fields_are_checked_by_name(changes, field):
    assert GenerationParams().refiner_switch_at == 0.8 and GenerationParams().hires_refiner_pass == "second pass"
    with pytest.raises(ValueError, match=field):
        GenerationParams(**changes).validate()
