"""A1111's refiner: the step at which a second checkpoint takes over a pass, the checks, and the switch itself."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdui.engine.conditioning import PassConditioning, cfg_pair
from sdui.models.errors import ModelError, ModelNotFound
from sdui.models.manager import Task
from sdui.params import GenerationParams

# A1111's sdxl_refiner_high_aesthetic_score / sdxl_refiner_low_aesthetic_score (the positive / negative prompt).
HIGH_AESTHETIC_SCORE, LOW_AESTHETIC_SCORE = 6.0, 2.5
# The conditioning tensors diffusers' denoising loops re-read from a step callback's return value (those in the
# pipeline class's `_callback_tensor_inputs`): SD pipelines the first, SDXL pipelines all three.
CONDITIONING_TENSORS = ("prompt_embeds", "add_text_embeds", "add_time_ids")


def refines(params: GenerationParams, hires_pass: bool) -> bool:
    """Whether the refiner may take over in this pass (with hires fix: A1111's hires_fix_refiner_pass)."""
    if not params.refiner_checkpoint:
        return False
    if not params.hires:
        return not hires_pass
    return params.hires_refiner_pass in ("both passes", "second pass" if hires_pass else "first pass")


def refiner_title(info) -> str:
    """A checkpoint as A1111's `Refiner` key names it: its file name without extension and `[shorthash]`."""
    path = Path(info.path)
    name = path.name if path.is_dir() else path.stem
    return f"{name} [{info.short_hash}]"


@dataclass
class Refiner:
    """The refiner checkpoint prepared beside one pass's pipeline (its VAE, LoRAs and embeddings applied)."""

    job: Any  # the refiner's PreparedJob
    title: str  # for the infotext
    runs_the_task: bool = True  # its pipeline is for the pass's task (a txt2img pass uses only its components)

    @property
    def pipe(self):
        return self.job.pipe

    @property
    def prediction_type(self) -> str:
        return self.job.scheduler_config.get("prediction_type", "epsilon")


@contextlib.contextmanager
def open_refiner(manager, params: GenerationParams, job, task: Task, checkpoint: str) -> Iterator[Refiner | None]:
    """`checkpoint` prepared as the refiner of `job` for `task` (None: no refiner, or `job`'s own checkpoint).

    For a txt2img pass it is prepared for img2img: the SDXL refiner has no txt2img pipeline, and the pass needs only
    its components (UNet, text encoders, VAE).

    Raises ValueError naming refiner_checkpoint, before any work, when it is not installed or cannot continue
    `job`'s denoising; a ModelError of its file names that field too.
    """
    if not checkpoint:
        yield None
        return
    try:
        info = manager.info(checkpoint)
    except ModelNotFound as e:
        raise ValueError(f"refiner_checkpoint {checkpoint!r} is not installed ({e})") from None
    if info.filename == job.info.filename:  # A1111: the refiner is the model already running, nothing to do
        yield None
        return
    with contextlib.ExitStack() as stack:
        try:
            own_task = Task.IMG2IMG if task is Task.TXT2IMG else task
            refiner_job = stack.enter_context(manager.prepare(params.replace(checkpoint=info.title), own_task,
                                                              current=False))
        except ModelError as e:
            e.field = e.field or "refiner_checkpoint"
            raise
        check_refiner(job.pipe, refiner_job.pipe, job.info.title, info.title)
        yield Refiner(refiner_job, refiner_title(info), runs_the_task=own_task is task)


def check_refiner(pipe, refiner_pipe, name: str, refiner_name: str) -> None:
    """Refuse a refiner that cannot continue `pipe`'s denoising on the same latents with its own conditioning."""
    base, unet = pipe.unet.config, refiner_pipe.unet.config
    what = f"refiner_checkpoint '{refiner_name}'"
    if unet.in_channels != base.in_channels:
        raise ValueError(f"{what} has a UNet with {unet.in_channels} input channels and '{name}' one with "
                         f"{base.in_channels}: a refiner must take the same latents (an inpainting model refines "
                         "only an inpainting model)")
    if latent_space(refiner_pipe.vae) != latent_space(pipe.vae):
        raise ValueError(f"{what} works in another latent space than '{name}' (VAE latent channels and scaling "
                         f"factor {latent_space(refiner_pipe.vae)} vs {latent_space(pipe.vae)}): e.g. an SD 1.x/2.x "
                         "model cannot refine an SDXL one")
    if unet.get("addition_embed_type") != base.get("addition_embed_type") or \
            unet.get("time_cond_proj_dim") != base.get("time_cond_proj_dim"):
        raise ValueError(f"{what} takes another kind of conditioning than '{name}' (SDXL's size and aesthetic "
                         "time ids, or a guidance embedding): it cannot be built in that model's pipeline")
    if unet.get("addition_embed_type") == "text_time" and time_id_count(refiner_pipe) not in (5, 6):
        raise ValueError(f"{what} has a UNet whose added time embedding fits neither SDXL's 6 size time ids nor "
                         "the SDXL refiner's 5 (size and aesthetic score)")


def check_takeover(refiner: Refiner, switch_at: float) -> None:
    """Refuse a takeover at the first call that cannot run: an SDXL refiner's aesthetic-score time ids need its own
    img2img or inpaint pipeline, so it cannot start a txt2img picture from noise."""
    pipe = refiner.pipe
    if pipe.unet.config.get("addition_embed_type") == "text_time" and time_id_count(pipe) == 5 and \
            not (refiner.runs_the_task and pipe.config.get("requires_aesthetics_score", False)):
        raise ValueError(f"refiner_switch_at {switch_at:g} hands the whole pass to the refiner '{refiner.title}' "
                         "from its first step, and an SDXL refiner cannot start a picture from noise: raise "
                         "refiner_switch_at")


def latent_space(vae) -> tuple:
    config = vae.config
    return config.latent_channels, config.scaling_factor, config.get("shift_factor")


def time_id_count(pipe) -> int:
    """How many SDXL time ids the UNet takes: 6 (sizes and crop) or 5 (the refiner's size, crop, aesthetic score)."""
    unet = pipe.unet
    pooled = pipe.text_encoder_2.config.projection_dim
    return (unet.add_embedding.linear_1.in_features - pooled) // unet.config.addition_time_embed_dim


def time_ids(pipe, height: int, width: int, aesthetic_score: float) -> list[float]:
    """The time ids of one prompt for `pipe`'s UNet, as A1111's sgm conditioner makes them (crop 0, 0)."""
    if time_id_count(pipe) == 5:
        return [height, width, 0, 0, aesthetic_score]
    return [height, width, 0, 0, height, width]


def switch_step(scheduler, steps: int, strength: float | None, switch_at: float, by_steps: bool) -> int | None:
    """The index, in this pass's own step callbacks, of the first denoiser call the refiner makes (None: never).

    A1111's rule before each call: completed = (999 - t) / 1000 with t the model timestep of the call's sigma, or
    with `by_steps` the call's index / (steps of the pass × calls per step); the refiner takes over at the first
    call with completed >= switch_at. `scheduler` is a fresh one as the pass builds it; `strength` None: txt2img.
    """
    scheduler.set_timesteps(steps)
    order = scheduler.order
    # diffusers' img2img get_timesteps: the last int(steps × strength) steps of the schedule
    start = 0 if strength is None else (steps - min(int(steps * strength), steps)) * order
    calls = len(scheduler.timesteps) - start
    total = (steps - start // order) * order  # A1111's total_steps: a second-order sampler counts each step twice
    for call in range(calls):
        if by_steps:
            completed = call / total
        else:
            completed = (999 - model_timestep(scheduler, scheduler.timesteps[start + call])) / 1000  # float32
        if not completed < switch_at:
            return call
    return None


def model_timestep(scheduler, timestep) -> torch.Tensor:
    """A1111's timestep of a call: the training sigma nearest to the call's sigma (argmin |sigmas - sigma|).

    diffusers hands the UNet the timestep its sigma interpolates to (log-linear between training sigmas): undone
    here; a whole timestep (DDIM, PLMS, rounded schedules) is its own training sigma, so it maps to itself.
    """
    alphas = scheduler.alphas_cumprod.float().cpu()
    training = ((1 - alphas) / alphas) ** 0.5
    t = min(max(float(timestep), 0.0), len(training) - 1.0)
    low = int(math.floor(t))
    high = min(low + 1, len(training) - 1)
    log_sigma = (1 - (t - low)) * training[low].log() + (t - low) * training[high].log()
    return torch.argmin(torch.abs(training - log_sigma.exp()))


class RefinerPass:
    """The refiner in one pass of a job: the call at which it takes over and its conditioning, encoded once."""

    def __init__(self, refiner: Refiner, at: int, encode: Callable[[Any], PassConditioning]) -> None:
        self.refiner, self.at = refiner, at
        self._encode = encode
        self._conditioning: PassConditioning | None = None
        self.took_over = False  # in some batch of the pass

    def conditioning(self) -> PassConditioning:
        """The prompts encoded by the refiner's own text encoders (A1111 recomputes the conds at the switch)."""
        if self._conditioning is None:
            self._conditioning = self._encode(self.refiner.job)
        return self._conditioning

    def prompt_warnings(self) -> list[str]:
        """What of the prompts the refiner's steps leave out (they run the prompts as they are at the switch)."""
        conditioning = self._conditioning
        if conditioning is None or self.at == 0:
            return []
        warnings = []
        if conditioning.composes:
            warnings.append(f"the refiner '{self.refiner.title}' ran only the first AND part of the prompt "
                            "(AND is applied in the base model's steps)")
        if conditioning.changes_after(self.at):
            warnings.append(f"the refiner '{self.refiner.title}' kept the prompts as they were when it took over: "
                            "prompt editing and alternation after the switch were not applied")
        return warnings

    def call(self, pipe, conditioning: PassConditioning) -> BatchCall:
        """What one batch calls: `pipe`, switching part-way; when the refiner takes over at the first call, its
        own img2img / inpaint pipeline (it encodes the init image as the base would: same latents), or in txt2img
        `pipe` with the refiner's UNet and prompts from the start."""
        if self.at != 0:
            return BatchCall(pipe, conditioning, refining=self)
        self.took_over = True
        if self.refiner.runs_the_task:
            return BatchCall(self.refiner.pipe, self.conditioning(), prediction_type=self.refiner.prediction_type,
                             taken_over=True)
        return BatchCall(pipe, self.conditioning(), prediction_type=self.refiner.prediction_type, refining=self)


@dataclass
class BatchCall:
    """One batch's diffusers call: the pipeline, its conditioning and, to switch part-way, the refiner pass."""

    pipe: Any
    conditioning: PassConditioning
    prediction_type: str | None = None  # for the batch's scheduler; None: the pipeline's checkpoint's own
    refining: RefinerPass | None = None
    taken_over: bool = False
    switch: RefinerSwitch | None = field(default=None, init=False)

    @property
    def decoder(self):
        """The pipeline whose VAE decodes the result: the refiner's once it has taken over (A1111 decodes with the
        model loaded at the end)."""
        if self.switch is not None and self.switch.switched:
            return self.refining.refiner.pipe
        return self.pipe

    @contextlib.contextmanager
    def callback(self, on_step) -> Iterator[Any]:
        """The step callback to pass: `on_step`, or the switch around it; the base UNet is back afterwards."""
        if self.refining is None:
            yield on_step
            return
        self.switch = RefinerSwitch(on_step, self.refining, self.pipe)
        try:
            if self.refining.at == 0:
                self.switch.take_over(self.pipe)
            yield self.switch
        finally:
            self.switch.restore()


class RefinerSwitch:
    """A step callback that hands the rest of the denoising over to the refiner after call `at - 1`.

    diffusers calls `pipe.unet` anew on every step and takes `latents` and the conditioning tensors back from the
    callback's return value, so the switch sets the refiner's UNet and returns the refiner's conditioning; the
    sampler's state (scheduler, latents, noise) carries on. The base UNet is put back at the last step or an
    interrupt (before diffusers' end-of-call offload hooks see the pipeline) and by `restore`, whatever happened.
    """

    def __init__(self, on_step, refining: RefinerPass, pipe) -> None:
        self.on_step, self.refining = on_step, refining
        names = [n for n in CONDITIONING_TENSORS if n in getattr(type(pipe), "_callback_tensor_inputs", ())]
        self.tensor_inputs = [*getattr(on_step, "tensor_inputs", ("latents",)), *names]
        self.switched = False
        self._pipe, self._unet = pipe, None

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        tensors = self.on_step(pipe, step, timestep, tensors)
        interrupted = bool(getattr(pipe, "_interrupt", False))
        if not self.switched and step + 1 == self.refining.at and not interrupted:
            tensors.update(self._switch(pipe, tensors))
        elif self.switched and (interrupted or step + 1 >= pipe.num_timesteps):
            self.restore()
        return tensors

    def finish(self) -> None:
        self.on_step.finish()

    def restore(self) -> None:
        if self._unet is not None:
            self._pipe.unet, self._unet = self._unet, None

    def take_over(self, pipe) -> None:
        """The refiner's UNet in `pipe` (and its prediction type in this batch's own scheduler) from now on."""
        refiner = self.refining.refiner
        self._unet, pipe.unet = pipe.unet, refiner.pipe.unet
        park(self._unet)
        if pipe.scheduler.config.prediction_type != refiner.prediction_type:
            pipe.scheduler.register_to_config(prediction_type=refiner.prediction_type)
        self.switched = self.refining.took_over = True

    def _switch(self, pipe, tensors: dict) -> dict:
        refiner = self.refining.refiner
        conditioning = self.refining.conditioning().at(self.refining.at)  # its prompts as they are from the switch on
        latents = tensors["latents"]
        rows = latents.shape[0]
        cfg = tensors["prompt_embeds"].shape[0] == 2 * rows
        self.take_over(pipe)
        like = tensors["prompt_embeds"]
        new = {"prompt_embeds": cfg_pair(conditioning["negative_prompt_embeds"], conditioning["prompt_embeds"],
                                         rows, cfg, like)}
        if "add_time_ids" in tensors:
            new["add_text_embeds"] = cfg_pair(conditioning["negative_pooled_prompt_embeds"],
                                           conditioning["pooled_prompt_embeds"], rows, cfg, like)
            height, width = (side * pipe.vae_scale_factor for side in latents.shape[-2:])
            ids = [torch.tensor([time_ids(refiner.pipe, height, width, score)])
                   for score in (LOW_AESTHETIC_SCORE, HIGH_AESTHETIC_SCORE)]
            new["add_time_ids"] = cfg_pair(*ids, rows, cfg, like)
        return new


def park(unet) -> None:
    """Under --medvram (accelerate's model offload) the UNet that stops running goes to the CPU now: the base
    pipeline's hooks would move it only when its own VAE runs, so both UNets would share the GPU."""
    hook = getattr(unet, "_hf_hook", None)
    if hook is None:
        return
    from accelerate.hooks import CpuOffload

    if any(isinstance(h, CpuOffload) for h in getattr(hook, "hooks", [hook])):
        unet.to("cpu")  # its hook moves it back to the device when it runs again
