"""A1111 sampler and schedule-type names, the diffusers scheduler each pair builds, and the names sdui refuses.

"Faithful" here means: the same update rule on the same noise levels as A1111 1.10 at its default settings,
up to diffusers rounding a timestep to an integer (within one of the 1000 training steps). A name that cannot
run faithfully is refused by `resolve` (the API's 400); `closest` names the substitute the UI runs instead.
The tables are plain data (importable without torch); `build_scheduler` imports diffusers lazily, and the
schedule formulas live in `engine/schedules.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How a scheduler class takes a schedule type: (config options, feed). With feed None the options alone make
# diffusers compute A1111's sigmas; with "sigmas"/"timesteps" set_timesteps is handed the schedule's levels.
How = tuple[dict[str, Any], str | None]

_LINSPACE = {"timestep_spacing": "linspace"}
_TRAILING = {"timestep_spacing": "trailing"}  # 999 - 1000 i / n: within one training step of A1111's 999 - 999 i / n
_SPACED: dict[str, How] = {"Uniform": (_LINSPACE, None), "Normal": (_LINSPACE, None),
                           "SGM Uniform": (_TRAILING, None), "Simple": (_TRAILING, None)}
# diffusers' own Karras/exponential/beta sigmas span sigma_max..sigma_min of the spaced timesteps: with
# "linspace" spacing that is the model's full range, as in A1111. Polyexponential at A1111's rho 1 = Exponential.
_SIGMA_FLAGS: dict[str, How] = {
    "Karras": ({"use_karras_sigmas": True, **_LINSPACE}, None),
    "Exponential": ({"use_exponential_sigmas": True, **_LINSPACE}, None),
    "Polyexponential": ({"use_exponential_sigmas": True, **_LINSPACE}, None),
    "Beta": ({"use_beta_sigmas": True, **_LINSPACE}, None),
}


def _fed(feed: str, *labels: str) -> dict[str, How]:
    return {label: ({}, feed) for label in labels}


_EULER = {**_SIGMA_FLAGS, **_fed("sigmas", "Uniform", "Normal", "SGM Uniform", "Simple", "DDIM", "KL Optimal",
                                 "Align Your Steps")}
_HEUN = {**_SPACED, **_SIGMA_FLAGS, **_fed("timesteps", "DDIM", "Align Your Steps")}
# DPMSolverMultistep's own "linspace" is n + 1 points with the last dropped, so Uniform goes in as timesteps.
_MULTISTEP = {**_SIGMA_FLAGS, **_fed("timesteps", "Uniform", "Normal", "SGM Uniform", "Simple", "DDIM",
                                     "Align Your Steps"),
              # KL Optimal stops at sigma_min; k-diffusion then still takes a second-order last step.
              "KL Optimal": ({"final_sigmas_type": "sigma_min", "lower_order_final": False}, "timesteps")}


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    scheduler: str  # diffusers class name
    options: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    uses_ensd: bool = False  # A1111's `uses_ensd`: its infotext carries ENSD (eta noise seed delta)
    default_schedule: str = "Uniform"  # what A1111's "Automatic" means for this sampler
    # Schedule type -> how the class runs it; None: A1111 ignores the schedule type (its timestep samplers).
    schedules: dict[str, How] | None = field(default_factory=dict)

    def runs(self, schedule: str) -> bool:
        return self.schedules is None or schedule == "Automatic" or schedule in self.schedules


SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec("DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"},
                ("k_dpmpp_2m",), default_schedule="Karras", schedules=_MULTISTEP),
    SamplerSpec("DPM++ SDE", "DPMSolverSDEScheduler", aliases=("k_dpmpp_sde",), default_schedule="Karras",
                schedules={**_SPACED, **_SIGMA_FLAGS}),
    SamplerSpec("DPM++ 2M SDE", "DPMSolverMultistepScheduler",
                {"algorithm_type": "sde-dpmsolver++", "solver_type": "midpoint"}, ("k_dpmpp_2m_sde",),
                default_schedule="Exponential", schedules=_MULTISTEP),
    SamplerSpec("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler",
                {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}, ("k_dpmpp_2m_sde_heun",),
                default_schedule="Exponential", schedules=_MULTISTEP),
    SamplerSpec("Euler a", "EulerAncestralDiscreteScheduler", aliases=("k_euler_a", "k_euler_ancestral"),
                uses_ensd=True, schedules=_SPACED),
    SamplerSpec("Euler", "EulerDiscreteScheduler", aliases=("k_euler",), schedules=_EULER),
    SamplerSpec("LMS", "LMSDiscreteScheduler", aliases=("k_lms",), schedules={**_SPACED, **_SIGMA_FLAGS}),
    SamplerSpec("Heun", "HeunDiscreteScheduler", aliases=("k_heun",), schedules=_HEUN),
    # A1111's timestep samplers: leading spacing + steps_offset 1 = its range(0, 1000, 1000 // steps) + 1.
    SamplerSpec("DDIM", "DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}, ("ddim",),
                schedules=None),
    SamplerSpec("PLMS", "PNDMScheduler", {"skip_prk_steps": True, "timestep_spacing": "leading",
                                          "steps_offset": 1}, ("plms",), schedules=None),
    # A1111's UniPC defaults: variant bh1, order 3, time_uniform from t=999 down to t=0 (sigma_min).
    SamplerSpec("UniPC", "UniPCMultistepScheduler", {"solver_type": "bh1", "solver_order": 3,
                                                     "final_sigmas_type": "sigma_min", **_LINSPACE},
                ("unipc",), schedules=None),
    SamplerSpec("LCM", "LCMScheduler", aliases=("k_lcm", "lcm"), default_schedule="LCM",
                schedules={"LCM": ({}, "lcm")}),
)

# Schedule type -> A1111's scheduler id (`/sdapi/v1/schedulers` "name"; the API accepts either).
SCHEDULES: dict[str, str] = {
    "Automatic": "automatic", "Uniform": "uniform", "Karras": "karras", "Exponential": "exponential",
    "Polyexponential": "polyexponential", "SGM Uniform": "sgm_uniform", "KL Optimal": "kl_optimal",
    "Align Your Steps": "align_your_steps", "Simple": "simple", "Normal": "normal", "DDIM": "ddim", "Beta": "beta",
}
_SCHEDULE_ALIASES = {"SGMUniform": "SGM Uniform"}

# A1111 samplers sdui does not run: why, and what `closest` runs instead (the substitutes are in SAMPLERS).
UNFAITHFUL: dict[str, str] = {
    "DPM++ 2S a": "diffusers has no ancestral single-step DPM-Solver++(2S); its DPMSolverSinglestepScheduler "
                  "adds no ancestral noise",
    "DPM++ 3M SDE": "diffusers 0.42's third-order sde-dpmsolver++ update differs from k-diffusion's "
                    "(the second-difference term), and A1111 also drops the next-to-last sigma",
    "DPM2": "diffusers' KDPM2DiscreteScheduler does not drop the next-to-last sigma as A1111 does, so it "
            "steps through other noise levels",
    "DPM2 a": "diffusers' KDPM2AncestralDiscreteScheduler does not drop the next-to-last sigma as A1111 does, "
              "so it steps through other noise levels",
    "DPM fast": "diffusers has no fixed-step DPM-Solver with ancestral noise (k-diffusion's sample_dpm_fast)",
    "DPM adaptive": "diffusers has no adaptive-step DPM-Solver (k-diffusion's sample_dpm_adaptive)",
    "Restart": "diffusers has no Restart sampler",
    "DDIM CFG++": "diffusers has no CFG++ variant of DDIM",
}
SUBSTITUTES: dict[str, str] = {
    "DPM++ 2S a": "Euler a", "DPM++ 3M SDE": "DPM++ 2M SDE", "DPM2": "Heun", "DPM2 a": "Euler a",
    "DPM fast": "Euler a", "DPM adaptive": "Euler a", "Restart": "Heun", "DDIM CFG++": "DDIM",
}
# A1111's "Automatic" for the samplers above (so a substitute keeps their noise levels where it can).
_UNFAITHFUL_DEFAULTS = {"DPM++ 2S a": "Karras", "DPM++ 3M SDE": "Exponential", "DPM2": "Karras",
                        "DPM2 a": "Karras", "Restart": "Karras"}
_UNFAITHFUL_ALIASES = {"k_dpmpp_2s_a": "DPM++ 2S a", "k_dpmpp_3m_sde": "DPM++ 3M SDE", "k_dpm_2": "DPM2",
                       "k_dpm_2_a": "DPM2 a", "k_dpm_fast": "DPM fast", "k_dpm_ad": "DPM adaptive",
                       "restart": "Restart", "ddim_cfgpp": "DDIM CFG++"}

# Old combined names ("DPM++ 2M Karras", "k_dpmpp_2m_ka") are split into sampler + schedule.
_SCHEDULE_SUFFIXES = {" Karras": "Karras", " Exponential": "Exponential", "_ka": "Karras", "_exp": "Exponential"}

_BY_NAME: dict[str, SamplerSpec] = {key.lower(): s for s in SAMPLERS for key in (s.name, *s.aliases)}
_UNFAITHFUL_BY_NAME = {**{name.lower(): name for name in UNFAITHFUL}, **_UNFAITHFUL_ALIASES}


def sampler_names() -> list[str]:
    return [s.name for s in SAMPLERS]


def schedule_names() -> list[str]:
    return list(SCHEDULES)


def schedules_for(sampler: str) -> list[str]:
    """The schedule types a sampler runs faithfully, in A1111's order."""
    spec = resolve(sampler)[0]
    return [label for label in SCHEDULES if spec.runs(label)]


def effective_schedule(sampler: str, schedule: str = "Automatic") -> str:
    """The schedule type A1111 actually uses: "Automatic" is the sampler's own default (DPM++ 2M: Karras)."""
    spec, schedule = resolve(sampler, schedule)
    if spec.schedules is None or schedule != "Automatic":
        return schedule
    return spec.default_schedule if spec.default_schedule in SCHEDULES else "Automatic"


def _split(name: str, schedule: str) -> tuple[str, str, str]:
    """(sampler name, schedule, canonical unfaithful name or "") for one A1111 name, old combined ones split."""
    key = name.lower()
    if key not in _BY_NAME and key not in _UNFAITHFUL_BY_NAME:
        for suffix, label in _SCHEDULE_SUFFIXES.items():
            base = key[: -len(suffix)]
            if key.endswith(suffix.lower()) and (base in _BY_NAME or base in _UNFAITHFUL_BY_NAME):
                key, schedule = base, (schedule if schedule not in ("", "Automatic") else label)
                break
    return key, schedule, _UNFAITHFUL_BY_NAME.get(key, "")


def _schedule_label(schedule: str) -> str | None:
    wanted = schedule.strip().lower()
    for label, sid in SCHEDULES.items():
        if wanted in (label.lower(), sid):
            return label
    return _SCHEDULE_ALIASES.get(schedule.strip())


def resolve(sampler: str, schedule: str = "Automatic") -> tuple[SamplerSpec, str]:
    """Return (spec, schedule) for a sampler name, accepting A1111's aliases and old combined names.

    Raises ValueError naming the value: unknown, or known to A1111 but not runnable faithfully (with why).
    """
    key, schedule, unfaithful = _split((sampler or "").strip(), (schedule or "").strip() or "Automatic")
    if unfaithful:
        raise ValueError(f"sampler {unfaithful!r} cannot run faithfully in sdui: {UNFAITHFUL[unfaithful]}; "
                         f"use one of {', '.join(sampler_names())}")
    spec = _BY_NAME.get(key)
    if spec is None:
        raise ValueError(f"sampler must be one of {', '.join(sampler_names())}; got {sampler!r}")
    label = _schedule_label(schedule)
    if label is None:
        raise ValueError(f"schedule type must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    if not spec.runs(label):
        runs = ", ".join(s for s in SCHEDULES if spec.runs(s))
        raise ValueError(f"schedule type {label!r} cannot run faithfully with sampler {spec.name!r} in sdui "
                         f"(sdui cannot hand it to diffusers' {spec.scheduler}); with {spec.name} use one of {runs}")
    return spec, label


def closest(sampler: str, schedule: str = "Automatic") -> tuple[SamplerSpec, str, list[str]]:
    """What to run for a sampler/schedule sdui may not run faithfully: (spec, schedule, warnings).

    Unknown samplers become "Euler a", A1111 ones sdui cannot run their SUBSTITUTES entry; a schedule type the
    (substitute) sampler cannot run becomes "Automatic". Each change is one warning that starts with the infotext
    key it is about ("Sampler: 'DPM adaptive' cannot run faithfully in sdui (...): used 'Euler a' instead").
    """
    name = (sampler or "").strip()
    schedule = (schedule or "").strip() or "Automatic"
    key, split_schedule, unfaithful = _split(name, schedule)
    warnings: list[str] = []
    if unfaithful:
        spec = resolve(SUBSTITUTES[unfaithful])[0]
        if split_schedule == "Automatic" and spec.runs(_UNFAITHFUL_DEFAULTS.get(unfaithful, "Automatic")):
            split_schedule = _UNFAITHFUL_DEFAULTS.get(unfaithful, "Automatic")
        warnings.append(f"Sampler: {unfaithful!r} cannot run faithfully in sdui ({UNFAITHFUL[unfaithful]}): "
                        f"used {spec.name!r} instead")
    elif key in _BY_NAME:
        spec = _BY_NAME[key]
    else:
        spec = resolve("Euler a")[0]
        warnings.append(f"Sampler: {name!r} is unknown to sdui: used {spec.name!r} instead")
    label = _schedule_label(split_schedule)
    if label is None:
        warnings.append(f"Schedule type: {split_schedule!r} is unknown to sdui: used 'Automatic' instead")
        label = "Automatic"
    elif not spec.runs(label):
        warnings.append(f"Schedule type: {label!r} cannot run faithfully with {spec.name!r} in sdui "
                        f"(sdui cannot hand it to diffusers' {spec.scheduler}): used 'Automatic' instead")
        label = "Automatic"
    return spec, label, warnings


def build_scheduler(base_config: dict, sampler: str, schedule: str = "Automatic", *, sdxl: bool = False):
    """A fresh diffusers scheduler for one run, keeping the checkpoint's betas/prediction type.

    `sdxl` picks the SDXL list of Align Your Steps (A1111 uses the SD 1.5 one for every other model).
    """
    import diffusers

    from sdui.engine.schedules import with_a1111_schedule

    spec, schedule = resolve(sampler, schedule)
    cls = getattr(diffusers, spec.scheduler)
    if spec.schedules is None:  # A1111's timestep samplers ignore the schedule type
        return cls.from_config(dict(base_config), **spec.options)
    label = spec.default_schedule if schedule == "Automatic" else schedule
    options, feed = spec.schedules[label]
    overrides = {**spec.options, **options}
    if feed is None:
        return cls.from_config(dict(base_config), **overrides)
    scheduler = with_a1111_schedule(cls).from_config(dict(base_config), **overrides)
    scheduler.schedule, scheduler.feed, scheduler.sdxl = label, feed, sdxl
    return scheduler
