"""Prompt editing, alternation and AND through the real engine: what the UNet sees at each call, and the pixels."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from sdui.engine.generate import encode_conditioning
from sdui.models.tiny import DEMO_NAME

from .conftest import pixels, small


@contextlib.contextmanager
def unet_inputs(pipe):
    """The (encoder_hidden_states, batch rows) of every UNet call made inside, as the pipeline passes them."""
    calls: list[tuple[torch.Tensor, int]] = []

    def record(module, args, kwargs):
        calls.append((kwargs["encoder_hidden_states"].detach().clone(), int(args[0].shape[0])))

    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def encoded(pipe, text: str, negative: str = "", chunks_like: torch.Tensor | None = None) -> torch.Tensor:
    """`text` as sdui encodes a plain prompt (padded to the chunk count of `chunks_like`)."""
    positive = encode_conditioning(pipe, text, negative).at(0)["prompt_embeds"]
    if chunks_like is not None and positive.shape[1] < chunks_like.shape[1]:
        padding = encode_conditioning(pipe, "", "").at(0)["prompt_embeds"]
        positive = torch.cat([positive, *[padding] * ((chunks_like.shape[1] - positive.shape[1]) // 77)], dim=1)
    return positive


def positive_half(hidden: torch.Tensor) -> torch.Tensor:
    return hidden[hidden.shape[0] // 2:][:1]


@pytest.fixture
def pipe(engine):
    engine.run(small(steps=1))  # loads the demo model
    return engine.manager.get(DEMO_NAME)


def test_prompt_editing_switches_after_the_documented_call(engine, pipe):
    with unet_inputs(pipe) as calls:
        engine.run(small(prompt="a [cat:dog:3]", negative_prompt="", sampler="Euler", steps=6))
    cat, dog = encoded(pipe, "a cat"), encoded(pipe, "a dog")
    assert not torch.allclose(cat, dog)
    seen = ["cat" if torch.allclose(positive_half(h), cat) else "dog" if torch.allclose(positive_half(h), dog)
            else "?" for h, _ in calls]
    # A1111: the text holds while its 0-based call counter is <= 3, so 4 calls of "a cat", then "a dog".
    assert seen == ["cat"] * 4 + ["dog"] * 2


def test_alternation_switches_every_call_and_the_negative_prompt_is_scheduled_too(engine, pipe):
    with unet_inputs(pipe) as calls:
        engine.run(small(prompt="a [cat|dog]", negative_prompt="[blurry::2]", sampler="Euler", steps=5))
    cat, dog = encoded(pipe, "a cat"), encoded(pipe, "a dog")
    blurry, empty = encoded(pipe, "blurry"), encoded(pipe, "")
    positives = ["cat" if torch.allclose(positive_half(h), cat) else "dog" if torch.allclose(positive_half(h), dog)
                 else "?" for h, _ in calls]
    negatives = ["blurry" if torch.allclose(h[:1], blurry) else "" if torch.allclose(h[:1], empty) else "?"
                 for h, _ in calls]
    # Entries (1, cat), (2, dog), (3, cat)...: calls 0 and 1 take the first, then one each.
    assert positives == ["cat", "cat", "dog", "cat", "dog"]
    assert negatives == ["blurry"] * 3 + [""] * 2


def test_every_text_is_encoded_once_and_all_keep_one_shape(engine, pipe):
    long = "a red house, " * 25  # more than 75 tokens: two chunks
    forwards = []
    handle = pipe.text_encoder.register_forward_pre_hook(lambda module, args: forwards.append(args[0].shape[0]))
    try:
        with unet_inputs(pipe) as calls:
            engine.run(small(prompt=f"[cat|{long}]", negative_prompt="[cat|blurry]", sampler="Euler", steps=6))
    finally:
        handle.remove()
    # "cat" (positive and negative), the long text and "blurry": three texts, each one text-encoder forward.
    assert len(forwards) == 3
    assert {h.shape for h, _ in calls} == {torch.Size([2, 154, calls[0][0].shape[-1]])}


def test_a_plain_prompt_gives_the_same_pixels_as_before(engine):
    plain = engine.run(small(prompt="a cat"))
    edited = engine.run(small(prompt="a [cat:dog:100]"))  # never switches within 3 steps
    assert np.array_equal(pixels(plain.images[0]), pixels(edited.images[0]))
    assert edited.infotexts[0].startswith("a [cat:dog:100]\n")  # the infotext keeps the prompt as written


def test_and_with_equal_halves_is_the_part_itself_and_a_zero_weight_part_changes_nothing(engine):
    cat = pixels(engine.run(small(prompt="a cat")).images[0])
    halves = pixels(engine.run(small(prompt="a cat :0.5 AND a cat :0.5")).images[0])
    zero = pixels(engine.run(small(prompt="a cat AND a dog :0")).images[0])
    mixed = pixels(engine.run(small(prompt="a cat AND a dog")).images[0])
    assert np.abs(halves - cat).max() <= 1  # u + ½(c−u) + ½(c−u) = c, up to float rounding
    assert np.abs(zero - cat).max() <= 1
    assert np.abs(mixed - cat).max() > 5


def test_and_runs_every_part_in_one_unet_batch(engine, pipe):
    rows = []
    handle = pipe.unet.conv_in.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    try:
        engine.run(small(prompt="a cat AND a dog AND a bird", batch_size=2, sampler="Euler", steps=2))
        engine.run(small(prompt="a cat AND a dog", cfg_scale=1.0, sampler="Euler", steps=2))
    finally:
        handle.remove()
    assert rows == [2 * 4, 2 * 4, 3, 3]  # (uncond + 3 parts) × 2 images; at CFG 1 uncond + 2 parts, 1 image


def test_and_at_cfg_1_is_a1111s_mix(engine, pipe):
    """At scale 1 the prediction is u + Σ wᵢ(cᵢ − u): with weights 1 and −1 on the same text, exactly u."""
    negative_only = pixels(engine.run(small(prompt="blurry", negative_prompt="blurry", cfg_scale=1.0)).images[0])
    cancelled = pixels(engine.run(small(prompt="a cat AND a cat :-1 AND blurry", negative_prompt="blurry",
                                        cfg_scale=1.0)).images[0])
    assert np.abs(cancelled - negative_only).max() <= 1


def test_the_hires_pass_continues_the_timeline(engine, pipe):
    with unet_inputs(pipe) as calls:
        engine.run(small(prompt="a [cat:dog:1.5]", negative_prompt="", sampler="Euler", steps=4, enable_hr=True,
                         hr_scale=1.5, hr_upscaler="Latent", hr_second_pass_steps=4, denoising_strength=0.6))
    cat, dog = encoded(pipe, "a cat"), encoded(pipe, "a dog")
    seen = ["cat" if torch.allclose(positive_half(h), cat) else "dog" if torch.allclose(positive_half(h), dog)
            else "?" for h, _ in calls]
    # First pass: 4 calls of "a cat"; hires pass: (1.5 − 1) × 4 = 2 → calls 0…2 "a cat", then "a dog".
    assert seen == ["cat"] * 4 + ["cat"] * 3 + ["dog"]


def test_sdxl_schedules_and_and_parts(tmp_path):
    from sdui.engine.generate import Engine
    from sdui.models.catalog import Catalog
    from sdui.models.layout import write_tiny_checkpoint
    from sdui.models.manager import ModelManager
    from sdui.settings import Settings

    write_tiny_checkpoint(tmp_path / "models" / "tiny-xl.safetensors", family="sdxl")
    settings = Settings.for_data_dir(tmp_path, ckpt_dir=tmp_path / "models", device="cpu", fast_path=False)
    engine = Engine(ModelManager(Catalog(tmp_path / "models", tmp_path / "cache"), settings))
    base = small(checkpoint="tiny-xl", sampler="Euler", steps=4)
    engine.run(base.replace(steps=1))
    pipe = engine.manager.get("tiny-xl")
    pooled = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: pooled.append(kwargs["added_cond_kwargs"]["text_embeds"].clone()),
        with_kwargs=True)
    try:
        edited = engine.run(base.replace(prompt="a [cat:dog:1]"))
    finally:
        handle.remove()
    cat = encode_conditioning(pipe, "a cat", "").at(0)["pooled_prompt_embeds"]
    dog = encode_conditioning(pipe, "a dog", "").at(0)["pooled_prompt_embeds"]
    assert [torch.allclose(p[1:], cat) for p in pooled] == [True, True, False, False]
    assert [torch.allclose(p[1:], dog) for p in pooled] == [False, False, True, True]
    composed = engine.run(base.replace(prompt="a cat AND a dog"))
    plain = engine.run(base.replace(prompt="a cat"))
    assert np.abs(pixels(composed.images[0]) - pixels(plain.images[0])).max() > 5
    assert edited.images and not edited.warnings


def test_a_schedule_between_texts_of_different_lengths_compiles_one_graph(engine, pipe):
    """Every text of the schedule is padded to the same chunk count: a compiled UNet never sees a new shape."""
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(1)
        return graph_module.forward

    long = "a red house, " * 25  # two chunks; "a cat" is one
    eager = pipe.unet.forward
    torch._dynamo.reset()
    try:
        pipe.unet.forward = torch.compile(eager, backend=counting_backend, fullgraph=True)
        with unet_inputs(pipe) as calls:
            engine.run(small(prompt=f"[a cat|{long}]", negative_prompt="[blurry::2]", sampler="Euler", steps=4))
    finally:
        pipe.unet.forward = eager
        torch._dynamo.reset()
    assert len({h.shape for h, _ in calls}) == 1 and len(calls) == 4
    assert len(graphs) == 1, f"{len(graphs)} graphs for one schedule"


def test_the_old_timeline_reads_2_0_as_a_step_and_says_so_in_the_infotext(engine, pipe):
    seen = {}
    for old in (False, True):
        with unet_inputs(pipe) as calls:
            result = engine.run(small(prompt="a [cat:dog:2.0]", negative_prompt="", sampler="Euler", steps=5,
                                      use_old_scheduling=old))
        cat = encoded(pipe, "a cat")
        seen[old] = ["cat" if torch.allclose(positive_half(h), cat) else "dog" for h, _ in calls]
        assert ("Old prompt editing timelines: True" in result.infotexts[0]) is old
    assert seen[False] == ["cat"] * 5  # new timeline: 2.0 is a fraction (×5 steps): never within the pass
    assert seen[True] == ["cat"] * 3 + ["dog"] * 2  # old: step 2, so calls 0…2


def test_the_composer_mixes_a1111s_way_and_spreads_per_image_inputs_over_its_batch():
    """Without the pipeline's CFG (an LCM's guidance embedding), uncond rows are added and `timestep_cond` follows."""
    from sdui.engine.conditioning import Composer, Encoded, PassConditioning, composing

    class Unet(torch.nn.Module):
        def forward(self, sample, timestep, encoder_hidden_states=None, timestep_cond=None, return_dict=False):
            self.rows = (sample.shape[0], encoder_hidden_states.shape[0], timestep_cond.shape[0])
            shift = encoder_hidden_states.mean(dim=(1, 2)) + timestep_cond.sum(-1)
            return (sample + shift.view(-1, 1, 1, 1),)

    embeds = {name: torch.full((1, 77, 8), value) for name, value in (("neg", 0.5), ("cat", 2.0), ("dog", -1.0))}
    conditioning = PassConditioning([(1.0, [(9, Encoded(embeds["cat"]))]), (0.5, [(9, Encoded(embeds["dog"]))])],
                                    [(9, Encoded(embeds["neg"]))])
    unet, sample, guidance = Unet(), torch.zeros(2, 4, 8, 8), torch.full((2, 16), 0.25)
    with composing(unet, Composer(conditioning, rows=2)):
        out = unet(sample, torch.tensor(999), encoder_hidden_states=embeds["cat"].repeat(2, 1, 1),
                   timestep_cond=guidance)[0]
    assert unet.rows == (6, 6, 6)  # uncond + 2 parts, for each of the 2 images
    u, cat, dog = 0.5 + 4.0, 2.0 + 4.0, -1.0 + 4.0
    assert torch.allclose(out, torch.full((2, 4, 8, 8), u + 1.0 * (cat - u) + 0.5 * (dog - u)))
