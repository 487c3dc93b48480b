"""Engine.run on the tiny model: samplers, determinism, batches, variation seeds, progress, interrupt, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sdui.engine import samplers
from sdui.engine.result import Progress
from sdui.models.manager import Task
from sdui.params import Mode

from .conftest import LateCopy, pixels, small

# Batched convolutions on CPU (oneDNN) round differently from single ones by ~1e-6, so a batch image can
# differ from its single run by one level in a few pixels; the noise itself is bit-identical (test_noise).
BATCH_TOLERANCE = 2


def assert_same_image(a, b, tolerance: int = 0) -> None:
    diff = np.abs(pixels(a) - pixels(b))
    assert diff.max() <= tolerance, f"max pixel difference {diff.max()}"
    if tolerance:
        assert (diff > 0).mean() < 0.01, f"{(diff > 0).mean():.1%} of pixels differ"


def assert_different(a, b) -> None:
    changed = (np.abs(pixels(a) - pixels(b)) > 10).mean()
    assert changed > 0.02, f"only {changed:.1%} of pixels differ"  # an inpainted 16x16 square is 6%


def test_each_batch_gets_a_fresh_scheduler(engine, manager):
    pipe = manager.get(None, Task.TXT2IMG)
    seen = []  # (batch_index, scheduler) at every step; the objects are kept alive so `is` is meaningful

    engine.run(small(sampler="Euler", batch_count=2), progress=lambda p: seen.append((p.batch_index, pipe.scheduler)))
    first = [s for b, s in seen if b == 0]
    second = [s for b, s in seen if b == 1]
    assert first and second and all(s is first[0] for s in first) and all(s is second[0] for s in second)
    assert first[0] is not second[0]


@pytest.mark.parametrize("sampler", samplers.sampler_names())
def test_every_sampler_and_schedule_runs_without_nan(engine, sampler):
    for schedule in samplers.schedules_for(sampler):
        result = engine.run(small(sampler=sampler, schedule=schedule))
        image = pixels(result.images[0])
        assert image.shape == (64, 64, 3), (sampler, schedule)
        assert image.std() > 1, f"{sampler} / {schedule} gave a flat image"


def test_same_params_give_identical_pixels(engine):
    a, b = engine.run(small()), engine.run(small())
    assert_same_image(a.images[0], b.images[0])
    assert_different(a.images[0], engine.run(small(seed=999)).images[0])


def test_random_seed_is_resolved_and_reported(engine):
    result = engine.run(small(seed=-1, batch_size=2))
    assert result.params.seed >= 0 and result.seeds == [result.params.seed, result.params.seed + 1]
    assert result.params.subseed >= 0
    assert len(result.infotexts) == 2 and f"Seed: {result.seeds[1]}," in result.infotexts[1]
    assert result.model_title.startswith("sdui-tiny-demo")


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_batch_image_i_equals_a_single_run_with_seed_plus_i(engine, photo, center_mask, mode):
    extra = {} if mode == "txt2img" else {"init_image": photo, "denoising_strength": 0.8}
    if mode == "inpaint":
        extra["mask"] = center_mask
    batch = engine.run(small(mode=mode, sampler="Euler a", batch_size=3, **extra))
    assert batch.seeds == [1234, 1235, 1236]
    for i in (1, 2):
        single = engine.run(small(mode=mode, sampler="Euler a", seed=1234 + i, **extra))
        assert_same_image(batch.images[i], single.images[0], BATCH_TOLERANCE)
    assert_different(batch.images[0], batch.images[1])


def test_batch_count_three_equals_batch_size_three(engine):
    by_count = engine.run(small(batch_count=3))
    by_size = engine.run(small(batch_size=3))
    assert by_count.seeds == by_size.seeds == [1234, 1235, 1236]
    for a, b in zip(by_count.images, by_size.images):
        assert_same_image(a, b, BATCH_TOLERANCE)


def test_variation_seed_strength_zero_and_one(engine):
    plain = engine.run(small()).images[0]
    assert_same_image(engine.run(small(subseed=77, subseed_strength=0.0)).images[0], plain)
    full = engine.run(small(subseed=77, subseed_strength=1.0))
    # Strength 1 is the subseed's initial noise; ancestral step noise still follows the main seed.
    euler_full = engine.run(small(sampler="Euler", subseed=77, subseed_strength=1.0)).images[0]
    assert_same_image(euler_full, engine.run(small(sampler="Euler", seed=77)).images[0])
    half = engine.run(small(sampler="Euler", subseed=77, subseed_strength=0.5)).images[0]
    assert_different(half, euler_full)
    assert "Variation seed: 77" in full.infotexts[0]


def test_progress_reports_steps_over_the_whole_job_and_previews(engine):
    seen: list[Progress] = []
    engine.run(small(steps=4, batch_count=2), progress=seen.append)
    assert [(p.step, p.total) for p in seen] == [(i, 8) for i in range(1, 9)]
    assert [p.batch_index for p in seen] == [0] * 4 + [1] * 4
    previews = [p.preview for p in seen if p.preview is not None]
    assert previews and previews[0].size == (8, 8)  # latent size: 64 / 8


def test_previews_that_land_late_still_all_arrive_in_order(manager):
    """As on a busy GPU: each preview's copy lands two polls after it started; the last one only after the call."""
    from sdui.engine.generate import Engine

    params = small(steps=4, batch_count=2)
    on_time: list[Progress] = []
    Engine(manager, preview_every=2).run(params, progress=on_time.append)
    late: list[Progress] = []
    copy = LateCopy(late=2)
    Engine(manager, preview_every=2, preview_to_host=copy).run(params, progress=late.append)
    assert [p.step for p in on_time if p.preview is not None] == [2, 4, 6, 8]
    assert len(copy.completions) == 4
    # Started at 2 and 4, the first lands at step 4; the batch's last is waited for and repeats step 4.
    assert [(p.step, p.preview is not None) for p in late] == [
        (1, False), (2, False), (3, False), (4, True), (4, True), (5, False), (6, False), (7, False), (8, True),
        (8, True)]
    assert [p.batch_index for p in late] == [0] * 5 + [1] * 5 and all(p.total == 8 for p in late)
    expected = [p.preview.tobytes() for p in on_time if p.preview is not None]
    assert [p.preview.tobytes() for p in late if p.preview is not None] == expected


def test_interrupt_from_another_thread_stops_within_one_step(engine):
    cancel = threading.Event()
    after_cancel: list[int] = []

    def on_progress(p: Progress) -> None:
        if cancel.is_set():
            after_cancel.append(p.step)
        elif p.step == 3:
            setter = threading.Thread(target=cancel.set)
            setter.start()
            setter.join()

    result = engine.run(small(steps=30, batch_count=3), progress=on_progress, cancel=cancel)
    assert result.interrupted
    assert len(after_cancel) <= 1, f"steps run after the interrupt: {after_cancel}"
    assert len(result.images) == 1 and result.seeds == [1234]  # the partial image, no further batches


@pytest.mark.parametrize("changes, field", [
    ({"width": 100}, "width"),
    ({"steps": 0}, "steps"),
    ({"steps": 151}, "steps"),
    ({"sampler": "Nonsense"}, "sampler"),
    ({"mode": Mode.IMG2IMG}, "init_image"),
    ({"mode": Mode.INPAINT, "init_image": "photo"}, "mask"),
])
def test_bad_input_raises_value_error_naming_the_field(engine, photo, changes, field):
    if changes.get("init_image") == "photo":
        changes["init_image"] = photo
    with pytest.raises(ValueError, match=field):
        engine.run(small(**changes))


def test_denoise_outside_range_and_empty_mask_are_errors(engine, photo):
    from PIL import Image

    with pytest.raises(ValueError, match="denoising_strength"):
        engine.run(small(mode="img2img", init_image=photo, denoising_strength=1.5))
    with pytest.raises(ValueError, match="mask is empty"):
        engine.run(small(mode="inpaint", init_image=photo, mask=Image.new("L", (64, 64))))
    with pytest.raises(ValueError, match="subseed_strength"):
        engine.run(small(mode="img2img", init_image=photo, subseed_strength=0.5))


@pytest.fixture
def fp16_vae_pipe(tiny_pipeline):
    """A stand-in pipeline whose VAE (a copy of the tiny one) runs in fp16, where big latents overflow."""
    import copy
    import types

    import torch

    vae = copy.deepcopy(tiny_pipeline.vae).to(torch.float16)
    return types.SimpleNamespace(vae=vae, image_processor=tiny_pipeline.image_processor)


def test_nan_decode_is_retried_with_an_fp32_vae(fp16_vae_pipe):
    import torch

    from sdui.engine.generate import decode_latents

    vae = fp16_vae_pipe.vae
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 10000
    with torch.inference_mode():
        assert torch.isnan(vae.decode(latents.half() / vae.config.scaling_factor).sample).any()
    images = decode_latents(fp16_vae_pipe, latents)
    assert images[0].size == (64, 64) and pixels(images[0]).std() > 0
    assert vae.dtype == torch.float16  # the upcast is undone afterwards


def test_nan_that_survives_fp32_is_a_generation_error(fp16_vae_pipe):
    import torch

    from sdui.engine.generate import GenerationError, decode_latents

    with pytest.raises(GenerationError, match="NaN"):
        decode_latents(fp16_vae_pipe, torch.full((1, 4, 8, 8), float("nan")))


def test_force_upcast_vae_decodes_once_in_fp32(fp16_vae_pipe):
    """SDXL's VAE config says force_upcast: an fp16 copy decodes straight in fp32, not fp16 → NaN → fp32.

    SD1/SD2 pipelines decode as stored (every diffusers VAE config defaults force_upcast to true)."""
    import copy

    import torch

    from sdui.engine.generate import decode_latents

    vae = fp16_vae_pipe.vae
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = copy.deepcopy(vae).to(torch.float32).decode(latents / vae.config.scaling_factor).sample
    calls = []
    real_decode = vae.decode
    vae.decode = lambda z, **kw: calls.append(z.dtype) or real_decode(z, **kw)
    assert vae.config.force_upcast
    decode_latents(fp16_vae_pipe, latents)
    assert calls == [torch.float16]  # an SD1 pipeline: as stored
    calls.clear()
    fp16_vae_pipe.text_encoder_2 = object()  # what makes a pipeline SDXL for the engine
    vae.register_to_config(force_upcast=False)  # e.g. sdxl-vae-fp16-fix
    decode_latents(fp16_vae_pipe, latents)
    assert calls == [torch.float16]
    calls.clear()
    vae.register_to_config(force_upcast=True)
    images = decode_latents(fp16_vae_pipe, latents)
    assert calls == [torch.float32] and vae.dtype == torch.float16
    assert pixels(images[0]).tolist() == pixels(
        fp16_vae_pipe.image_processor.postprocess(expected, output_type="pil")[0]).tolist()


def test_engine_runs_a_fast_path_pipeline_under_its_autocast(tiny_model_dir, tmp_path, photo):
    """With the fast path applied (bf16 UNet on a bf16 CPU), calls outside autocast_context would fail."""
    import torch

    from sdui.models.fast import apply_fast_path, cpu_supports_bf16
    from sdui.engine.generate import Engine
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager, Task
    from sdui.settings import Settings

    settings = Settings.for_data_dir(tmp_path, ckpt_dir=tiny_model_dir, device="cpu")
    manager = ModelManager(Catalog(tiny_model_dir, tmp_path), settings)
    threads = torch.get_num_threads()
    try:
        apply_fast_path(manager.get(None, Task.TXT2IMG), manager.device, manager.dtype, settings)
        if cpu_supports_bf16():
            unet = manager.get(None, Task.TXT2IMG).unet
            assert any(p.dtype == torch.bfloat16 for p in unet.parameters())
        engine = Engine(manager, preview_every=1)
        for params in (small(), small(mode="img2img", init_image=photo)):
            seen: list[Progress] = []
            image = engine.run(params, progress=seen.append).images[0]
            assert image.size == (64, 64) and pixels(image).std() > 1
            assert all(p.preview is not None for p in seen)  # previews are made inside the autocast too
    finally:
        torch.set_num_threads(threads)


def test_sdxl_pipelines_get_weighted_long_prompts(sdxl_manager, photo):
    from sdui.engine.generate import Engine

    engine = Engine(sdxl_manager, preview_every=1)
    seen: list[Progress] = []
    prompt = "(a photo:1.3) of " + "cat " * 100
    result = engine.run(small(prompt=prompt), progress=seen.append)
    assert result.images[0].size == (64, 64) and pixels(result.images[0]).std() > 1
    assert seen[-1].preview is not None
    assert_same_image(engine.run(small(prompt=prompt)).images[0], result.images[0])
    assert_different(engine.run(small(prompt=prompt, seed=5)).images[0], result.images[0])
    image = engine.run(small(mode="img2img", init_image=photo)).images[0]
    assert image.size == (64, 64)


@pytest.mark.parametrize("sampler", ["DPM++ SDE", "DPM++ 2M SDE", "Euler a"])
def test_stochastic_samplers_keep_batch_image_i_equal_to_seed_plus_i(engine, sampler):
    batch = engine.run(small(sampler=sampler, batch_size=2))
    single = engine.run(small(sampler=sampler, seed=1235))
    assert_same_image(batch.images[1], single.images[0], BATCH_TOLERANCE)
    assert_different(batch.images[0], batch.images[1])


def test_nv_source_gives_its_own_repeatable_pixels_and_ensd_changes_only_step_noise(engine):
    nv = engine.run(small(sampler="Euler a", randn_source="NV")).images[0]
    assert_different(nv, engine.run(small(sampler="Euler a")).images[0])
    assert_same_image(engine.run(small(sampler="Euler a", randn_source="NV")).images[0], nv)
    assert_same_image(engine.run(small(sampler="Euler a", randn_source="GPU")).images[0], nv)  # no CUDA device here
    # ENSD moves the step noise of an ancestral sampler; Euler draws none, so its images stay as they were.
    for source in ("NV", "CPU"):
        ancestral = engine.run(small(sampler="Euler a", randn_source=source)).images[0]
        moved = engine.run(small(sampler="Euler a", randn_source=source, eta_noise_seed_delta=31337)).images[0]
        assert_different(moved, ancestral)
        euler = engine.run(small(sampler="Euler", randn_source=source)).images[0]
        assert_same_image(engine.run(small(sampler="Euler", randn_source=source, eta_noise_seed_delta=31337)).images[0],
                          euler)


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_img2img_and_inpaint_draw_their_noise_from_the_nv_source(engine, photo, center_mask, mode):
    extra = {"init_image": photo, "denoising_strength": 0.8, "sampler": "Euler a"}
    if mode == "inpaint":
        extra["mask"] = center_mask
    nv = engine.run(small(mode=mode, randn_source="NV", **extra)).images[0]
    assert_same_image(engine.run(small(mode=mode, randn_source="NV", **extra)).images[0], nv)
    assert_different(nv, engine.run(small(mode=mode, **extra)).images[0])
    # Repeats are bit-identical, so any change is ENSD's (small: the step noise of two steps, inside the mask).
    moved = engine.run(small(mode=mode, randn_source="NV", eta_noise_seed_delta=7, **extra)).images[0]
    assert not np.array_equal(pixels(moved), pixels(nv))


def test_hires_pass_follows_the_source_and_ensd(engine):
    def hires(**changes):
        # The first pass draws no step noise (Euler): what ENSD changes, the hires pass (Euler a) changed.
        base = dict(sampler="Euler", hr_sampler="Euler a", steps=2, enable_hr=True, hr_scale=2.0,
                    hr_second_pass_steps=3, denoising_strength=0.6, randn_source="NV")
        return small(**{**base, **changes})

    nv = engine.run(hires()).images[0]
    assert nv.size == (128, 128)
    assert_same_image(engine.run(hires()).images[0], nv)
    assert_different(nv, engine.run(hires(randn_source="CPU")).images[0])
    assert not np.array_equal(pixels(engine.run(hires(eta_noise_seed_delta=7)).images[0]), pixels(nv))
