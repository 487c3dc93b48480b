"""The Engine: one GenerationParams in, a Result out, as numbered steps around a diffusers pipeline.

It knows diffusers and nothing about Gradio or HTTP. Progress is reported through a callback and a
threading.Event interrupts between denoising steps.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import torch
from PIL import Image

from sdui.engine import noise
from sdui.engine.modes import ModeInputs, prepare_inputs
from sdui.engine.preview import PreviewTaker, ToHost, copy_to_host
from sdui.engine.prompts import encode_prompt_pair, encode_prompt_pair_sdxl
from sdui.engine.result import Progress, Result
from sdui.engine.samplers import build_scheduler
from sdui.models.fast import autocast_context
from sdui.models.manager import Task
from sdui.networks.embeddings import EmbeddingSet
from sdui.networks.tags import hash_entry_name
from sdui.outputs.infotext import format_infotext
from sdui.params import GenerationParams, Mode

TASKS = {Mode.TXT2IMG: Task.TXT2IMG, Mode.IMG2IMG: Task.IMG2IMG, Mode.INPAINT: Task.INPAINT,
         Mode.OUTPAINT: Task.INPAINT}


class GenerationError(Exception):
    """Generation failed inside the model (e.g. NaN images even after decoding with an fp32 VAE)."""


class Engine:
    """Runs generations on the prepared pipelines of a ModelManager (anything with `prepare`, `device`, `settings`)."""

    def __init__(self, manager, preview_every: int = 5, preview_to_host: ToHost = copy_to_host) -> None:
        self.manager = manager
        self.preview_every = max(1, preview_every)
        self.preview_to_host = preview_to_host  # tests swap in a copy that lands late, as on a busy GPU

    def run(self, params: GenerationParams, progress: Callable[[Progress], None] | None = None,
            cancel: threading.Event | None = None) -> Result:
        """Generate batch_count × batch_size images; an interrupted run returns what it has."""
        # 1. Check inputs before any heavy work.
        params.validate()
        seed, subseed = noise.resolve_seed(params.seed), noise.resolve_seed(params.subseed)
        params = params.replace(seed=seed, subseed=subseed)
        inputs = prepare_inputs(params, seed)
        # 2. The checkpoint's pipeline for this task, with the job's VAE, LoRAs and embeddings.
        with self.manager.prepare(params, TASKS[params.mode]) as job:
            return self._run_prepared(job, params, inputs, progress, cancel)

    def _run_prepared(self, job, params: GenerationParams, inputs: ModeInputs,
                      progress: Callable[[Progress], None] | None, cancel: threading.Event | None) -> Result:
        pipe = job.pipe
        pipe.set_progress_bar_config(disable=True)
        # 3. Prompts are encoded once for the whole job (after the LoRAs changed the text encoders).
        used_embeddings: set[str] = set()
        conditioning = encode_conditioning(pipe, job.prompt, job.negative_prompt, params.clip_skip,
                                           job.embeddings, used_embeddings)
        result = Result(params=params, model_title=job.info.title, model_name=job.info.name,
                        model_hash=job.info.short_hash, warnings=list(job.warnings))
        # 4. One pipeline call per batch.
        for batch_index in range(params.batch_count):
            if cancel is not None and cancel.is_set():
                result.interrupted = True
                break
            seeds = noise.image_seeds(params.seed, params.batch_size, batch_index)
            subseeds = noise.image_seeds(params.subseed, params.batch_size, batch_index)
            # A fresh scheduler per batch also resets all scheduler state (step index, Brownian trees).
            pipe.scheduler = build_scheduler(job.scheduler_config, params.sampler, params.schedule)
            if hasattr(pipe.scheduler, "noise_sampler_seed"):
                pipe.scheduler.noise_sampler_seed = list(seeds)  # one Brownian tree per image
            previews = PreviewTaker(sdxl=is_sdxl(pipe), to_host=self.preview_to_host)
            on_step = StepReporter(params, batch_index, self.preview_every, progress, cancel, previews)
            with self._call_context():
                latents = call_pipeline(pipe, params, inputs, conditioning, seeds, subseeds, on_step)
            on_step.finish()
            # 5. Decode, with one fp32 retry when the VAE overflows.
            images = decode_latents(pipe, latents)
            # 6. Post-process: paste the original back outside the mask.
            images = [inputs.finish(image) for image in images]
            result.images += images
            result.seeds += seeds
            result.subseeds += subseeds
            if pipe.interrupt or (cancel is not None and cancel.is_set()):
                result.interrupted = True
                break
        # 7. One A1111 infotext per image.
        result.extra = dict(job.infotext)
        if used_embeddings:
            result.extra["TI hashes"] = ti_hashes(job.embeddings, used_embeddings)
        result.infotexts = [infotext(params, s, sub, result.model_name, result.model_hash, result.extra)
                            for s, sub in zip(result.seeds, result.subseeds)]
        return result

    def _call_context(self):
        """The fast path's autocast (bf16 on a bf16 CPU) around the denoising; the VAE decodes outside it."""
        return autocast_context(self.manager.device, self.manager.settings)


class StepReporter:
    """The step callback of one batch: Progress with previews that never make the host wait, and interrupt.

    A preview started on the GPU arrives with the first Progress after its copy has landed; on CPU with its own.
    """

    def __init__(self, params: GenerationParams, batch_index: int, preview_every: int,
                 progress: Callable[[Progress], None] | None, cancel: threading.Event | None,
                 previews: PreviewTaker) -> None:
        self.params, self.batch_index, self.preview_every = params, batch_index, preview_every
        self.progress, self.cancel, self.previews = progress, cancel, previews
        self.last: Progress | None = None

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        if self.progress is not None:
            per_batch = pipe.num_timesteps
            done = step + 1
            job_step = self.batch_index * per_batch + done
            if done % self.preview_every == 0 or done == per_batch:
                self.previews.start(tensors["latents"][0], job_step)
            landed = self.previews.poll()
            self.last = Progress(step=job_step, total=per_batch * self.params.batch_count,
                                 preview=landed[1] if landed else None, batch_index=self.batch_index,
                                 batch_count=self.params.batch_count)
            self.progress(self.last)
        if self.cancel is not None and self.cancel.is_set():
            pipe._interrupt = True  # diffusers skips the remaining steps and returns the current latents
        return tensors

    def finish(self) -> None:
        """After the pipeline call: the batch's last preview, if still in flight, comes with its last step again."""
        landed = self.previews.finish()
        if landed is not None and self.progress is not None and self.last is not None:
            self.progress(dataclasses.replace(self.last, preview=landed[1]))


def is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def encode_conditioning(pipe, prompt: str, negative_prompt: str, clip_skip: int = 1,
                        embeddings: EmbeddingSet | None = None, used: set[str] | None = None) -> dict:
    """Pipeline keyword arguments for the prompts: A1111-weighted embeddings (SD1/SD2 and SDXL).

    `used` receives the names of the textual-inversion embeddings the prompts used.
    """
    if is_sdxl(pipe):
        pairs = [(e, t) for e, t in ((pipe.text_encoder, pipe.tokenizer), (pipe.text_encoder_2, pipe.tokenizer_2))
                 if e is not None]  # the SDXL refiner has only the second encoder
        return encode_prompt_pair_sdxl([e for e, _ in pairs], [t for _, t in pairs], prompt, negative_prompt,
                                       clip_skip, embeddings=embeddings, used=used)
    positive, negative = encode_prompt_pair(pipe.text_encoder, pipe.tokenizer, prompt, negative_prompt, clip_skip,
                                            embeddings=embeddings, used=used)
    return {"prompt_embeds": positive, "negative_prompt_embeds": negative}


def ti_hashes(embeddings: EmbeddingSet, used: set[str]) -> str:
    """A1111's `TI hashes` value: `name: <sha256[:12]>` of each embedding file the prompts used."""
    entries = []
    for name in sorted(used):
        file = embeddings.loaded[name].file
        if file is not None:
            entries.append(f"{hash_entry_name(name)}: {file.hash[:12]}")
    return ", ".join(entries)


def call_pipeline(pipe, params: GenerationParams, inputs: ModeInputs, conditioning: dict, seeds: list[int],
                  subseeds: list[int], on_step) -> torch.Tensor:
    """One diffusers call for one batch; returns the final (or interrupted) latents."""
    n = len(seeds)
    kwargs = {key: value.repeat(n, *[1] * (value.dim() - 1)) for key, value in conditioning.items()}
    kwargs.update(num_inference_steps=params.steps, guidance_scale=params.cfg_scale, output_type="latent",
                  callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=["latents"])
    if inputs.mode is Mode.TXT2IMG:
        shape = (pipe.unet.config.in_channels, inputs.height // pipe.vae_scale_factor,
                 inputs.width // pipe.vae_scale_factor)
        batch = noise.batch_noise(seeds, shape, subseeds, params.subseed_strength)
        # The pipeline's own latents follow the prompt embeddings' dtype (the UNet may be stored in bf16).
        dtype = conditioning["prompt_embeds"].dtype
        kwargs.update(latents=batch.latents.to(dtype), generator=batch.generators,
                      width=inputs.width, height=inputs.height)
    else:
        # img2img/inpaint pipelines draw the initial noise themselves, from each image's own generator.
        kwargs.update(image=[inputs.init_for(s) for s in seeds], strength=params.denoising_strength,
                      generator=noise.step_generators(seeds))
        if inputs.mask is not None:
            kwargs.update(mask_image=[inputs.mask] * n, width=inputs.width, height=inputs.height)
    with torch.inference_mode():
        latents = pipe(**kwargs).images
    if torch.isnan(latents).any():
        raise GenerationError("the model produced NaN latents; try --no-half, another sampler or fewer steps")
    return latents


def decode_latents(pipe, latents: torch.Tensor) -> list[Image.Image]:
    """VAE-decode latents to PIL images; NaN → one retry with the VAE in fp32, then GenerationError."""
    vae = pipe.vae
    with torch.inference_mode():
        latents = latents.to(vae.device)  # a VAE chosen as sd_vae is placed on the device even under offload
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        has_nan = bool(torch.isnan(decoded).any())  # one device sync; checked again only after a retry
        if has_nan and vae.dtype != torch.float32:
            original_dtype = vae.dtype
            vae.to(torch.float32)
            try:
                decoded = vae.decode(latents.float() / vae.config.scaling_factor, return_dict=False)[0]
            finally:
                vae.to(original_dtype)
            has_nan = bool(torch.isnan(decoded).any())
        if has_nan:
            raise GenerationError("the VAE produced NaN images even in fp32; try another checkpoint or VAE")
    return pipe.image_processor.postprocess(decoded.float(), output_type="pil")


def infotext(params: GenerationParams, seed: int, subseed: int, model_name: str, model_hash: str,
             extra: dict[str, str] | None = None) -> str:
    """The A1111 infotext of one image of this job; `extra` adds keys (VAE, Lora hashes, TI hashes)."""
    return format_infotext(params, seed=seed, subseed=subseed, model_name=model_name, model_hash=model_hash,
                           extra=extra)
