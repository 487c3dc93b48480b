"""The Engine: one GenerationParams in, a Result out, as numbered steps around a diffusers pipeline.

It knows diffusers and nothing about Gradio or HTTP. Progress is reported through a callback and a
threading.Event interrupts between denoising steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from sdui.engine import noise
from sdui.engine.hires import LATENT_MODES, crop_image, is_latent_mode, second_pass_steps, upscale_latents
from sdui.engine.modes import ModeInputs, prepare_inputs
from sdui.engine.preview import PreviewTaker, ToHost, copy_to_host
from sdui.engine.conditioning import PassConditioning, chunk_encoder, encode_pass, scheduled
from sdui.engine.refiner import BatchCall, RefinerPass, check_takeover, open_refiner, refines, switch_step
from sdui.engine.result import Progress, Result
from sdui.engine.samplers import build_scheduler
from sdui.models.fast import autocast_context
from sdui.models.manager import Task
from sdui.models.prediction import EPSILON, Prediction
from sdui.networks.embeddings import EmbeddingSet
from sdui.networks.tags import hash_entry_name
from sdui.outputs.infotext import format_infotext
from sdui.params import GenerationParams, Mode
from sdui.upscalers import UpscaleInterrupted

INPAINTING_CHANNELS = 9  # a UNet taking latents + mask + masked-image latents
TASKS = {Mode.TXT2IMG: Task.TXT2IMG, Mode.IMG2IMG: Task.IMG2IMG, Mode.INPAINT: Task.INPAINT,
         Mode.OUTPAINT: Task.INPAINT}


# Above this many pixels the VAE decodes and encodes in tiles (diffusers' tiled VAE): a 2048² image fits in
# CPU memory and on small GPUs; below it images decode as A1111 decodes them, in one piece.
VAE_TILING_PIXELS = 1536 * 1536
VAE_TILING_PIXELS_LOW_MEMORY = 1024 * 1024


class GenerationError(Exception):
    """Generation failed inside the model (e.g. NaN images even after decoding with an fp32 VAE)."""


class Engine:
    """Runs generations on the prepared pipelines of a ModelManager (anything with `prepare`, `info`, `device`,
    `settings`)."""

    def __init__(self, manager, preview_every: int = 5, preview_to_host: ToHost = copy_to_host) -> None:
        self.manager = manager
        self.preview_every = max(1, preview_every)
        self.preview_to_host = preview_to_host  # tests swap in a copy that lands late, as on a busy GPU

    def run(self, params: GenerationParams, progress: Callable[[Progress], None] | None = None,
            cancel: threading.Event | None = None) -> Result:
        """Generate batch_count × batch_size images; an interrupted run returns what it has."""
        # 1. Check inputs before any heavy work.
        params.validate()
        if params.hires and not is_latent_mode(params.hr_upscaler):
            try:
                self.manager.upscalers.check(params.hr_upscaler, "hr_upscaler")
            except ValueError as e:
                raise ValueError(f"{e}; or a latent mode: {', '.join(LATENT_MODES)}") from None
        seed, subseed = noise.resolve_seed(params.seed), noise.resolve_seed(params.subseed)
        params = params.replace(seed=seed, subseed=subseed)
        inputs = prepare_inputs(params, seed)
        run = _Run(params, progress, cancel)
        task = TASKS[params.mode]
        if task is not Task.INPAINT and self.manager.in_channels(params.checkpoint) == INPAINTING_CHANNELS:
            # As A1111: an inpainting model runs txt2img and img2img with the whole picture masked.
            task, inputs = Task.INPAINT, inputs.whole_picture_masked()
        # 2. The checkpoint's pipeline for this task, with the job's VAE, LoRAs and embeddings: every first pass;
        #    the refiner beside it (checked here, before any work, also when only the hires pass may switch).
        with self.manager.prepare(params, task) as job:
            result = Result(params=params, model_title=job.info.title, model_name=job.info.name,
                            model_hash=job.info.short_hash, warnings=list(job.warnings),
                            extra={**job.infotext, **prediction_infotext(job.scheduler_config)})
            with open_refiner(self.manager, params, job, task, params.refiner_checkpoint) as refiner:
                batches = self._first_passes(job, params, inputs, run, self._refining(job, refiner, params, run))
                if run.cancelled:
                    finish_as_they_are(job.pipe, batches)
        # 3. Hires fix: the second pass of every batch, on the pipeline prepared for the hires settings.
        if params.hires and batches and not run.cancelled:
            hires = hires_params(params)
            if self.manager.in_channels(hires.checkpoint) == INPAINTING_CHANNELS:
                raise ValueError("hr_checkpoint: hires fix cannot run its second pass on an inpainting checkpoint "
                                 "yet; choose another Hires checkpoint")
            with self.manager.prepare(hires, Task.IMG2IMG) as hires_job:
                result.warnings += [w for w in hires_job.warnings if w not in result.warnings]
                result.extra.update(hires_infotext(params, hires_job))
                checkpoint = params.refiner_checkpoint if refines(params, hires_pass=True) else ""
                with open_refiner(self.manager, hires, hires_job, Task.IMG2IMG, checkpoint) as refiner:
                    refining = self._refining(hires_job, refiner, hires, run, hires_pass=True)
                    for batch in batches:
                        if run.cancelled:
                            break
                        self._hires_pass(hires_job, hires, batch, run, refining)
                    finish_as_they_are(hires_job.pipe, batches)
        result.warnings += [w for w in run.refiner_warnings() if w not in result.warnings]
        result.extra.update(run.refiner_infotext())
        for batch in batches:
            result.images += batch.images
            result.seeds += batch.seeds
            result.subseeds += batch.subseeds
        result.interrupted = run.cancelled
        # 4. One A1111 infotext per image.
        hashes = ", ".join(dict.fromkeys(filter(None, (ti_hashes(e, used) for e, used in run.used_embeddings))))
        if hashes:
            result.extra["TI hashes"] = hashes
        result.infotexts = [infotext(params, s, sub, result.model_name, result.model_hash, result.extra)
                            for s, sub in zip(result.seeds, result.subseeds)]
        return result

    def _refining(self, job, refiner, params: GenerationParams, run: _Run,
                  hires_pass: bool = False) -> RefinerPass | None:
        """The refiner's part in one pass: None when it has none there (not asked, or the switch point not reached)."""
        if refiner is None or not refines(params, hires_pass):
            return None
        if hires_pass:
            steps, strength = second_pass_steps(params)
        else:
            steps, strength = params.steps, None if params.mode is Mode.TXT2IMG else params.denoising_strength
        if strength is not None and strength <= 0:
            return None
        scheduler = build_scheduler(job.scheduler_config, params.sampler, params.schedule, sdxl=is_sdxl(job.pipe))
        at = switch_step(scheduler, steps, strength, params.refiner_switch_at, params.refiner_switch_by_steps)
        if at is None:
            return None
        if at == 0:
            check_takeover(refiner, params.refiner_switch_at)

        def encode(refiner_job) -> PassConditioning:
            return encode_conditioning(refiner_job.pipe, refiner_job.prompt, refiner_job.negative_prompt,
                                       params.clip_skip, refiner_job.embeddings, run.embeddings_used_by(refiner_job),
                                       *run.timeline(hires_pass))

        run.refining.append(RefinerPass(refiner, at, encode))
        return run.refining[-1]

    def _first_passes(self, job, params: GenerationParams, inputs: ModeInputs, run: _Run,
                      refining: RefinerPass | None = None) -> list[_Batch]:
        """Every batch's first pass: finished images, or (hires) the latents and images the second pass starts from."""
        pipe = job.pipe
        pipe.set_progress_bar_config(disable=True)
        # Prompts are encoded once for the whole job (after the LoRAs changed the text encoders).
        conditioning = encode_conditioning(pipe, job.prompt, job.negative_prompt, params.clip_skip,
                                           job.embeddings, run.embeddings_used_by(job), *run.timeline())
        batches: list[_Batch] = []
        for batch_index in range(params.batch_count):
            if run.cancelled:
                break
            batch = _Batch(batch_index, noise.image_seeds(params.seed, params.batch_size, batch_index),
                           noise.image_seeds(params.subseed, params.batch_size, batch_index))
            call = refining.call(pipe, conditioning) if refining else BatchCall(pipe, conditioning)
            call.pipe.set_progress_bar_config(disable=True)
            self._set_scheduler(call.pipe, job, params.sampler, params.schedule, batch.seeds, call.prediction_type)
            on_step = run.reporter(batch_index * params.steps, params.steps, batch_index, self.preview_every,
                                   self._previews(call.pipe))
            with call.callback(on_step) as switching, self._call_context(), \
                    scheduled(call.pipe, call.conditioning, switching, len(batch.seeds)) as callback:
                latents = call_pipeline(call.pipe, params, inputs, call.conditioning, batch.seeds, batch.subseeds,
                                        callback)
            on_step.finish()
            run.note_interrupt(call.pipe)
            batches.append(batch)
            batch.decoder = call.decoder  # the refiner's, once it took over
            if params.hires and not run.cancelled:
                batch.latents = latents
                if not is_latent_mode(params.hr_upscaler):  # decoded by the first pass's VAE, as in A1111
                    batch.images = decode_latents(batch.decoder, latents)
                continue
            # Decode, with one fp32 retry when the VAE overflows; paste the original back outside the mask.
            with vae_tiling(batch.decoder.vae, inputs.width, inputs.height, self.manager.settings):
                images = decode_latents(batch.decoder, latents)
            batch.finish([inputs.finish(image) for image in images])
        return batches

    def _hires_pass(self, job, params: GenerationParams, batch: _Batch, run: _Run,
                    refining: RefinerPass | None = None) -> None:
        """Upscale one batch's first pass to the hires size and run A1111's second pass on it."""
        pipe = job.pipe
        pipe.set_progress_bar_config(disable=True)
        size = params.hires_size()
        if batch.images:  # an upscaler on the first-pass images (tiled, interruptible between tiles)
            try:
                start = [crop_image(self.manager.upscalers.resize(image, size.upscale_width, size.upscale_height,
                                                                  params.hr_upscaler, run.cancel), size)
                         for image in batch.images]
            except UpscaleInterrupted:
                run.interrupted = True
                return
        else:
            start = upscale_latents(batch.latents, size, params.hr_upscaler)
        conditioning = run.hires_conditioning(pipe, job, params)
        call = refining.call(pipe, conditioning) if refining else BatchCall(pipe, conditioning)
        call.pipe.set_progress_bar_config(disable=True)
        self._set_scheduler(call.pipe, job, params.sampler, params.schedule, batch.seeds, call.prediction_type)
        first = params.batch_count * params.steps
        on_step = run.reporter(first + batch.index * params.hires_steps, params.hires_steps, batch.index,
                               self.preview_every, self._previews(call.pipe))
        pipes = (pipe, call.pipe, refining.refiner.pipe) if refining else (pipe,)
        with contextlib.ExitStack() as tiling:
            for vae in {id(p.vae): p.vae for p in pipes}.values():  # the VAEs that encode the start and decode
                tiling.enter_context(vae_tiling(vae, size.width, size.height, self.manager.settings))
            with call.callback(on_step) as switching, self._call_context(), \
                    scheduled(call.pipe, call.conditioning, switching, len(batch.seeds)) as callback:
                latents = call_hires_pipeline(call.pipe, params, start, call.conditioning, batch.seeds, callback)
            on_step.finish()
            run.note_interrupt(call.pipe)
            if latents is None:  # denoising strength 0: the upscaled first pass is the result
                batch.finish(start if batch.images else decode_latents(pipe, start))
                return
            batch.finish(decode_latents(call.decoder, latents))

    @staticmethod
    def _set_scheduler(pipe, job, sampler: str, schedule: str, seeds: list[int],
                       prediction_type: str | None = None) -> None:
        # A fresh scheduler per batch also resets all scheduler state (step index, Brownian trees).
        pipe.scheduler = build_scheduler(job.scheduler_config, sampler, schedule, sdxl=is_sdxl(pipe))
        if prediction_type and pipe.scheduler.config.prediction_type != prediction_type:  # a refiner's own
            pipe.scheduler.register_to_config(prediction_type=prediction_type)
        if hasattr(pipe.scheduler, "noise_sampler_seed"):
            pipe.scheduler.noise_sampler_seed = list(seeds)  # one Brownian tree per image

    def _previews(self, pipe) -> PreviewTaker:
        return PreviewTaker(sdxl=is_sdxl(pipe), to_host=self.preview_to_host)

    def _call_context(self):
        """The fast path's autocast (bf16 on a bf16 CPU) around the denoising; the VAE decodes outside it."""
        return autocast_context(self.manager.device, self.manager.settings)


@dataclass
class _Batch:
    """One batch of a job: its seeds, and what its passes made so far."""

    index: int
    seeds: list[int]
    subseeds: list[int]
    latents: torch.Tensor | None = None  # the first pass's, when a hires pass follows
    images: list[Image.Image] = dataclasses.field(default_factory=list)  # final, or the first pass's to upscale
    done: bool = False  # `images` are final
    decoder: Any = None  # the pipeline whose VAE decodes the first pass's latents (the refiner's once it took over)

    def finish(self, images: list[Image.Image]) -> None:
        self.images, self.latents, self.done = images, None, True


def finish_as_they_are(pipe, batches: list[_Batch]) -> None:
    """After an interrupt: batches still waiting for their hires pass keep their first-pass images."""
    for batch in batches:
        if not batch.done:
            batch.finish(batch.images or decode_latents(batch.decoder or pipe, batch.latents))


class _Run:
    """What one Engine.run shares between its passes: progress over the whole job, interrupt, used embeddings."""

    def __init__(self, params: GenerationParams, progress: Callable[[Progress], None] | None,
                 cancel: threading.Event | None) -> None:
        self.params, self.progress, self.cancel = params, progress, cancel
        self.interrupted = False
        self.used_embeddings: list[tuple[EmbeddingSet, set[str]]] = []  # per prepared job
        self._hires_conditioning: PassConditioning | None = None
        self.refining: list[RefinerPass] = []  # the refiner's part in each pass that may switch

    @property
    def cancelled(self) -> bool:
        return self.interrupted or (self.cancel is not None and self.cancel.is_set())

    def note_interrupt(self, pipe) -> None:
        # A pipeline that was never called (hires at denoising 0) has no `interrupt` yet.
        self.interrupted = self.interrupted or bool(getattr(pipe, "_interrupt", False))

    def embeddings_used_by(self, job) -> set[str] | None:
        """The set that collects the names of the embeddings a prepared job's prompts use."""
        if job.embeddings is None:
            return None
        for embeddings, used in self.used_embeddings:
            if embeddings is job.embeddings:
                return used
        self.used_embeddings.append((job.embeddings, set()))
        return self.used_embeddings[-1][1]

    def hires_conditioning(self, pipe, job, params: GenerationParams) -> PassConditioning:
        """The hires prompts, encoded once for all batches of the job."""
        if self._hires_conditioning is None:
            self._hires_conditioning = encode_conditioning(pipe, job.prompt, job.negative_prompt, params.clip_skip,
                                                           job.embeddings, self.embeddings_used_by(job),
                                                           *self.timeline(hires_pass=True))
        return self._hires_conditioning

    def timeline(self, hires_pass: bool = False) -> tuple[int, int | None, bool]:
        """(steps, hires_steps, use_old_scheduling) that prompt editing counts in: the first pass's, or the hires
        pass's after it."""
        p = self.params
        return p.steps, p.hires_steps if hires_pass else None, p.use_old_scheduling

    def refiner_infotext(self) -> dict[str, object]:
        """A1111's refiner keys, written only when the refiner took over in some pass."""
        used = [r for r in self.refining if r.took_over]
        if not used:
            return {}
        p = self.params
        extra: dict[str, object] = {}
        if p.hires and p.hires_refiner_pass != "second pass":
            extra["Hires refiner"] = p.hires_refiner_pass
        extra["Refiner"] = used[0].refiner.title
        extra["Refiner switch at"] = p.refiner_switch_at
        return extra

    def refiner_warnings(self) -> list[str]:
        """What preparing the refiner could not apply (a LoRA for another family...), when it took over."""
        return [w for r in self.refining if r.took_over for w in [*r.refiner.job.warnings, *r.prompt_warnings()]]

    def reporter(self, offset: int, pass_steps: int, batch_index: int, preview_every: int,
                 previews: PreviewTaker) -> StepReporter:
        return StepReporter(self, offset, pass_steps, batch_index, preview_every, previews)


class StepReporter:
    """The step callback of one pass of one batch: Progress over the whole job, previews, and interrupt.

    A preview started on the GPU arrives with the first Progress after its copy has landed; on CPU with its own.
    """

    tensor_inputs = ("latents",)  # what diffusers hands the callback

    def __init__(self, run: _Run, offset: int, pass_steps: int, batch_index: int, preview_every: int,
                 previews: PreviewTaker) -> None:
        self.run, self.offset, self.pass_steps = run, offset, pass_steps
        self.batch_index, self.preview_every, self.previews = batch_index, preview_every, previews
        self.last: Progress | None = None

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        run = self.run
        if run.progress is not None:
            calls = max(1, pipe.num_timesteps)  # second-order samplers call back more often than their steps
            done = step + 1
            job_step = self.offset + min(self.pass_steps, done * self.pass_steps // calls)
            if done % self.preview_every == 0 or done == calls:
                self.previews.start(tensors["latents"][0], job_step)
            landed = self.previews.poll()
            self.last = Progress(step=job_step, total=run.params.total_steps,
                                 preview=landed[1] if landed else None, batch_index=self.batch_index,
                                 batch_count=run.params.batch_count)
            run.progress(self.last)
        if run.cancel is not None and run.cancel.is_set():
            pipe._interrupt = True  # diffusers skips the remaining steps and returns the current latents
        return tensors

    def finish(self) -> None:
        """After the pipeline call: the batch's last preview, if still in flight, comes with its last step again."""
        landed = self.previews.finish()
        if landed is not None and self.run.progress is not None and self.last is not None:
            self.run.progress(dataclasses.replace(self.last, preview=landed[1]))


def is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def encode_conditioning(pipe, prompt: str, negative_prompt: str, clip_skip: int = 1,
                        embeddings: EmbeddingSet | None = None, used: set[str] | None = None, steps: int = 1,
                        hires_steps: int | None = None, use_old_scheduling: bool = False) -> PassConditioning:
    """The prompts of a pass of `steps` (the hires pass after them: `hires_steps`), A1111-weighted, scheduled and
    split at AND, encoded by `pipe`'s text encoder(s) (SD1/SD2 and SDXL).

    `used` receives the names of the textual-inversion embeddings the prompts used.
    """
    encode, tokenizer = chunk_encoder(pipe, clip_skip)
    return encode_pass(encode, tokenizer, prompt, negative_prompt, steps, hires_steps, embeddings, used,
                       use_old_scheduling)


def ti_hashes(embeddings: EmbeddingSet, used: set[str]) -> str:
    """A1111's `TI hashes` value: `name: <sha256[:12]>` of each embedding file the prompts used."""
    entries = []
    for name in sorted(used):
        file = embeddings.loaded[name].file
        if file is not None:
            entries.append(f"{hash_entry_name(name)}: {file.hash[:12]}")
    return ", ".join(entries)


def call_pipeline(pipe, params: GenerationParams, inputs: ModeInputs, conditioning: PassConditioning,
                  seeds: list[int], subseeds: list[int], on_step) -> torch.Tensor:
    """One diffusers call for one batch; returns the final (or interrupted) latents."""
    n = len(seeds)
    first = conditioning.at(0)
    kwargs = {key: value.repeat(n, *[1] * (value.dim() - 1)) for key, value in first.items()}
    kwargs.update(num_inference_steps=params.steps, guidance_scale=params.cfg_scale, output_type="latent",
                  callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=list(on_step.tensor_inputs))
    rng = dict(source=params.randn_source, device=pipe._execution_device, ensd=params.eta_noise_seed_delta)
    if inputs.mode is Mode.TXT2IMG:
        shape = (pipe.vae.config.latent_channels, inputs.height // pipe.vae_scale_factor,
                 inputs.width // pipe.vae_scale_factor)
        batch = noise.batch_noise(seeds, shape, subseeds, params.subseed_strength, **rng)
        # The pipeline's own latents follow the prompt embeddings' dtype (the UNet may be stored in bf16).
        dtype = first["prompt_embeds"].dtype
        kwargs.update(latents=batch.latents.to(dtype), generator=batch.generators,
                      width=inputs.width, height=inputs.height)
        if inputs.mask is not None:  # an inpainting model: from these latents, everything repainted
            kwargs.update(image=[inputs.image] * n, mask_image=[inputs.mask] * n, strength=1.0)
    else:
        # img2img/inpaint pipelines draw the initial noise themselves, from each image's own generator.
        kwargs.update(image=[inputs.init_for(s) for s in seeds], strength=params.denoising_strength,
                      generator=noise.step_generators(seeds, **rng))
        if inputs.mask is not None:
            kwargs.update(mask_image=[inputs.mask] * n, width=inputs.width, height=inputs.height)
    noise.route_randn_tensor(kwargs["generator"])  # NV and ENSD generators: diffusers draws from them
    with torch.inference_mode():
        latents = pipe(**kwargs).images
    if torch.isnan(latents).any():
        raise GenerationError("the model produced NaN latents; try --no-half, another sampler or fewer steps")
    return latents


def call_hires_pipeline(pipe, params: GenerationParams, start: torch.Tensor | list[Image.Image],
                        conditioning: PassConditioning, seeds: list[int], on_step) -> torch.Tensor | None:
    """The hires second pass of one batch (img2img on `start`); None when the denoising strength is 0."""
    steps, strength = second_pass_steps(params)
    if strength <= 0:
        return None
    n = len(seeds)
    first = conditioning.at(0)
    kwargs = {key: value.repeat(n, *[1] * (value.dim() - 1)) for key, value in first.items()}
    if isinstance(start, torch.Tensor):
        start = start.to(pipe.device, first["prompt_embeds"].dtype)
    # Each image's own seed again, as A1111 draws the second pass's noise (no variation seed: see README).
    generators = noise.step_generators(seeds, source=params.randn_source, device=pipe._execution_device,
                                       ensd=params.eta_noise_seed_delta)
    kwargs.update(image=start, strength=strength, num_inference_steps=steps, guidance_scale=params.cfg_scale,
                  generator=generators, output_type="latent", callback_on_step_end=on_step,
                  callback_on_step_end_tensor_inputs=list(on_step.tensor_inputs))
    noise.route_randn_tensor(generators)
    with torch.inference_mode():
        latents = pipe(**kwargs).images
    if torch.isnan(latents).any():
        raise GenerationError("the model produced NaN latents in the hires pass; try --no-half or another sampler")
    return latents


def prediction_infotext(scheduler_config: dict) -> dict[str, str]:
    """sdui's `Prediction` key for a model that is not plain epsilon (v-prediction, zero terminal SNR)."""
    prediction = Prediction(scheduler_config.get("prediction_type", EPSILON),
                            bool(scheduler_config.get("rescale_betas_zero_snr")))
    plain = prediction.kind == EPSILON and not prediction.zero_snr
    return {} if plain else {"Prediction": prediction.label}


def hires_params(params: GenerationParams) -> GenerationParams:
    """The job as its hires pass runs it: the hires checkpoint, sampler, schedule and prompts ("" = the same)."""
    return params.replace(checkpoint=params.hr_checkpoint or params.checkpoint,
                          sampler=params.hr_sampler or params.sampler, schedule=params.hr_schedule or params.schedule,
                          prompt=params.hr_prompt or params.prompt,
                          negative_prompt=params.hr_negative_prompt or params.negative_prompt)


def hires_infotext(params: GenerationParams, hires_job) -> dict[str, str]:
    """The infotext keys of the hires pass that depend on what was prepared (the rest: format_infotext)."""
    extra = {}
    if params.hr_checkpoint:
        extra["Hires checkpoint"] = hires_job.info.title
    lora_hashes = hires_job.infotext.get("Lora hashes")
    if lora_hashes:
        extra["Lora hashes"] = lora_hashes
    return extra


@contextlib.contextmanager
def vae_tiling(vae, width: int, height: int, settings) -> Iterator[None]:
    """diffusers' tiled VAE decode/encode for images beyond VAE_TILING_PIXELS (less with --medvram/--lowvram)."""
    limit = VAE_TILING_PIXELS_LOW_MEMORY if (settings.medvram or settings.lowvram) else VAE_TILING_PIXELS
    before = getattr(vae, "use_tiling", False)
    vae.use_tiling = before or width * height > limit
    try:
        yield
    finally:
        vae.use_tiling = before


def decode_latents(pipe, latents: torch.Tensor) -> list[Image.Image]:
    """VAE-decode latents to PIL images; NaN → one retry with the VAE in fp32, then GenerationError.

    On SDXL an fp16 VAE whose config says `force_upcast` (the original SDXL VAE; not the fp16-fix one) decodes
    in fp32 at once, as diffusers' SDXL pipelines do, instead of overflowing to NaN first. SD1/SD2 pipelines
    ignore the flag (it defaults to true in every diffusers VAE config) and decode as stored, as A1111 does.
    """
    vae = pipe.vae
    with torch.inference_mode():
        latents = latents.to(vae.device)  # a VAE chosen as sd_vae is placed on the device even under offload
        if vae.dtype == torch.float16 and is_sdxl(pipe) and getattr(vae.config, "force_upcast", False):
            decoded = _decode_in_fp32(vae, latents)
        else:
            decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            if vae.dtype != torch.float32 and bool(torch.isnan(decoded).any()):  # one device sync
                decoded = _decode_in_fp32(vae, latents)
        if bool(torch.isnan(decoded).any()):
            raise GenerationError("the VAE produced NaN images even in fp32; try another checkpoint or VAE")
    return pipe.image_processor.postprocess(decoded.float(), output_type="pil")


def _decode_in_fp32(vae, latents: torch.Tensor) -> torch.Tensor:
    original_dtype = vae.dtype
    vae.to(torch.float32)
    try:
        return vae.decode(latents.float() / vae.config.scaling_factor, return_dict=False)[0]
    finally:
        vae.to(original_dtype)


def infotext(params: GenerationParams, seed: int, subseed: int, model_name: str, model_hash: str,
             extra: dict[str, str] | None = None) -> str:
    """The A1111 infotext of one image of this job; `extra` adds keys (VAE, Lora hashes, TI hashes)."""
    return format_infotext(params, seed=seed, subseed=subseed, model_name=model_name, model_hash=model_hash,
                           extra=extra)
