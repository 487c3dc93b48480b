"""Hires fix through the real engine on the tiny model: sizes, A1111's step rule, seeds, infotext, interrupt."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sdui.engine.hires import LATENT_MODES, second_pass_steps
from sdui.engine.result import Progress
from sdui.outputs.infotext import params_from_infotext
from sdui.params import GenerationParams, HiresSize
from tests.engine.conftest import pixels, small


def hires(**changes) -> GenerationParams:
    """64x64 first pass, 2 steps, then a 2x latent hires pass of 2 steps."""
    base = dict(steps=2, enable_hr=True, hr_scale=2.0, hr_second_pass_steps=2, denoising_strength=0.6)
    base.update(changes)
    return small(**base)


@pytest.mark.parametrize("changes, upscale_to, final", [
    ({}, (1024, 1024), (1024, 1024)),
    ({"hr_scale": 1.5, "width": 520}, (780, 768), (776, 768)),  # floored to whole latent cells, as A1111
    ({"hr_resize_x": 1000}, (1000, 1000), (1000, 1000)),
    ({"hr_resize_y": 768, "width": 768, "height": 512}, (1152, 768), (1152, 768)),
    ({"hr_resize_x": 1024, "hr_resize_y": 768}, (1024, 1024), (1024, 768)),  # cover, then crop the middle
])
def test_hires_size_follows_a1111s_rules(changes, upscale_to, final):
    size = GenerationParams(enable_hr=True, **changes).hires_size()
    assert (size.upscale_width, size.upscale_height) == upscale_to
    assert (size.width, size.height) == final


@pytest.mark.parametrize("steps, denoising, expected_schedule", [(20, 0.7, 28), (12, 0.5, 24), (20, 1.0, 20),
                                                                  (7, 0.33, 21), (1, 0.01, 100)])
def test_second_pass_runs_exactly_hires_steps_of_a1111s_schedule(steps, denoising, expected_schedule):
    schedule, strength = second_pass_steps(GenerationParams(enable_hr=True, steps=steps, denoising_strength=denoising))
    assert schedule == expected_schedule  # int(steps / denoising), A1111's img2img_fix_steps rule
    assert min(int(schedule * strength), schedule) == steps  # what diffusers' get_timesteps will run
    assert 0 < strength <= 1


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest-exact)"])
def test_latent_hires_doubles_the_image_and_writes_a1111s_keys(engine, upscaler):
    result = engine.run(hires(hr_upscaler=upscaler))
    assert result.images[0].size == (128, 128)
    info = result.infotexts[0]
    for key in ("Size: 64x64", "Denoising strength: 0.6", "Hires upscale: 2", "Hires steps: 2",
                f"Hires upscaler: {upscaler}"):
        assert key in info, info
    for absent in ("Hires resize", "Hires sampler", "Hires prompt", "Hires checkpoint"):
        assert absent not in info
    again = engine.run(hires(hr_upscaler=upscaler))
    assert np.array_equal(pixels(result.images[0]), pixels(again.images[0]))


def test_latent_modes_differ_and_hires_differs_from_a_plain_upscale(engine):
    images = {mode: pixels(engine.run(hires(hr_upscaler=mode)).images[0]) for mode in ("Latent", "Latent (nearest)")}
    assert not np.array_equal(images["Latent"], images["Latent (nearest)"])
    first = engine.run(small(steps=2)).images[0].resize((128, 128))
    assert not np.array_equal(images["Latent"], pixels(first))


def test_batch_image_i_gets_its_own_seed_in_both_passes(engine):
    batch = engine.run(hires(batch_size=2, seed=50))
    single = engine.run(hires(seed=51))
    assert batch.seeds == [50, 51]
    assert np.abs(pixels(batch.images[1]) - pixels(single.images[0])).max() <= 1


def test_progress_counts_both_passes_and_previews_follow_the_second(engine):
    seen: list[Progress] = []
    engine.run(hires(steps=3, hr_second_pass_steps=4, batch_count=2), progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 15)) and {p.total for p in seen} == {14}
    assert [p.batch_index for p in seen] == [0] * 3 + [1] * 3 + [0] * 4 + [1] * 4
    sizes = [p.preview.size for p in seen if p.preview is not None]
    assert (8, 8) in sizes and sizes[-1] == (16, 16)  # latent previews: first pass 64/8, second 128/8


def test_hires_steps_zero_means_as_many_as_the_first_pass(engine):
    seen: list[Progress] = []
    result = engine.run(hires(steps=3, hr_second_pass_steps=0), progress=seen.append)
    assert seen[-1].step == seen[-1].total == 6
    assert "Hires steps" not in result.infotexts[0]


def test_hires_sampler_prompt_and_resize_are_used_and_written(engine):
    plain = engine.run(hires(hr_resize_x=96, hr_resize_y=128))
    other = engine.run(hires(hr_resize_x=96, hr_resize_y=128, hr_sampler="DPM++ 2M", hr_schedule="Karras",
                             hr_prompt="a photo of a dog", hr_negative_prompt="sharp"))
    assert plain.images[0].size == other.images[0].size == (96, 128)
    assert not np.array_equal(pixels(plain.images[0]), pixels(other.images[0]))
    info = other.infotexts[0]
    for key in ("Hires resize: 96x128", "Hires sampler: DPM++ 2M", "Hires schedule type: Karras",
                "Hires prompt: a photo of a dog", "Hires negative prompt: sharp"):
        assert key in info, info
    assert "Hires upscale:" not in info


def test_the_hires_checkpoint_named_is_written_with_its_title(engine, manager):
    title = manager.info(None).title
    named = engine.run(hires(hr_checkpoint=title))
    assert f"Hires checkpoint: {title}" in named.infotexts[0] or f'Hires checkpoint: "{title}"' in named.infotexts[0]
    assert np.array_equal(pixels(named.images[0]), pixels(engine.run(hires()).images[0]))


def test_regenerate_from_the_infotext_gives_the_same_image(engine):
    first = engine.run(hires(hr_resize_x=96, hr_sampler="Euler", hr_prompt="a red cat", seed=-1))
    again = engine.run(params_from_infotext(first.infotexts[0], base=GenerationParams(width=512)))
    assert again.images[0].size == (96, 96)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))


def test_denoising_zero_returns_the_upscaled_first_pass(engine):
    result = engine.run(hires(denoising_strength=0.0))
    assert result.images[0].size == (128, 128)


def test_interrupt_in_the_second_pass_stops_within_one_step(engine):
    cancel = threading.Event()
    after: list[int] = []

    def on_progress(p: Progress) -> None:
        if cancel.is_set():
            after.append(p.step)
        elif p.step == 5:  # the second pass's third step
            cancel.set()

    result = engine.run(hires(steps=2, hr_second_pass_steps=20, batch_count=2), progress=on_progress, cancel=cancel)
    assert result.interrupted and len(after) <= 1, after
    # The interrupted batch keeps its partial hires image; the other its first pass.
    assert sorted(image.size for image in result.images) == [(64, 64), (128, 128)]


@pytest.mark.parametrize("changes, field", [
    ({"hr_scale": 0.5}, "hr_scale"),
    ({"hr_scale": 8.0, "width": 1024}, "hires pass would make 8192x512"),
    ({"hr_resize_x": 5000}, "hr_resize_x"),
    ({"hr_second_pass_steps": -1}, "hr_second_pass_steps"),
    ({"denoising_strength": 1.5}, "denoising_strength"),
    ({"hr_sampler": "Nonsense"}, "sampler"),
    ({"hr_upscaler": "No such upscaler"}, "hr_upscaler"),
])
def test_bad_hires_input_is_refused_before_any_work(engine, manager, changes, field):
    loads = manager.load_count
    with pytest.raises(ValueError, match=field) as refused:
        engine.run(hires(**changes))
    if "hr_upscaler" in changes:
        assert "Latent" in str(refused.value) or "Lanczos" in str(refused.value)  # the message lists known names
    assert manager.load_count == loads


def test_every_latent_mode_is_listed_as_a1111_names_them():
    assert list(LATENT_MODES) == ["Latent", "Latent (antialiased)", "Latent (bicubic)",
                                  "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)"]
    assert HiresSize(100, 100).width == 96


def test_the_vae_tiles_only_beyond_the_size_limit_and_is_put_back():
    from types import SimpleNamespace

    from sdui.engine.generate import vae_tiling
    from sdui.settings import Settings

    vae = SimpleNamespace(use_tiling=False)
    with vae_tiling(vae, 1536, 1536, Settings()):
        assert not vae.use_tiling
    with vae_tiling(vae, 2048, 2048, Settings()):
        assert vae.use_tiling
    assert not vae.use_tiling
    with vae_tiling(vae, 1024, 1280, Settings(medvram=True)):
        assert vae.use_tiling
    vae.use_tiling = True  # a user's own choice stays
    with vae_tiling(vae, 64, 64, Settings()):
        assert vae.use_tiling
    assert vae.use_tiling


def test_a_model_upscaler_hires_pass_gives_the_size_keys_and_the_same_pixels_again(engine, manager):
    from tests.upscalers.esrgan_files import write_tiny_esrgan

    write_tiny_esrgan(manager.settings.esrgan_dir / "tiny-hires-4x.pth", params_ema=True)
    manager.upscalers.refresh()
    first = engine.run(hires(hr_upscaler="tiny-hires-4x", hr_scale=1.5))
    assert first.images[0].size == (96, 96)  # the 4x model, then Lanczos down to 1.5x, as A1111
    assert "Hires upscaler: tiny-hires-4x" in first.infotexts[0] and "Hires upscale: 1.5" in first.infotexts[0]
    again = engine.run(hires(hr_upscaler="tiny-hires-4x", hr_scale=1.5))
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    lanczos = engine.run(hires(hr_upscaler="Lanczos", hr_scale=1.5))
    assert not np.array_equal(pixels(first.images[0]), pixels(lanczos.images[0]))
