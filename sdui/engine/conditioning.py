"""One pass's prompts as the denoising loop needs them: A1111's schedules (prompt editing, alternation) and AND.

Every distinct text of the pass is tokenized and encoded once, all padded to the same number of 77-token chunks,
so the tensors keep one shape over the whole schedule (nothing recompiles under --compile). The diffusers loop
takes the first call's tensors as arguments; `ConditioningStepper`, a step callback, hands it each next call's
(diffusers re-reads `prompt_embeds` / `add_text_embeds` from a callback's return value). AND parts are composed
as A1111's composable diffusion: `uncond + Σ wᵢ·(condᵢ − uncond)` stands in for the UNet's conditional prediction
(a hook pair on the UNet runs all parts in one batch), so the pipeline's CFG then gives
`uncond + scale·Σ wᵢ·(condᵢ − uncond)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from sdui.engine.prompt_schedule import at_call, composable_parts, schedule
from sdui.engine.prompts import Chunk, encode_chunks, encode_chunks_sdxl, tokenize_chunks, used_embeddings

# The conditioning tensors a step callback may replace (those in the pipeline class's `_callback_tensor_inputs`);
# with CFG each is the [negative, positive] concatenation the loop feeds the UNet.
STEPPED_TENSORS = ("prompt_embeds", "add_text_embeds")


@dataclass(frozen=True)
class Encoded:
    """One text through the text encoder(s): (1, 77·chunks, width) and, on SDXL, the pooled (1, width) one."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None


Timeline = list[tuple[int, Encoded]]  # (last call, encoding) as prompt_schedule.schedule orders them


@dataclass
class PassConditioning:
    """A pass's positive prompt as AND parts (weight, timeline) and its negative prompt's timeline."""

    parts: list[tuple[float, Timeline]]
    negative: Timeline

    @property
    def varies(self) -> bool:
        """Some text changes during the pass (prompt editing or alternation)."""
        return len(self.negative) > 1 or any(len(timeline) > 1 for _, timeline in self.parts)

    @property
    def composes(self) -> bool:
        """The conditional prediction is a mix of AND parts (or one part with a weight other than 1)."""
        return len(self.parts) > 1 or self.parts[0][0] != 1.0

    def changes_after(self, call: int) -> bool:
        """Some text of a call after `call` differs from call `call`'s."""
        timelines = [self.negative, *(timeline for _, timeline in self.parts)]
        return any(next((i for i, (end, _) in enumerate(t) if call <= end), 0) < len(t) - 1 for t in timelines)

    def parts_at(self, call: int) -> list[tuple[float, Encoded]]:
        return [(weight, at_call(timeline, call)) for weight, timeline in self.parts]

    def negative_at(self, call: int) -> Encoded:
        return at_call(self.negative, call)

    def at(self, call: int = 0) -> dict[str, torch.Tensor]:
        """The pipeline keyword arguments of call `call` (the first AND part as the positive prompt)."""
        positive, negative = self.parts_at(call)[0][1], self.negative_at(call)
        kwargs = {"prompt_embeds": positive.embeds, "negative_prompt_embeds": negative.embeds}
        if positive.pooled is not None:
            kwargs.update(pooled_prompt_embeds=positive.pooled, negative_pooled_prompt_embeds=negative.pooled)
        return kwargs


def encode_pass(encode: Callable[[list[Chunk]], Encoded], tokenizer, prompt: str, negative_prompt: str, steps: int,
                hires_steps: int | None = None, embeddings=None, used: set[str] | None = None,
                use_old_scheduling: bool = False) -> PassConditioning:
    """Schedule both prompts over the pass, tokenize every distinct text once, pad them all to the same chunk
    count and `encode` each once. `hires_steps`: the hires pass of a job whose first pass has `steps`."""
    parts = [(weight, schedule(text, steps, hires_steps, use_old_scheduling))
             for text, weight in composable_parts(prompt)]
    negative = schedule(negative_prompt, steps, hires_steps, use_old_scheduling)
    texts = dict.fromkeys(text for _, timeline in [*parts, (1.0, negative)] for _, text in timeline)
    chunks = {text: tokenize_chunks(tokenizer, text, embeddings) for text in texts}
    width = max(len(c) for c in chunks.values())
    encoded = {text: encode(c + [Chunk() for _ in range(width - len(c))]) for text, c in chunks.items()}
    if used is not None:
        used.update(name for c in chunks.values() for name in used_embeddings(c))
    return PassConditioning([(weight, [(end, encoded[text]) for end, text in timeline]) for weight, timeline in parts],
                            [(end, encoded[text]) for end, text in negative])


def chunk_encoder(pipe, clip_skip: int) -> tuple[Callable[[list[Chunk]], Encoded], object]:
    """How `pipe`'s text encoder(s) encode chunks, and the tokenizer that chunks its prompts."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs = [(e, t) for e, t in ((pipe.text_encoder, pipe.tokenizer), (pipe.text_encoder_2, pipe.tokenizer_2))
                 if e is not None]  # the SDXL refiner has only the second encoder
        encoders, tokenizers = [e for e, _ in pairs], [t for _, t in pairs]

        def encode_sdxl(chunks: list[Chunk]) -> Encoded:
            return Encoded(*encode_chunks_sdxl(encoders, tokenizers, chunks, clip_skip))

        return encode_sdxl, tokenizers[0]

    def encode(chunks: list[Chunk]) -> Encoded:
        return Encoded(encode_chunks(pipe.text_encoder, pipe.tokenizer, chunks, clip_skip))

    return encode, pipe.tokenizer


def cfg_pair(negative: torch.Tensor, positive: torch.Tensor, rows: int, cfg: bool, like: torch.Tensor) -> torch.Tensor:
    """[negative × rows, positive × rows] (only the positive without CFG), on `like`'s device and dtype."""
    halves = [_rows(negative, rows), _rows(positive, rows)] if cfg else [_rows(positive, rows)]
    return torch.cat(halves).to(device=like.device, dtype=like.dtype)


def _rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    return t.repeat(rows, *[1] * (t.dim() - 1))


class ConditioningStepper:
    """A step callback around `on_step`: after call i, the loop gets call i+1's prompts (when they change).

    It steps only while `pipe` runs its own UNet: once a refiner took over, the refiner's conditioning stays.
    """

    def __init__(self, on_step, conditioning: PassConditioning, pipe, composer: Composer | None = None) -> None:
        self.on_step, self.conditioning, self.composer = on_step, conditioning, composer
        names = [n for n in STEPPED_TENSORS if n in getattr(type(pipe), "_callback_tensor_inputs", ())]
        self.tensor_inputs = [*getattr(on_step, "tensor_inputs", ("latents",)), *names]
        self._unet = pipe.unet
        self._shown = self._choice(0)

    def _choice(self, call: int) -> tuple[int, ...]:
        return (id(self.conditioning.negative_at(call)), *(id(e) for _, e in self.conditioning.parts_at(call)))

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        tensors = self.on_step(pipe, step, timestep, tensors)
        if pipe.unet is not self._unet:
            return tensors
        call = step + 1
        if self.composer is not None:
            self.composer.call = call
        choice = self._choice(call)
        if choice != self._shown and "prompt_embeds" in tensors:
            self._shown = choice
            tensors.update(self._tensors(call, tensors))
        return tensors

    def _tensors(self, call: int, tensors: dict) -> dict:
        rows = tensors["latents"].shape[0]
        like = tensors["prompt_embeds"]
        cfg = like.shape[0] == 2 * rows
        positive, negative = self.conditioning.parts_at(call)[0][1], self.conditioning.negative_at(call)
        new = {"prompt_embeds": cfg_pair(negative.embeds, positive.embeds, rows, cfg, like)}
        if "add_text_embeds" in tensors and positive.pooled is not None:
            new["add_text_embeds"] = cfg_pair(negative.pooled, positive.pooled, rows, cfg, tensors["add_text_embeds"])
        return new

    def finish(self) -> None:
        self.on_step.finish()


class Composer:
    """AND on one UNet: each call runs the uncond rows and every part's rows in one batch and hands the pipeline
    `uncond + Σ wᵢ·(condᵢ − uncond)` as its conditional prediction. Without CFG in the pipeline (scale 1) it
    adds the uncond rows itself, so the result is A1111's at scale 1."""

    def __init__(self, conditioning: PassConditioning, rows: int) -> None:
        self.conditioning, self.rows = conditioning, rows  # rows: the images of the batch
        self.call = 0
        self._layout: tuple[int, bool, list[float]] | None = None

    def before(self, module, args: tuple, kwargs: dict):
        sample, timestep = args[0], args[1] if len(args) > 1 else kwargs.pop("timestep")
        args = args[2:]
        hidden = kwargs["encoder_hidden_states"]
        parts = self.conditioning.parts_at(self.call)
        rows = self.rows
        cfg = sample.shape[0] == 2 * rows
        uncond_sample, cond_sample = (sample[:rows], sample[rows:]) if cfg else (sample, sample)
        negative = self.conditioning.negative_at(self.call)
        uncond_hidden = hidden[:rows] if cfg else _rows(negative.embeds, rows).to(hidden)
        kwargs["encoder_hidden_states"] = torch.cat([uncond_hidden, *(_rows(e.embeds, rows).to(hidden)
                                                                      for _, e in parts)])
        k = len(parts)
        added = kwargs.get("added_cond_kwargs")
        if added and "text_embeds" in added:
            text = added["text_embeds"]
            uncond_text = text[:rows] if cfg else _rows(negative.pooled, rows).to(text)
            ids = added["time_ids"]
            uncond_ids, cond_ids = (ids[:rows], ids[rows:]) if ids.shape[0] == 2 * rows else (ids, ids)
            kwargs["added_cond_kwargs"] = {**added,
                                           "text_embeds": torch.cat([uncond_text, *(_rows(e.pooled, rows).to(text)
                                                                                  for _, e in parts)]),
                                           "time_ids": torch.cat([uncond_ids, *[cond_ids] * k])}
        timestep = self._per_row(timestep, sample, rows, cfg, k)
        if kwargs.get("timestep_cond") is not None:  # a guidance embedding (LCM): one row per image too
            kwargs["timestep_cond"] = self._per_row(kwargs["timestep_cond"], sample, rows, cfg, k)
        self._layout = (rows, cfg, [w for w, _ in parts])
        return (torch.cat([uncond_sample, *[cond_sample] * k]), timestep, *args), kwargs

    @staticmethod
    def _per_row(value, sample: torch.Tensor, rows: int, cfg: bool, parts: int):
        """A per-row input (timesteps, guidance embedding) for the composed batch; a scalar stays as it is."""
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != sample.shape[0]:
            return value
        uncond, cond = (value[:rows], value[rows:]) if cfg else (value, value)
        return torch.cat([uncond, *[cond] * parts])

    def after(self, module, args: tuple, kwargs: dict, output):
        rows, cfg, weights = self._layout
        out = output[0] if isinstance(output, tuple) else output.sample
        uncond = out[:rows]
        mixed = uncond.float().clone()
        for i, weight in enumerate(weights):
            mixed += weight * (out[rows * (i + 1):rows * (i + 2)].float() - uncond.float())
        result = torch.cat([uncond, mixed.to(out.dtype)]) if cfg else mixed.to(out.dtype)
        if isinstance(output, tuple):
            return (result, *output[1:])
        output.sample = result
        return output


@contextlib.contextmanager
def composing(unet, composer: Composer | None) -> Iterator[None]:
    """While inside, `unet` runs AND parts through `composer` (nothing when there is none)."""
    if composer is None:
        yield
        return
    handles = [unet.register_forward_pre_hook(composer.before, with_kwargs=True),
               unet.register_forward_hook(composer.after, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def scheduled(pipe, conditioning: PassConditioning, on_step, rows: int) -> Iterator:
    """The step callback for one call of `pipe` on `rows` images: `on_step`, or with the prompts' schedule and AND
    parts applied around it (on the UNet `pipe` runs now)."""
    composer = Composer(conditioning, rows) if conditioning.composes else None
    if composer is None and not conditioning.varies:
        yield on_step
        return
    with composing(pipe.unet, composer):
        yield ConditioningStepper(on_step, conditioning, pipe, composer)
