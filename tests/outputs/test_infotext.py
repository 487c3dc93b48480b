"""Infotext: exact A1111 layout, parsing A1111's styles, and the format -> parse -> params round trip."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sdui import __version__
from sdui.engine import samplers
from sdui.outputs.infotext import (KEYS, MAX_INFOTEXT_CHARS, format_infotext, params_from_infotext, parse_infotext,
                                   quote, read_params)
from sdui.params import GenerationParams, MaskedContent, Mode, OutpaintFill
from tests.outputs.a1111_fixtures import FIXTURES

VERSION = f"Version: sdui {__version__}"


def _format(params: GenerationParams, **kw) -> str:
    args = {"seed": 123, "subseed": 456, "model_name": "v1-5-pruned", "model_hash": "6ce0161689"} | kw
    return format_infotext(params, **args)


def test_txt2img_layout_is_a1111s():
    p = GenerationParams(prompt="a cat, sitting", negative_prompt="ugly", sampler="DPM++ 2M", schedule="Karras",
                         steps=20, cfg_scale=7.0, width=512, height=768, denoising_strength=0.5, mask_blur=8)
    assert _format(p) == (
        "a cat, sitting\nNegative prompt: ugly\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 123, Size: 512x768, "
        f"Model hash: 6ce0161689, Model: v1-5-pruned, RNG: CPU, {VERSION}")


def test_automatic_schedule_is_written_and_empty_values_left_out():
    p = GenerationParams(prompt="x", cfg_scale=7.5)
    text = _format(p, model_hash="", model_name="")
    assert text == f"x\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 123, " \
                   f"Size: 512x512, RNG: CPU, {VERSION}"


def test_img2img_has_denoising_but_no_mask_keys():
    p = GenerationParams(prompt="x", mode=Mode.IMG2IMG, denoising_strength=0.6, mask_blur=8, inpaint_full_res=True,
                         clip_skip=2, subseed_strength=0.25)
    line = _format(p).split("\n")[-1]
    assert ("Seed: 123, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned, Variation seed: 456, "
            "Variation seed strength: 0.25, Denoising strength: 0.6, Clip skip: 2, RNG: CPU") in line
    assert "Mask blur" not in line and "Inpaint area" not in line


def test_inpaint_keys_in_order():
    p = GenerationParams(prompt="x", mode=Mode.INPAINT, denoising_strength=0.75, mask_blur=4, inpaint_full_res=True,
                         inpaint_full_res_padding=48, masked_content=MaskedContent.LATENT_NOISE, mask_invert=True)
    assert _format(p).endswith(
        "Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked, Masked area padding: 48, "
        f"Masked content: latent noise, Mask mode: Inpaint not masked, RNG: CPU, {VERSION}")


def test_inpaint_defaults_write_only_what_a1111_writes_and_mask_blur():
    p = GenerationParams(prompt="x", mode=Mode.INPAINT, mask_blur=0)
    line = _format(p).split("\n")[-1]
    assert "Denoising strength: 0.75, Mask blur: 0," in line  # Mask blur even at 0: it says the picture was inpainted
    for key in ("Inpaint area", "Masked area padding", "Masked content", "Mask mode", "Outpaint"):
        assert key not in line


def test_outpaint_extents_and_fill():
    p = GenerationParams(prompt="x", mode=Mode.OUTPAINT, outpaint_left=64, outpaint_down=32,
                         outpaint_fill=OutpaintFill.BLUR)
    line = _format(p).split("\n")[-1]
    assert "Mask blur: 4, Outpaint extents: left 64 right 0 up 0 down 32, Outpaint fill: blur, RNG: CPU" in line
    back = params_from_infotext(_format(p), GenerationParams(mode=Mode.OUTPAINT))
    assert back.outpaint_extents == (64, 0, 0, 32) and back.outpaint_fill is OutpaintFill.BLUR


def test_quoting_rule():
    assert quote("plain words") == "plain words"
    assert quote("a, b") == '"a, b"'
    assert quote("a: b") == '"a: b"'
    assert quote('line\nbreak "q"') == '"line\\nbreak \\"q\\""'
    assert quote("naïve 漢字, ok") == '"naïve 漢字, ok"'  # ensure_ascii=False, as A1111
    assert quote({"model": "abc"}) == '{"model": "abc"}'
    assert quote(7.0) == "7" and quote(0.35) == "0.35"


def test_extra_keys_placed_removed_and_quoted():
    p = GenerationParams(prompt="x")
    text = _format(p, extra={"VAE": "sdxl_vae.safetensors", "Lora hashes": "a: 1, b: 2",
                             "Hashes": {"model": "6ce0161689"}, "RNG": None, "Version": "ignored"})
    assert text.split("\n")[-1] == (
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 123, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned, VAE: sdxl_vae.safetensors, "
        f'Lora hashes: "a: 1, b: 2", Hashes: {{"model": "6ce0161689"}}, {VERSION}')
    parsed = parse_infotext(text)
    assert parsed["Lora hashes"] == "a: 1, b: 2" and parsed["Hashes"] == {"model": "6ce0161689"}
    assert parsed["VAE"] == "sdxl_vae.safetensors" and parsed["RNG"] == "GPU"  # A1111's default when absent


def test_old_sampler_alias_is_written_canonically():
    text = _format(GenerationParams(prompt="x", sampler="k_dpmpp_2m", schedule="Automatic"))
    assert "Sampler: DPM++ 2M, Schedule type: Automatic," in text
    text = _format(GenerationParams(prompt="x", sampler="DPM++ 2M Karras"))
    assert "Sampler: DPM++ 2M, Schedule type: Karras," in text


@pytest.mark.parametrize("name,text,expected", FIXTURES, ids=[f[0] for f in FIXTURES])
def test_a1111_styles_parse_to_expected_fields(name, text, expected):
    parsed = parse_infotext(text)
    for key, value in expected.items():
        if value is None:
            assert key not in parsed, key
        else:
            assert parsed.get(key) == value, key


def test_a1111_fixture_becomes_params():
    text = dict((f[0], f[1]) for f in FIXTURES)["inpaint"]
    p = params_from_infotext(text, GenerationParams(mode=Mode.INPAINT))
    assert (p.prompt, p.negative_prompt) == ("a wooden door", "text, watermark")
    assert (p.steps, p.sampler, p.schedule, p.cfg_scale, p.seed) == (20, "Euler a", "Automatic", 7.0, 3001968073)
    assert (p.width, p.height, p.checkpoint) == (768, 512, "realism_engine")
    assert (p.denoising_strength, p.mask_blur, p.inpaint_full_res, p.inpaint_full_res_padding) == (0.6, 8, True, 48)
    assert p.masked_content is MaskedContent.LATENT_NOISE and p.mask_invert is True
    assert p.mode is Mode.INPAINT and p.subseed_strength == 0.0


def test_old_combined_sampler_becomes_sampler_and_schedule():
    text = dict((f[0], f[1]) for f in FIXTURES)["old-combined-sampler"]
    p = params_from_infotext(text)
    assert (p.sampler, p.schedule) == ("DPM++ 2M", "Karras")
    p.validate()


def test_a_sampler_sdui_cannot_run_faithfully_gets_its_substitute_named_and_bad_numbers_name_the_key():
    text = "x\nSteps: 20, Sampler: DPM++ 3M SDE, Schedule type: Align Your Steps, CFG scale: 7, Seed: 1"
    read = read_params(text, GenerationParams(sampler="Heun", schedule="Beta"))
    assert read.params.sampler == "DPM++ 2M SDE"
    assert read.warnings[0].startswith("Sampler: 'DPM++ 3M SDE' cannot run faithfully in sdui (")
    assert read.warnings[0].endswith("used 'DPM++ 2M SDE' instead")
    read = read_params("x\nSteps: 20, Sampler: Foo, Schedule type: Karras, Seed: 1, Hires sampler: Bar, "
                       "Denoising strength: 0.5, Hires upscale: 2")
    assert read.warnings == ["Sampler: 'Foo' is unknown to sdui: used 'Euler a' instead",
                             "Schedule type: 'Karras' cannot run faithfully with 'Euler a' in sdui (sdui cannot hand "
                             "it to diffusers' EulerAncestralDiscreteScheduler): used 'Automatic' instead",
                             "Hires sampler: 'Bar' is unknown to sdui: used 'Euler a' instead"]
    p = params_from_infotext("x\nSteps: 20, Sampler: Euler, Schedule type: Align Your Steps, Seed: 1")
    assert (p.sampler, p.schedule) == ("Euler", "Align Your Steps")
    with pytest.raises(ValueError, match=r"'Steps' must be a whole number; got 'many'"):
        params_from_infotext("x\nSteps: many, Sampler: Euler, CFG scale: 7")
    with pytest.raises(ValueError, match=r"'CFG scale' must be a number; got 'high'"):
        params_from_infotext("x\nSteps: 2, Sampler: Euler, CFG scale: high")
    assert params_from_infotext("x\nSteps: 20.0, Sampler: Euler, CFG scale: 7").steps == 20


def test_unbalanced_quotes_keep_the_prompt():
    text = ('a cat, "quoted\nNegative prompt: dog\n'
            'Steps: 20, Sampler: Euler a, Lora hashes: "x: 1, y: 2, CFG scale: 7, Seed: 99')
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == 'a cat, "quoted' and parsed["Negative prompt"] == "dog"
    assert (parsed["Steps"], parsed["Sampler"], parsed["CFG scale"], parsed["Seed"]) == ("20", "Euler a", "7", "99")
    assert parsed["Lora hashes"] == '"x: 1'  # best effort, as A1111
    assert params_from_infotext(text).seed == 99


def test_prompt_only_text_and_short_last_line_are_prompt():
    parsed = parse_infotext("just a prompt: with, a colon\nsecond line")
    assert parsed["Prompt"] == "just a prompt: with, a colon\nsecond line"
    assert parsed["Negative prompt"] == "" and "Steps" not in parsed and parsed["Clip skip"] == "1"
    # A last line with fewer than 3 `key: value` pairs is still prompt (A1111's rule), not parameters.
    two_pairs = parse_infotext("a cat\nstyle: oil, mood: calm")
    assert two_pairs["Prompt"] == "a cat\nstyle: oil, mood: calm" and "style" not in two_pairs
    three_pairs = parse_infotext("a cat\nstyle: oil, mood: calm, Steps: 4")
    assert three_pairs["Prompt"] == "a cat" and three_pairs["Steps"] == "4" and three_pairs["style"] == "oil"


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="infotext must be text; got bytes"):
        parse_infotext(b"Steps: 20")
    with pytest.raises(ValueError, match=f"at most {MAX_INFOTEXT_CHARS} characters"):
        parse_infotext("a" * (MAX_INFOTEXT_CHARS + 1))
    with pytest.raises(ValueError, match="Outpaint extents"):
        params_from_infotext("x\nSteps: 2, Sampler: Euler, Outpaint extents: everywhere")


def test_parse_is_linear_on_long_lines():
    # A1111's regex backtracks quadratically here; a 1 MB line must still parse at once.
    line = ("word (" * 170_000)[: MAX_INFOTEXT_CHARS - 40] + ": x, Steps: 1, Sampler: Euler, Seed: 2"
    start = time.monotonic()
    parsed = parse_infotext(line)
    assert time.monotonic() - start < 5
    assert parsed["Steps"] == "1" and parsed["Seed"] == "2"


# --- round trip -------------------------------------------------------------------------------------

_ALPHABET = st.one_of(st.sampled_from(list(' ,:;"\'\\{}[]()<>\n\t|=-/_x0123456789éß漢🙂')),
                      st.characters(blacklist_categories=("Cs",)))


def _normalize(text: str) -> str:
    """What survives any A1111 infotext: lines are stripped, and so is the whole."""
    return "\n".join(line.strip() for line in text.split("\n")).strip()


prompts = st.text(_ALPHABET, max_size=80).map(_normalize).filter(
    lambda s: not any(line.startswith("Negative prompt:") for line in s.split("\n")))
model_names = st.text(_ALPHABET, max_size=30).filter(lambda s: not re.match(r"^\d+x\d+$", s.strip()))
floats01 = st.floats(0.0, 1.0, allow_nan=False)
multiple8 = st.integers(0, 32).map(lambda n: n * 8)


@st.composite
def generation_params(draw) -> GenerationParams:
    sampler = draw(st.sampled_from(samplers.sampler_names()))
    return GenerationParams(
        prompt=draw(prompts), negative_prompt=draw(prompts), mode=draw(st.sampled_from(list(Mode))),
        sampler=sampler, schedule=draw(st.sampled_from(samplers.schedules_for(sampler))),
        steps=draw(st.integers(1, 150)), cfg_scale=draw(st.floats(1.0, 30.0)),
        width=draw(st.integers(8, 256).map(lambda n: n * 8)), height=draw(st.integers(8, 256).map(lambda n: n * 8)),
        seed=-1, subseed=-1, subseed_strength=draw(st.one_of(st.just(0.0), floats01)),
        clip_skip=draw(st.integers(1, 12)), denoising_strength=draw(floats01), mask_blur=draw(st.integers(0, 64)),
        inpaint_full_res=draw(st.booleans()), inpaint_full_res_padding=draw(st.integers(0, 256)),
        masked_content=draw(st.sampled_from(list(MaskedContent))), mask_invert=draw(st.booleans()),
        outpaint_left=draw(multiple8), outpaint_right=draw(multiple8), outpaint_up=draw(multiple8),
        outpaint_down=draw(multiple8), outpaint_fill=draw(st.sampled_from(list(OutpaintFill))),
    )


def _carried(p: GenerationParams) -> set[str]:
    """The fields an infotext of `p` carries (the others come back from the base params)."""
    names = {"prompt", "negative_prompt", "sampler", "schedule", "steps", "cfg_scale", "width", "height",
             "seed", "clip_skip", "checkpoint", "subseed_strength", "randn_source", "eta_noise_seed_delta",
             "batch_size"}
    if p.subseed_strength > 0:
        names.add("subseed")
    if p.mode is not Mode.TXT2IMG:
        names.add("denoising_strength")
    if p.mode in (Mode.INPAINT, Mode.OUTPAINT):
        names.add("mask_blur")
    if p.mode is Mode.INPAINT:
        names |= {"inpaint_full_res", "masked_content", "mask_invert"}
        if p.inpaint_full_res:
            names.add("inpaint_full_res_padding")
    if p.mode is Mode.OUTPAINT:
        names |= {"outpaint_left", "outpaint_right", "outpaint_up", "outpaint_down", "outpaint_fill"}
    return names


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=generation_params(), seed=st.integers(0, 2**32 - 1), subseed=st.integers(0, 2**32 - 1),
       model=model_names)
def test_round_trip(p, seed, subseed, model):
    assume(p.mode is not Mode.OUTPAINT or any(p.outpaint_extents))
    text = format_infotext(p, seed=seed, subseed=subseed, model_name=model, model_hash="0123456789")
    base = GenerationParams(mode=p.mode)
    back = params_from_infotext(text, base)
    expected = p.replace(seed=seed, subseed=subseed, checkpoint=model or None)
    for name in _carried(p):
        assert getattr(back, name) == getattr(expected, name), (name, text)
    for name in set(GenerationParams.__dataclass_fields__) - _carried(p):
        assert getattr(back, name) == getattr(base, name), (name, text)
    assert parse_infotext(text)["Model hash"] == "0123456789"


def test_extra_network_keys_of_an_a1111_image_become_params():
    """The prompt keeps its tags as written; Lora hashes find a renamed LoRA later; VAE names the sd_vae choice."""
    text = ('masterpiece, <lora:add_detail:0.8>, <lora:Style Name:te=0.5:unet=1>\n'
            'Negative prompt: EasyNegative, (badhandv4:1.2)\n'
            'Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x768, '
            'Model hash: 6ce0161689, Model: v1-5-pruned, VAE hash: 735e4c3a44, '
            'VAE: vae-ft-mse-840000-ema-pruned.safetensors, '
            'Lora hashes: "add_detail: 7c6bad76eb54, Style Name: 0123456789AB", '
            'TI hashes: "EasyNegative: c74b4e810b03, badhandv4: 5e40d722fc3d", Version: v1.10.1')
    p = params_from_infotext(text)
    assert p.prompt == "masterpiece, <lora:add_detail:0.8>, <lora:Style Name:te=0.5:unet=1>"
    assert p.negative_prompt == "EasyNegative, (badhandv4:1.2)"
    assert p.lora_hashes == {"add_detail": "7c6bad76eb54", "Style Name": "0123456789ab"}
    assert p.vae == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert params_from_infotext("x\nSteps: 20, Seed: 1, Size: 64x64").lora_hashes == {}
    assert params_from_infotext("x\nSteps: 20, Seed: 1, Size: 64x64", GenerationParams(vae="None")).vae == "None"


def test_network_keys_are_written_as_a1111_orders_them():
    p = GenerationParams(prompt="a <lora:x:1>", clip_skip=2)
    extra = {"VAE hash": "735e4c3a44", "VAE": "ft-mse.safetensors", "Lora hashes": "x: 7c6bad76eb54",
             "TI hashes": "bad: c74b4e810b03"}
    text = _format(p, extra=extra)
    assert text.split("\n")[0] == "a <lora:x:1>"
    assert text.split("\n")[-1] == (
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 123, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned, VAE hash: 735e4c3a44, VAE: ft-mse.safetensors, "
        f'Clip skip: 2, RNG: CPU, Lora hashes: "x: 7c6bad76eb54", TI hashes: "bad: c74b4e810b03", {VERSION}')


def test_the_writer_writes_only_mapped_keys_and_the_reader_applies_each_of_them():
    """KEYS is the one mapping: every key format_infotext writes is in it, and reading it back reports none."""
    cases = [
        GenerationParams(prompt="a", negative_prompt="b", clip_skip=2, randn_source="NV", eta_noise_seed_delta=31337,
                         subseed_strength=0.3, enable_hr=True, hr_upscaler="Latent (nearest)", hr_sampler="Euler",
                         hr_prompt="c", hr_negative_prompt="d", hr_second_pass_steps=3, hr_resize_x=128),
        GenerationParams(mode=Mode.INPAINT, mask_blur=0, inpaint_full_res=True, mask_invert=True,
                         masked_content=MaskedContent.FILL),
        GenerationParams(mode=Mode.OUTPAINT, outpaint_left=64, mask_blur=2),
    ]
    for p in cases:
        text = format_infotext(p, seed=1, subseed=2, model_name="m", model_hash="0123456789",
                               extra={"VAE": "v.safetensors", "VAE hash": "abcdef1234", "Lora hashes": "x: 1234",
                                      "TI hashes": "e: 5678", **({"Hires checkpoint": "other"} if p.hires else {})})
        keys = {k.removesuffix("-1").removesuffix("-2") for k in parse_infotext(text)} - {"Prompt", "Negative prompt"}
        assert keys <= set(KEYS), keys - set(KEYS)
        read = read_params(text, GenerationParams(mode=p.mode))
        assert read.warnings == [], read.warnings
        assert read.mode is p.mode


def test_rng_and_ensd_are_written_as_a1111_and_read_back():
    text = _format(GenerationParams(prompt="x", randn_source="NV", eta_noise_seed_delta=31337))
    assert "RNG: NV, ENSD: 31337" in text
    assert "RNG" not in _format(GenerationParams(prompt="x", randn_source="GPU"))  # A1111's default is left out
    assert "ENSD" not in _format(GenerationParams(prompt="x"))
    back = params_from_infotext(text)
    assert (back.randn_source, back.eta_noise_seed_delta) == ("NV", 31337)
    a1111 = params_from_infotext("x\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 64x64")
    assert (a1111.randn_source, a1111.eta_noise_seed_delta) == ("GPU", 0)  # no RNG key: A1111's default, GPU
    read = read_params("x\nSteps: 20, Sampler: Euler a, Seed: 1, RNG: Mersenne")
    assert read.warnings == ["RNG: Mersenne: not applied: sdui knows CPU, GPU, NV; used CPU"]


@pytest.mark.parametrize(("keys", "mode"), [
    ("Steps: 20, Seed: 1, Size: 64x64", Mode.TXT2IMG),
    ("Steps: 20, Seed: 1, Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent", Mode.TXT2IMG),
    ("Steps: 20, Seed: 1, Denoising strength: 0.5", Mode.IMG2IMG),
    ("Steps: 20, Seed: 1, Denoising strength: 0.5, Mask blur: 4", Mode.INPAINT),
    ("Steps: 20, Seed: 1, Denoising strength: 0.5, Inpaint area: Only masked", Mode.INPAINT),
    ("Steps: 20, Seed: 1, Denoising strength: 0.5, Mask blur: 4, Outpaint extents: left 0 right 64 up 0 down 0",
     Mode.OUTPAINT),
])
def test_the_mode_comes_from_the_keys(keys, mode):
    assert read_params(f"x\n{keys}").mode is mode


def test_keys_sdui_does_not_apply_are_named_by_family_and_unknown_ones_one_by_one():
    text = ("x\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ADetailer model: face_yolov8n.pt, "
            "ADetailer confidence: 0.3, ControlNet 0: \"Module: canny, Model: control_v11p\", Eta: 1, "
            "Emphasis: No norm, Distilled CFG Scale: 3.5, Seed resize from: 512x768, My knob: 7, Version: f2.0")
    read = read_params(text)
    assert read.warnings == [
        "ADetailer model, ADetailer confidence: not applied: sdui has no ADetailer",
        "ControlNet 0: not applied: sdui has no ControlNet",
        "Emphasis: not applied: sdui uses A1111's original emphasis",
        "Distilled CFG Scale: not applied: a Flux setting: sdui does not run Flux",
        "Seed resize from: not applied: sdui has no seed resize",
        "My knob: 7: not applied: sdui does not know this key",
    ]  # Eta 1 is what sdui does; Version describes the program


def test_keys_of_another_mode_are_reported_on_the_tab_they_are_sent_to():
    text = ("x\nSteps: 20, Seed: 1, Denoising strength: 0.6, Mask blur: 8, Inpaint area: Only masked, "
            "Masked content: fill")
    read = read_params(text, GenerationParams(mode=Mode.TXT2IMG))
    assert read.mode is Mode.INPAINT
    assert read.warnings == ["Denoising strength, Mask blur, Inpaint area, Masked content: not applied: the picture "
                             "was made with inpaint, and these keys do not apply to txt2img"]
    assert read_params(text, GenerationParams(mode=Mode.INPAINT)).warnings == []
    hires = "x\nSteps: 20, Seed: 1, Denoising strength: 0.6, Hires upscale: 2, Hires upscaler: Latent"
    assert read_params(hires, GenerationParams(mode=Mode.IMG2IMG)).warnings == [
        "Hires upscale, Hires upscaler: not applied: the picture was made with txt2img, and these keys do not apply "
        "to img2img"]


def test_refiner_keys_are_written_where_a1111_writes_them_and_read_back():
    p = GenerationParams(prompt="x", enable_hr=True, hr_scale=2.0, denoising_strength=0.5, refiner_switch_at=0.7,
                         refiner_switch_by_steps=True, hires_refiner_pass="both passes", lora_hashes={})
    extra = {"Lora hashes": "x: 1234", "Hires refiner": "both passes", "Refiner": "tiny-refiner [0123456789]",
             "Refiner switch at": 0.7}  # what the engine adds when the refiner took over
    line = _format(p, extra=extra).split("\n")[-1]
    assert line.endswith('Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "x: 1234", Refiner switch by '
                         'sampling steps: True, Hires refiner: both passes, Refiner: tiny-refiner [0123456789], '
                         f'Refiner switch at: 0.7, {VERSION}')
    read = read_params(_format(p, extra=extra), GenerationParams(refiner_switch_at=0.3))
    assert read.warnings == []
    back = read.params
    assert (back.refiner_checkpoint, back.refiner_switch_at, back.refiner_switch_by_steps, back.hires_refiner_pass) == (
        "tiny-refiner [0123456789]", 0.7, True, "both passes")
    # Only the setting is written when the refiner did not take over (A1111 writes it on every step)
    assert "Refiner" not in _format(GenerationParams(prompt="x"))
    assert _format(GenerationParams(prompt="x", refiner_switch_by_steps=True)).count("Refiner") == 1


def test_a1111s_refiner_keys_become_params_and_their_absence_means_no_refiner():
    text = ("x\nSteps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 4.0, Seed: 1, Size: 1216x832, "
            "Model: sd_xl_base_1.0, Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.7, Version: v1.10.1")
    read = read_params(text)
    assert read.warnings == [] and {"refiner_checkpoint", "refiner_switch_at"} <= read.fields
    assert (read.params.refiner_checkpoint, read.params.refiner_switch_at) == ("sd_xl_refiner_1.0 [7440042bbd]", 0.7)
    base = GenerationParams(refiner_checkpoint="mine", refiner_switch_by_steps=True, hires_refiner_pass="first pass")
    plain = read_params("x\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 64x64", base).params
    assert (plain.refiner_checkpoint, plain.refiner_switch_by_steps, plain.hires_refiner_pass) == (
        "", False, "second pass")
    odd = read_params("x\nSteps: 20, Seed: 1, Denoising strength: 0.5, Hires upscale: 2, Refiner: r, "
                      "Hires refiner: third pass")
    assert odd.warnings == ["Hires refiner: third pass: not applied: sdui knows first pass, second pass, both "
                            "passes; used second pass"]
    with pytest.raises(ValueError, match="'Refiner switch at' must be a number"):
        read_params("x\nSteps: 20, Seed: 1, Refiner: r, Refiner switch at: soon")
    sent = read_params("x\nSteps: 20, Seed: 1, Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent, "
                       "Refiner: r, Hires refiner: first pass", GenerationParams(mode=Mode.IMG2IMG))
    assert any(w.startswith("Hires upscale, Hires upscaler, Hires refiner: not applied") for w in sent.warnings)


def test_the_old_prompt_editing_timeline_is_written_only_when_on_and_read_back():
    assert "Old prompt editing" not in _format(GenerationParams(prompt="[a:b:0.5]"))
    text = _format(GenerationParams(prompt="[a:b:2.0]", use_old_scheduling=True))
    assert "Old prompt editing timelines: True" in text
    read = read_params(text)
    assert read.warnings == [] and read.params.use_old_scheduling is True
    # An infotext without the key was made on A1111's new timeline, whatever the tab had before.
    assert read_params("x\nSteps: 20, Seed: 1", GenerationParams(use_old_scheduling=True)).params.use_old_scheduling \
        is False
