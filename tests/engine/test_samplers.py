"""A1111 sampler and schedule-type names → the diffusers scheduler and options each pair builds; refused names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdui.engine import samplers
from sdui.models.manager import Task

from .conftest import pixels, small

CONFIGS = Path(samplers.__file__).parents[1] / "models" / "configs"
SD1_SCHEDULER = CONFIGS / "sd1" / "scheduler" / "scheduler_config.json"
SDXL_SCHEDULER = CONFIGS / "sdxl" / "scheduler" / "scheduler_config.json"  # timestep_spacing "leading"

# A1111 name -> diffusers class and the options that make it that sampler (README "Samplers and schedule types").
EXPECTED = {
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_type": "midpoint"}),
    "DPM++ 2M SDE Heun": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True, "timestep_spacing": "leading", "steps_offset": 1}),
    "UniPC": ("UniPCMultistepScheduler", {"solver_type": "bh1", "solver_order": 3, "final_sigmas_type": "sigma_min"}),
    "LCM": ("LCMScheduler", {}),
}
UNFAITHFUL = ["DPM++ 2S a", "DPM++ 3M SDE", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"]
A1111_SCHEDULES = ["Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
                   "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"]  # sd_schedulers.schedulers, v1.10
# Schedule types diffusers computes from config options; "linspace" makes them span the model's whole sigma range.
SCHEDULE_FLAGS = {"Karras": {"use_karras_sigmas": True, "timestep_spacing": "linspace"},
                  "Exponential": {"use_exponential_sigmas": True, "timestep_spacing": "linspace"},
                  "Polyexponential": {"use_exponential_sigmas": True, "timestep_spacing": "linspace"},
                  "Beta": {"use_beta_sigmas": True, "timestep_spacing": "linspace"}}


@pytest.fixture(scope="module")
def base_config() -> dict:
    return json.loads(SD1_SCHEDULER.read_text())


def sigmas_for(config: dict, sampler: str, schedule: str, steps: int, **kwargs) -> list[float]:
    scheduler = samplers.build_scheduler(config, sampler, schedule, **kwargs)
    scheduler.set_timesteps(steps)
    return [round(float(s), 4) for s in scheduler.sigmas]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_a1111_sampler_builds_its_diffusers_scheduler(base_config, name):
    cls, options = EXPECTED[name]
    scheduler = samplers.build_scheduler(base_config, name)
    assert type(scheduler).__name__ == cls
    for key, value in options.items():
        assert scheduler.config[key] == value, (name, key)
    # SD's betas survive the switch of class (a default linear schedule would give washed-out images).
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_start == base_config["beta_start"]


def test_every_listed_sampler_is_in_the_table():
    assert samplers.sampler_names() == list(EXPECTED)
    assert samplers.schedule_names() == A1111_SCHEDULES


@pytest.mark.parametrize("schedule", sorted(SCHEDULE_FLAGS))
@pytest.mark.parametrize("config", [SD1_SCHEDULER, SDXL_SCHEDULER], ids=["sd1", "sdxl-leading"])
def test_schedule_type_sets_its_options(config, schedule):
    built = samplers.build_scheduler(json.loads(config.read_text()), "DPM++ SDE", schedule).config
    assert {key: built[key] for key in SCHEDULE_FLAGS[schedule]} == SCHEDULE_FLAGS[schedule]


def test_automatic_is_the_samplers_own_a1111_default(base_config):
    # sd_samplers_kdiffusion: DPM++ 2M and DPM++ SDE default to Karras, the 2M SDE ones to Exponential.
    assert samplers.build_scheduler(base_config, "DPM++ 2M").config.use_karras_sigmas is True
    assert samplers.build_scheduler(base_config, "DPM++ SDE").config.use_karras_sigmas is True
    assert samplers.build_scheduler(base_config, "DPM++ 2M SDE Heun").config.use_exponential_sigmas is True
    euler_a = samplers.build_scheduler(base_config, "Euler a").config
    assert euler_a.timestep_spacing == "linspace"  # k-diffusion's get_sigmas: t = linspace(999, 0, steps)
    assert [samplers.effective_schedule(s) for s in ("DPM++ 2M", "DPM++ 2M SDE", "Euler a", "LCM", "DDIM")] == \
        ["Karras", "Exponential", "Uniform", "Automatic", "Automatic"]


# Expected noise levels for the SD betas (scaled_linear 0.00085..0.012), by A1111's formulas (sd_schedulers.py).
@pytest.mark.parametrize("sampler, schedule, steps, expected", [
    ("Euler", "Uniform", 4, [14.6146, 2.9183, 0.9324, 0.0292, 0.0]),
    ("Euler a", "Normal", 4, [14.6146, 2.9183, 0.9324, 0.0292, 0.0]),
    ("DPM++ 2M", "Karras", 4, [14.6146, 3.1686, 0.4469, 0.0292, 0.0]),
    ("Euler", "Polyexponential", 3, [14.6146, 0.6529, 0.0292, 0.0]),
    ("Euler", "SGM Uniform", 4, [14.6146, 4.0861, 1.6156, 0.6952, 0.0]),
    ("Euler", "KL Optimal", 4, [14.6146, 2.1427, 0.9616, 0.4198, 0.0292]),  # ends at sigma_min, not 0
    ("DPM++ 2M", "KL Optimal", 4, [14.6146, 2.1429, 0.961, 0.4201, 0.0292]),  # timesteps rounded
    ("LMS", "Beta", 4, [14.6146, 10.5976, 4.0462, 0.0292, 0.0]),
    ("Euler", "Align Your Steps", 11,
     [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029, 0.0]),
])
def test_schedules_give_a1111s_noise_levels(base_config, sampler, schedule, steps, expected):
    assert sigmas_for(base_config, sampler, schedule, steps) == pytest.approx(expected, abs=2e-4)


def test_align_your_steps_follows_a1111s_resampling(base_config):
    from diffusers.schedulers import AysSchedules

    from sdui.engine.schedules import AYS_SD, AYS_SDXL

    # A1111's 11 levels are NVIDIA's 10-step schedule; diffusers keeps the same ten and a final 0.
    assert list(AYS_SD[:10]) == AysSchedules["StableDiffusionSigmas"][:10]
    assert list(AYS_SDXL[:10]) == AysSchedules["StableDiffusionXLSigmas"][:10]
    # Any other step count (10 included) resamples the 11 levels log-linearly to `steps`, then appends 0.
    assert sigmas_for(base_config, "Euler", "Align Your Steps", 10) == pytest.approx(
        [14.615, 6.1135, 3.5651, 2.3939, 1.65, 1.1358, 0.7425, 0.445, 0.1692, 0.029, 0.0], abs=2e-4)
    assert sigmas_for(base_config, "Euler", "Align Your Steps", 10, sdxl=True) == pytest.approx(
        [14.615, 5.9634, 3.339, 1.855, 1.1023, 0.675, 0.4311, 0.2606, 0.1225, 0.029, 0.0], abs=2e-4)
    levels = np.array(sigmas_for(base_config, "Euler", "Align Your Steps", 21)[:-1])
    assert levels[0] == pytest.approx(14.615) and levels[-1] == pytest.approx(0.029)
    # log-linear: every second level of 21 is one of the 11
    assert levels[::2] == pytest.approx(AYS_SD, abs=2e-4)
    # DPM++ 2M takes it as integer timesteps
    dpm = samplers.build_scheduler(base_config, "DPM++ 2M", "Align Your Steps")
    dpm.set_timesteps(10)
    assert dpm.timesteps.tolist() == [999, 838, 717, 613, 506, 392, 268, 145, 30, 0]


@pytest.mark.parametrize("sampler, schedule, steps, timesteps", [
    ("DPM++ 2M", "Uniform", 4, [999, 666, 333, 0]),
    ("DPM++ 2M", "SGM Uniform", 4, [999, 749, 500, 250]),
    ("DPM++ 2M", "Simple", 7, [999, 857, 714, 571, 428, 285, 142]),  # 999 - int(i * 1000 / 7)
    ("DPM++ 2M SDE", "DDIM", 7, [995, 853, 711, 569, 427, 285, 143, 1]),  # A1111 gives 8 steps here
    ("Heun", "DDIM", 4, [751, 501, 501, 251, 251, 1, 1]),  # Heun visits each timestep twice
    ("LCM", "Automatic", 4, [999, 679, 339, 19]),  # A1111's LCM: nearest points of its 50-step grid
    ("UniPC", "Automatic", 4, [999, 749, 500, 250]),  # then on to sigma_min
    ("DDIM", "Karras", 20, [951 - 50 * i for i in range(20)]),  # A1111's timestep samplers ignore the schedule
])
def test_schedules_give_a1111s_timesteps(base_config, sampler, schedule, steps, timesteps):
    scheduler = samplers.build_scheduler(base_config, sampler, schedule)
    scheduler.set_timesteps(steps)
    assert [int(round(float(t))) for t in scheduler.timesteps] == timesteps


def test_a_fed_schedule_still_takes_an_explicit_one(base_config):
    scheduler = samplers.build_scheduler(base_config, "Euler", "Align Your Steps")
    scheduler.set_timesteps(sigmas=[10.0, 1.0, 0.0])
    assert scheduler.sigmas.tolist() == pytest.approx([10.0, 1.0, 0.0])
    assert type(scheduler).__name__ == "EulerDiscreteScheduler" and scheduler.config._class_name is not None


@pytest.mark.parametrize("name, sampler, schedule", [
    ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
    ("DPM++ SDE Karras", "DPM++ SDE", "Karras"),
    ("DPM++ 2M SDE Karras", "DPM++ 2M SDE", "Karras"),
    ("DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "Exponential"),
    ("DPM++ 2M SDE Heun Karras", "DPM++ 2M SDE Heun", "Karras"),
    ("LMS Karras", "LMS", "Karras"),
    ("k_dpmpp_2m_ka", "DPM++ 2M", "Karras"),
    ("k_dpmpp_2m_sde_heun", "DPM++ 2M SDE Heun", "Automatic"),
    ("k_euler_a", "Euler a", "Automatic"),
    ("euler A", "Euler a", "Automatic"),
    ("k_lcm", "LCM", "Automatic"),
])
def test_old_and_alias_names_are_accepted(name, sampler, schedule):
    spec, resolved = samplers.resolve(name)
    assert (spec.name, resolved) == (sampler, schedule)


@pytest.mark.parametrize("given, label", [("align_your_steps", "Align Your Steps"), ("kl_optimal", "KL Optimal"),
                                          ("SGMUniform", "SGM Uniform"), ("sgm_uniform", "SGM Uniform"),
                                          ("karras", "Karras"), ("normal", "Normal")])
def test_a1111_scheduler_ids_are_accepted(given, label):
    assert samplers.resolve("Euler", given)[1] == label


def test_an_explicit_schedule_wins_over_the_combined_name():
    assert samplers.resolve("DPM++ 2M Karras", "Exponential")[1] == "Exponential"


def test_uses_ensd_follows_a1111():
    assert [s.name for s in samplers.SAMPLERS if s.uses_ensd] == ["Euler a"]


@pytest.mark.parametrize("sampler, schedule, message", [
    ("Nonsense", "Automatic", "sampler must be one of .*got 'Nonsense'"),
    ("", "Automatic", "sampler must be one of"),
    ("Euler", "Wavy", "schedule type must be one of .*got 'Wavy'"),
])
def test_unknown_names_are_value_errors_naming_the_field(sampler, schedule, message):
    with pytest.raises(ValueError, match=message):
        samplers.resolve(sampler, schedule)


@pytest.mark.parametrize("name, canonical", [(n, n) for n in UNFAITHFUL] + [
    ("DPM2 Karras", "DPM2"), ("DPM2 a Karras", "DPM2 a"), ("k_dpmpp_2s_a", "DPM++ 2S a"), ("k_dpm_ad", "DPM adaptive")])
def test_unfaithful_samplers_are_refused_with_the_reason(name, canonical):
    with pytest.raises(ValueError) as e:
        samplers.resolve(name)
    message = str(e.value)
    assert message.startswith(f"sampler {canonical!r} cannot run faithfully in sdui: ")
    assert samplers.UNFAITHFUL[canonical] in message and "Euler a, Euler" in message  # lists the known names


def test_unfaithful_table_covers_a1111s_list_exactly():
    assert set(samplers.UNFAITHFUL) == set(UNFAITHFUL) == set(samplers.SUBSTITUTES)
    assert set(samplers.SUBSTITUTES.values()) <= set(samplers.sampler_names())


@pytest.mark.parametrize("sampler, schedule", [("Euler a", "Karras"), ("Euler a", "Align Your Steps"),
                                               ("LMS", "KL Optimal"), ("Heun", "KL Optimal"), ("LCM", "Karras"),
                                               ("DPM++ SDE", "DDIM")])
def test_a_schedule_the_sampler_cannot_take_is_refused(sampler, schedule):
    with pytest.raises(ValueError, match=re.escape(f"schedule type '{schedule}' cannot run faithfully with sampler "
                                                   f"'{sampler}'") + ".*use one of Automatic"):
        samplers.resolve(sampler, schedule)


def test_every_sampler_lists_the_schedules_it_runs():
    assert samplers.schedules_for("Euler") == A1111_SCHEDULES
    assert samplers.schedules_for("Euler a") == ["Automatic", "Uniform", "SGM Uniform", "Simple", "Normal"]
    assert samplers.schedules_for("LCM") == ["Automatic"]
    for name in samplers.sampler_names():
        for schedule in samplers.schedules_for(name):
            samplers.resolve(name, schedule)


@pytest.mark.parametrize("sampler, schedule, expected, warnings", [
    ("DPM++ 2M", "Karras", ("DPM++ 2M", "Karras"), []),
    ("DPM adaptive", "Automatic", ("Euler a", "Automatic"),
     ["Sampler: 'DPM adaptive' cannot run faithfully in sdui (diffusers has no adaptive-step DPM-Solver "
      "(k-diffusion's sample_dpm_adaptive)): used 'Euler a' instead"]),
    ("DPM2", "Automatic", ("Heun", "Karras"), ["Sampler: 'DPM2' cannot"]),  # keeps DPM2's own default: Karras
    ("DPM++ 2S a Karras", "", ("Euler a", "Automatic"),
     ["Sampler: 'DPM++ 2S a' cannot", "Schedule type: 'Karras' cannot run faithfully with 'Euler a' in sdui"]),
    ("Euler a", "KL Optimal", ("Euler a", "Automatic"),
     ["Schedule type: 'KL Optimal' cannot run faithfully with 'Euler a' in sdui (sdui cannot hand it to diffusers' "
      "EulerAncestralDiscreteScheduler): used 'Automatic' instead"]),
    ("Foo", "Karras", ("Euler a", "Automatic"),
     ["Sampler: 'Foo' is unknown to sdui: used 'Euler a' instead", "Schedule type: 'Karras' cannot"]),
    ("Euler", "Karras Exponential", ("Euler", "Automatic"),
     ["Schedule type: 'Karras Exponential' is unknown to sdui: used 'Automatic' instead"]),
])
def test_closest_names_the_substitute_it_runs(sampler, schedule, expected, warnings):
    spec, label, notes = samplers.closest(sampler, schedule)
    assert (spec.name, label) == expected
    assert len(notes) == len(warnings) and all(note.startswith(w) for note, w in zip(notes, warnings))
    samplers.resolve(spec.name, label)  # what closest returns always runs


def test_tables_import_without_torch_or_diffusers():
    code = ("import sys; import sdui.engine.samplers, sdui.engine.schedules; "
            "print(sorted(m for m in ('torch', 'diffusers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Two steps of each sampler/schedule pair new in this table, through the real Engine on the tiny model.
NEW_PAIRS = [("DPM++ 2M SDE Heun", "Automatic"), ("DPM++ 2M", "Align Your Steps"), ("DPM++ 2M SDE", "KL Optimal"),
             ("Euler", "Align Your Steps"), ("Euler", "KL Optimal"), ("Euler", "Polyexponential"),
             ("Heun", "DDIM"), ("DPM++ 2M", "Simple"), ("Euler a", "Normal"), ("LCM", "Automatic"),
             ("UniPC", "Automatic")]


@pytest.mark.parametrize("sampler, schedule", NEW_PAIRS)
def test_new_pairs_run_end_to_end(engine, manager, sampler, schedule):
    pipe = manager.get(None, Task.TXT2IMG)
    used = []
    result = engine.run(small(sampler=sampler, schedule=schedule, steps=2),
                        progress=lambda p: used.append(pipe.scheduler))
    image = pixels(result.images[0])
    assert image.shape == (64, 64, 3) and image.std() > 1, f"{sampler} / {schedule} gave a flat image"
    assert type(used[-1]).__name__ == EXPECTED[sampler][0]
    if schedule in ("Align Your Steps", "KL Optimal", "Simple", "DDIM"):
        assert used[-1].schedule == schedule  # the schedule reached the pipeline's own set_timesteps


def test_img2img_cuts_a_fed_schedule_by_strength(engine, photo):
    result = engine.run(small(mode="img2img", init_image=photo, denoising_strength=0.5, steps=4,
                              sampler="DPM++ 2M", schedule="Align Your Steps"))
    assert pixels(result.images[0]).std() > 1
