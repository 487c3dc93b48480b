"""A1111 sampler and schedule-type names → the diffusers scheduler and options each one builds (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdui.engine import samplers

CONFIGS = Path(samplers.__file__).parents[1] / "models" / "configs"
SD1_SCHEDULER = CONFIGS / "sd1" / "scheduler" / "scheduler_config.json"

# DESIGN.md's table: A1111 name -> diffusers class and the options that make it that sampler.
EXPECTED = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
    "DPM++ 2S a": ("DPMSolverSinglestepScheduler", {"solver_order": 2}),
    "DDIM": ("DDIMScheduler", {}),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}

SCHEDULE_FLAGS = {"Karras": ("use_karras_sigmas", True), "Exponential": ("use_exponential_sigmas", True),
                  "Beta": ("use_beta_sigmas", True), "SGM Uniform": ("timestep_spacing", "trailing")}


@pytest.fixture(scope="module")
def base_config() -> dict:
    return json.loads(SD1_SCHEDULER.read_text())


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
    assert set(samplers.sampler_names()) == set(EXPECTED)


@pytest.mark.parametrize("schedule", sorted(SCHEDULE_FLAGS))
def test_schedule_type_sets_its_option(base_config, schedule):
    key, value = SCHEDULE_FLAGS[schedule]
    assert samplers.build_scheduler(base_config, "DPM++ 2M", schedule).config[key] == value
    plain = samplers.build_scheduler(base_config, "DPM++ 2M", "Automatic").config
    assert plain.get(key) != value, f"Automatic must not imply {schedule}"


@pytest.mark.parametrize("schedule", ["Exponential", "Beta"])
def test_dpmpp_sde_keeps_exponential_and_beta(base_config, schedule):
    # DPMSolverSDEScheduler supports both (diffusers 0.42); dropping them would run Automatic under another name.
    key, value = SCHEDULE_FLAGS[schedule]
    assert samplers.build_scheduler(base_config, "DPM++ SDE", schedule).config[key] == value
    assert samplers.build_scheduler(base_config, "DPM++ SDE", "Automatic").config.get(key) != value


@pytest.mark.parametrize("name, sampler, schedule", [
    ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
    ("DPM++ SDE Karras", "DPM++ SDE", "Karras"),
    ("k_euler_a", "Euler a", "Automatic"),
    ("euler A", "Euler a", "Automatic"),
])
def test_old_and_alias_names_are_accepted(name, sampler, schedule):
    spec, resolved = samplers.resolve(name)
    assert (spec.name, resolved) == (sampler, schedule)


def test_an_explicit_schedule_wins_over_the_combined_name():
    assert samplers.resolve("DPM++ 2M Karras", "Exponential")[1] == "Exponential"


@pytest.mark.parametrize("sampler, schedule, message", [
    ("Nonsense", "Automatic", "sampler must be one of .*got 'Nonsense'"),
    ("", "Automatic", "sampler must be one of"),
    ("Euler", "Wavy", "schedule type must be one of .*got 'Wavy'"),
])
def test_unknown_names_are_value_errors_naming_the_field(sampler, schedule, message):
    with pytest.raises(ValueError, match=message):
        samplers.resolve(sampler, schedule)
