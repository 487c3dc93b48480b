"""A1111 sampler and schedule-type names, and the diffusers scheduler each one builds.

The tables are plain data (importable without torch); `build_scheduler` imports diffusers lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    scheduler: str  # diffusers class name
    options: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("DPM++ 2M", "DPMSolverMultistepScheduler", aliases=("k_dpmpp_2m",)),
    SamplerSpec("DPM++ SDE", "DPMSolverSDEScheduler", aliases=("k_dpmpp_sde",)),
    SamplerSpec("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"},
                aliases=("k_dpmpp_2m_sde",)),
    # diffusers has no 2S ancestral; the single-step 2nd-order solver is its closest relative.
    SamplerSpec("DPM++ 2S a", "DPMSolverSinglestepScheduler", {"solver_order": 2},
                aliases=("k_dpmpp_2s_a",)),
    SamplerSpec("Euler a", "EulerAncestralDiscreteScheduler", aliases=("k_euler_a", "k_euler_ancestral")),
    SamplerSpec("Euler", "EulerDiscreteScheduler", aliases=("k_euler",)),
    SamplerSpec("LMS", "LMSDiscreteScheduler", aliases=("k_lms",)),
    SamplerSpec("Heun", "HeunDiscreteScheduler", aliases=("k_heun",)),
    SamplerSpec("DPM2", "KDPM2DiscreteScheduler", aliases=("k_dpm_2",)),
    SamplerSpec("DPM2 a", "KDPM2AncestralDiscreteScheduler", aliases=("k_dpm_2_a",)),
    SamplerSpec("DDIM", "DDIMScheduler", aliases=("ddim",)),
    SamplerSpec("PLMS", "PNDMScheduler", {"skip_prk_steps": True}, aliases=("plms",)),
    SamplerSpec("UniPC", "UniPCMultistepScheduler", aliases=("unipc",)),
    SamplerSpec("LCM", "LCMScheduler", aliases=("lcm",)),
)

# Schedule type -> scheduler config overrides (A1111 >= 1.9 "Schedule type").
SCHEDULES: dict[str, dict[str, Any]] = {
    "Automatic": {},
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
}

# Old combined names ("DPM++ 2M Karras") are split into sampler + schedule.
_SCHEDULE_SUFFIXES = {"Karras": "Karras", "Exponential": "Exponential"}

_BY_NAME: dict[str, SamplerSpec] = {}
for _spec in SAMPLERS:
    for _key in (_spec.name, *_spec.aliases):
        _BY_NAME[_key.lower()] = _spec


def sampler_names() -> list[str]:
    return [s.name for s in SAMPLERS]


def schedule_names() -> list[str]:
    return list(SCHEDULES)


def resolve(sampler: str, schedule: str = "Automatic") -> tuple[SamplerSpec, str]:
    """Return (spec, schedule) for a sampler name, accepting A1111's old combined names.

    Raises ValueError naming the unknown value and listing the known ones.
    """
    name = (sampler or "").strip()
    spec = _BY_NAME.get(name.lower())
    if spec is None:
        for suffix, sched in _SCHEDULE_SUFFIXES.items():
            if name.endswith(" " + suffix) and name[: -len(suffix) - 1].lower() in _BY_NAME:
                spec = _BY_NAME[name[: -len(suffix) - 1].lower()]
                if schedule in ("", "Automatic", None):
                    schedule = sched
                break
    if spec is None:
        raise ValueError(f"sampler must be one of {', '.join(sampler_names())}; got {sampler!r}")
    schedule = schedule or "Automatic"
    matches = [s for s in SCHEDULES if s.lower() == schedule.strip().lower()]
    if not matches:
        raise ValueError(f"schedule type must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    return spec, matches[0]


def build_scheduler(base_config: dict, sampler: str, schedule: str = "Automatic"):
    """A fresh diffusers scheduler for one run, keeping the checkpoint's betas/prediction type."""
    import diffusers

    spec, schedule = resolve(sampler, schedule)
    cls = getattr(diffusers, spec.scheduler)
    overrides = dict(spec.options)
    overrides.update(SCHEDULES[schedule])
    return cls.from_config(dict(base_config), **overrides)
