"""A1111's schedule types as sigma lists, and the diffusers scheduler subclass that runs one.

A1111 (modules/sd_schedulers.py, v1.10) builds every schedule type from the model's 1000 training sigmas,
through k-diffusion's `DiscreteSchedule` (sigma <-> timestep by log-linear interpolation). The functions here
compute the same lists, so a schedule that diffusers cannot derive from its own config options (Align Your
Steps, KL Optimal, DDIM, ...) can be handed to a scheduler whose `set_timesteps` takes sigmas or timesteps.
Which sampler takes which schedule, and how, is `engine/samplers.py`'s table; numpy is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

# A1111's Align Your Steps sigmas (sd_schedulers.get_align_your_steps_sigmas): NVIDIA's 10-step schedule,
# 11 noise levels ending at sigma_min. diffusers' AysSchedules holds the same first ten, with a final 0.0.
AYS_SD = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)
BETA_ALPHA = BETA_BETA = 0.6  # A1111's defaults for the Beta schedule (options beta_dist_alpha/beta)
LCM_ORIGINAL_STEPS = 50  # A1111's LCM sampler walks a 50-point grid of the 1000 training timesteps


def training_sigmas(alphas_cumprod) -> Any:
    """The model's sigma at each of its training timesteps, t = 0 .. 999 (k-diffusion's `sigmas`)."""
    import numpy as np

    acp = np.asarray(alphas_cumprod, dtype=np.float64)
    return ((1 - acp) / acp) ** 0.5


def t_to_sigma(sigmas, t) -> Any:
    """k-diffusion's DiscreteSchedule.t_to_sigma: log sigma interpolated linearly between timesteps."""
    import numpy as np

    t = np.asarray(t, dtype=np.float64)
    low, high = np.floor(t).astype(int), np.ceil(t).astype(int)
    w = t - low
    log_sigmas = np.log(sigmas)
    return np.exp((1 - w) * log_sigmas[low] + w * log_sigmas[high])


def sigma_to_t(sigmas, sigma) -> Any:
    """k-diffusion's DiscreteSchedule.sigma_to_t (the inverse of `t_to_sigma`)."""
    import numpy as np

    return np.interp(np.log(sigma), np.log(sigmas), np.arange(len(sigmas), dtype=np.float64))


def _with_zero(values) -> Any:
    import numpy as np

    return np.append(np.asarray(values, dtype=np.float64), 0.0)


def uniform(n: int, sigmas, sdxl: bool = False) -> Any:
    """Uniform, Normal and A1111's "Automatic" for samplers without a default: t = linspace(999, 0, n)."""
    import numpy as np

    return _with_zero(t_to_sigma(sigmas, np.linspace(len(sigmas) - 1, 0, n)))


def sgm_uniform(n: int, sigmas, sdxl: bool = False) -> Any:
    """SGM Uniform: n + 1 points from 999 to 0 in t, the last one dropped."""
    import numpy as np

    return _with_zero(t_to_sigma(sigmas, np.linspace(len(sigmas) - 1, 0, n + 1)[:-1]))


def karras(n: int, sigmas, sdxl: bool = False, rho: float = 7.0) -> Any:
    """Karras et al. (2022), between the model's sigma_min and sigma_max, rho 7."""
    import numpy as np

    low, high = sigmas[0] ** (1 / rho), sigmas[-1] ** (1 / rho)
    return _with_zero((high + np.linspace(0, 1, n) * (low - high)) ** rho)


def exponential(n: int, sigmas, sdxl: bool = False) -> Any:
    """Evenly spaced in log sigma."""
    import numpy as np

    return _with_zero(np.exp(np.linspace(np.log(sigmas[-1]), np.log(sigmas[0]), n)))


def polyexponential(n: int, sigmas, sdxl: bool = False, rho: float = 1.0) -> Any:
    """k-diffusion's polynomial in log sigma; with A1111's default rho 1 it is Exponential."""
    import numpy as np

    ramp = np.linspace(1, 0, n) ** rho
    return _with_zero(np.exp(ramp * (np.log(sigmas[-1]) - np.log(sigmas[0])) + np.log(sigmas[0])))


def kl_optimal(n: int, sigmas, sdxl: bool = False) -> Any:
    """KL Optimal: evenly spaced in arctan(sigma); it ends at sigma_min, not at 0."""
    import numpy as np

    a_min, a_max = np.arctan(sigmas[0]), np.arctan(sigmas[-1])
    step = np.arange(n + 1) / n
    return np.tan(step * a_min + (1.0 - step) * a_max)


def align_your_steps(n: int, sigmas, sdxl: bool = False) -> Any:
    """A1111's Align Your Steps: NVIDIA's 11 levels as they are for 11 steps, else log-linearly resampled to n."""
    import numpy as np

    levels = AYS_SDXL if sdxl else AYS_SD  # A1111 uses the SD 1.5 list for every non-SDXL model
    if n == len(levels):
        return _with_zero(levels)
    log_levels = np.log(levels[::-1])
    resampled = np.exp(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(levels)), log_levels))
    return _with_zero(resampled[::-1])


def simple(n: int, sigmas, sdxl: bool = False) -> Any:
    """Simple: every (1000 / n)-th training sigma from the top, t = 999 - int(i * 1000 / n)."""
    stride = len(sigmas) / n
    return _with_zero([sigmas[-(1 + int(i * stride))] for i in range(n)])


def ddim(n: int, sigmas, sdxl: bool = False) -> Any:
    """DDIM: t = 1, 1 + 1000 // n, ... below 1000, high to low (for some n that is more than n steps)."""
    stride = max(len(sigmas) // n, 1)
    return _with_zero(sigmas[1::stride][::-1])


def beta(n: int, sigmas, sdxl: bool = False) -> Any:
    """Beta (Lee et al. 2024): sigma_min + ppf(1 - i / (n - 1)) * (sigma_max - sigma_min), alpha = beta = 0.6."""
    import numpy as np
    from scipy import stats

    ppf = stats.beta.ppf(1 - np.linspace(0, 1, n), BETA_ALPHA, BETA_BETA)
    return _with_zero(sigmas[0] + ppf * (sigmas[-1] - sigmas[0]))


def lcm(n: int, sigmas, sdxl: bool = False) -> Any:
    """A1111's LCM sampler (sd_samplers_lcm): n points evenly spaced over its 50-step grid, plus 0."""
    import numpy as np

    skip = len(sigmas) // LCM_ORIGINAL_STEPS
    grid = sigmas[skip - 1::skip]  # the sigma at timesteps 19, 39, ..., 999
    return _with_zero(t_to_sigma(grid, np.linspace(len(grid) - 1, 0, n)))


# Schedule label -> A1111's formula: (steps, training sigmas, sdxl) -> sigmas, n + 1 values for n steps.
SIGMAS: dict[str, Callable[..., Any]] = {
    "Uniform": uniform, "Normal": uniform, "SGM Uniform": sgm_uniform, "Karras": karras,
    "Exponential": exponential, "Polyexponential": polyexponential, "KL Optimal": kl_optimal,
    "Align Your Steps": align_your_steps, "Simple": simple, "DDIM": ddim, "Beta": beta, "LCM": lcm,
}


def as_timesteps(sigmas, schedule_sigmas) -> list[int]:
    """The integer timestep of each level but the last, where the steps start (for schedulers taking timesteps).

    The last level is where the last step ends: 0, or sigma_min for KL Optimal (the scheduler's
    `final_sigmas_type` says which).
    """
    import numpy as np

    levels = np.asarray(schedule_sigmas, dtype=np.float64)[:-1]
    return [int(t) for t in np.round(sigma_to_t(sigmas, levels))]


def as_lcm_timesteps(sigmas, schedule_sigmas) -> list[int]:
    """A1111's LCM denoiser rounds each level to its nearest grid timestep (19, 39, ..., 999)."""
    import numpy as np

    skip = len(sigmas) // LCM_ORIGINAL_STEPS
    log_grid = np.log(sigmas[skip - 1::skip])
    levels = np.asarray(schedule_sigmas, dtype=np.float64)[:-1]
    nearest = np.abs(np.log(levels)[:, None] - log_grid[None, :]).argmin(axis=1)
    return [int(i * skip + skip - 1) for i in nearest]


class A1111Schedule:
    """Mixin for a diffusers scheduler: `set_timesteps(steps)` runs one A1111 schedule type for that many steps.

    The pipelines call `scheduler.set_timesteps(steps, device=...)` themselves (img2img then cuts the list by
    strength); this hands diffusers the schedule's sigmas, or its integer timesteps, in place of the step count.
    """

    schedule: str | None = None  # a key of SIGMAS; set by samplers.build_scheduler after construction
    feed: str = "sigmas"  # "sigmas", "timesteps" or "lcm": what set_timesteps is given
    sdxl: bool = False  # Align Your Steps has its own SDXL list

    def schedule_sigmas(self, steps: int) -> Any:
        """A1111's sigmas for `steps` steps of this scheduler's schedule type, computed from its betas."""
        return SIGMAS[self.schedule](steps, training_sigmas(self.alphas_cumprod), self.sdxl)

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, *args: Any,
                      **kwargs: Any) -> None:
        # The scheduler's own __init__ calls, and callers that bring their own schedule, go straight through.
        if self.schedule is None or num_inference_steps is None or args or kwargs:
            return super().set_timesteps(num_inference_steps, device, *args, **kwargs)
        levels = self.schedule_sigmas(num_inference_steps)
        if self.feed == "sigmas":
            return super().set_timesteps(device=device, sigmas=[float(s) for s in levels])
        to_timesteps = as_lcm_timesteps if self.feed == "lcm" else as_timesteps
        return super().set_timesteps(device=device, timesteps=to_timesteps(training_sigmas(self.alphas_cumprod),
                                                                            levels))


@cache
def with_a1111_schedule(cls: type) -> type:
    """`cls` with `A1111Schedule` mixed in; it keeps the class name, so configs and logs read as usual."""
    return type(cls.__name__, (A1111Schedule, cls), {"__module__": __name__, "__doc__": cls.__doc__})
