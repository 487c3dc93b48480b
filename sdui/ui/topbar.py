"""The top bar: checkpoint and SD VAE dropdowns with their refresh buttons, A1111's quick settings every job reads
(Clip skip, random number source, ENSD), model status, the demo-model banner."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import gradio as gr

from sdui.models.errors import ModelError, ModelNotFound
from sdui.models.extras import VAE_AUTOMATIC, VAE_NONE
from sdui.models.tiny import DEMO_NAME
from sdui.options import OptionError
from sdui.params import RNG_SOURCES, SEED_MAX
from sdui.ui.context import UIContext

DEMO_BANNER = (
    "⚠️ **Only the built-in demo model is installed.** Its weights are random, so it makes noise-like "
    "images. To make real pictures, put a Stable Diffusion checkpoint (`.safetensors`, or a diffusers "
    "folder) into `{ckpt_dir}` and press 🔄 next to the checkpoint list."
)


# The bar's widgets and the A1111 options they show. As A1111's quick settings, a choice made in the bar is kept
# in config.json for the next start.
OPTIONS = {"checkpoint": "sd_model_checkpoint", "vae": "sd_vae", "clip_skip": "CLIP_stop_at_last_layers",
           "randn_source": "randn_source", "eta_noise_seed_delta": "eta_noise_seed_delta",
           "use_old_scheduling": "use_old_scheduling"}


@dataclass
class TopBar:
    checkpoint: gr.Dropdown
    refresh: gr.Button
    vae: gr.Dropdown
    refresh_vae: gr.Button
    status: gr.Markdown
    banner: gr.Markdown
    clip_skip: gr.Slider
    randn_source: gr.Dropdown
    eta_noise_seed_delta: gr.Number
    use_old_scheduling: gr.State  # a Settings-tab option every job reads (no widget here), set by a pasted infotext

    @property
    def fields(self) -> dict[str, gr.components.Component]:
        """The GenerationParams fields the bar sets for every tab's Generate (read only then)."""
        return {"checkpoint": self.checkpoint, "vae": self.vae, "clip_skip": self.clip_skip,
                "randn_source": self.randn_source, "eta_noise_seed_delta": self.eta_noise_seed_delta,
                "use_old_scheduling": self.use_old_scheduling}


def build(ctx: UIContext) -> TopBar:
    """Lay out the bar (call at the top of the Blocks)."""
    titles = _titles(ctx)
    # Values from the options store (config.json); the Settings tab re-reads them at each page load.
    with gr.Row(equal_height=True):
        checkpoint = gr.Dropdown(titles, value=_current(ctx, titles), label="Stable Diffusion checkpoint",
                                 elem_id="checkpoint", scale=4)
        refresh = gr.Button("🔄", elem_id="refresh_checkpoints", min_width=40, scale=0)
        vae = gr.Dropdown(vae_choices(ctx.manager.extras.vaes.list()), value=vae_value(ctx),
                          label="SD VAE", elem_id="sd_vae", scale=2)
        refresh_vae = gr.Button("🔄", elem_id="refresh_vae", min_width=40, scale=0)
        clip_skip = gr.Slider(1, 12, value=_option(ctx, "CLIP_stop_at_last_layers", 1), step=1,
                              label="Clip skip", elem_id="clip_skip", scale=2, min_width=140)
        randn_source = gr.Dropdown(list(RNG_SOURCES), value=_option(ctx, "randn_source", "CPU"),
                                   label="Random number source",
                                   info="GPU: NVIDIA's numbers; CPU: the same on any machine", elem_id="randn_source",
                                   scale=2, min_width=170)
        eta_noise_seed_delta = gr.Number(_option(ctx, "eta_noise_seed_delta", 0), label="ENSD", precision=0,
                                         minimum=0, maximum=SEED_MAX, elem_id="eta_noise_seed_delta", scale=1,
                                         min_width=70)
        status = gr.Markdown("", elem_id="model_status")
    banner = gr.Markdown(banner_text(ctx), visible=only_demo(ctx), elem_id="demo_banner")
    return TopBar(checkpoint=checkpoint, refresh=refresh, vae=vae, refresh_vae=refresh_vae, status=status,
                  banner=banner, clip_skip=clip_skip, randn_source=randn_source,
                  eta_noise_seed_delta=eta_noise_seed_delta,
                  use_old_scheduling=gr.State(_option(ctx, "use_old_scheduling", False)))


def bind(ctx: UIContext, bar: TopBar) -> None:
    """Refresh re-scans the models (or VAE) folder; choosing a checkpoint says it loads with the next job."""
    def refresh(current: str | None):
        ctx.catalog.refresh()
        titles = _titles(ctx)
        return (checkpoint_update(ctx, current), gr.Markdown(banner_text(ctx), visible=only_demo(ctx)),
                f"Found {len(titles)} checkpoint(s)")

    def refresh_vae(current: str | None):
        choices = vae_choices(ctx.manager.extras.vaes.refresh())
        return (gr.Dropdown(choices=choices, value=current if current in choices else VAE_AUTOMATIC),
                f"Found {len(choices) - 2} VAE(s) in `{ctx.settings.vae_dir}`")

    bar.refresh.click(refresh, bar.checkpoint, [bar.checkpoint, bar.banner, bar.status], queue=False,
                      api_visibility="private")

    def choose_checkpoint(title: str | None) -> str:
        problem = keep_option(ctx, OPTIONS["checkpoint"], title)
        return status_text(title) + (f" (not kept for the next start: {problem})" if problem else "")

    bar.checkpoint.input(choose_checkpoint, bar.checkpoint, bar.status, queue=False, api_visibility="private")
    for name in ("vae", "clip_skip", "randn_source", "eta_noise_seed_delta"):
        def keep(value, option: str = OPTIONS[name]):
            problem = keep_option(ctx, option, value)
            return f"Not kept for the next start: {problem}" if problem else gr.skip()

        getattr(bar, name).input(keep, getattr(bar, name), bar.status, queue=False, api_visibility="private",
                                 trigger_mode="always_last")
    bar.refresh_vae.click(refresh_vae, bar.vae, [bar.vae, bar.status], queue=False, api_visibility="private")


def vae_choices(files: Iterable) -> list[str]:
    """"Automatic", "None", then each VAE by its file name (A1111's names; a repeated file name by its path)."""
    return [VAE_AUTOMATIC, VAE_NONE, *(name for name in _vae_names(files).values()
                                       if name not in (VAE_AUTOMATIC, VAE_NONE))]


def vae_choice(ctx: UIContext, name: str) -> str | None:
    """The dropdown choice for a VAE an infotext names (`VAE: name`), or None when it is not installed."""
    folder = ctx.manager.extras.vaes
    file = folder.find(name)
    return None if file is None else _vae_names(folder.list()).get(file.rel)


def _vae_names(files: Iterable) -> dict[str, str]:
    """rel path -> the name the dropdown shows."""
    files = list(files)
    counts = Counter(PurePosixPath(f.rel).name for f in files)
    return {f.rel: PurePosixPath(f.rel).name if counts[PurePosixPath(f.rel).name] == 1 else f.rel for f in files}


def checkpoint_update(ctx: UIContext, current: str | None) -> gr.Dropdown:
    """The checkpoint dropdown with the catalog's titles, still showing `current` when it is there."""
    titles = _titles(ctx)
    try:
        value = ctx.catalog.find(current).title if current else None
    except (ModelNotFound, ValueError):
        value = None
    return gr.Dropdown(choices=titles, value=value if value in titles else _current(ctx, titles))


def only_demo(ctx: UIContext) -> bool:
    """True when the demo model is the only checkpoint there is."""
    names = {info.name for info in ctx.catalog.list()}
    return names <= {DEMO_NAME}


def banner_text(ctx: UIContext) -> str:
    return DEMO_BANNER.format(ckpt_dir=ctx.settings.ckpt_dir)


def status_text(title: str | None) -> str:
    return f"`{title}` loads when the next job starts…" if title else ""


def _titles(ctx: UIContext) -> list[str]:
    return [info.title for info in ctx.catalog.list()]


def keep_option(ctx: UIContext, name: str, value) -> str | None:
    """Store a choice made in the bar as option `name` (config.json); the reason when it could not be kept."""
    options = getattr(ctx, "options", None)  # test doubles of UIContext may lack it
    if options is None or value in (None, ""):
        return None
    if isinstance(value, float) and value.is_integer():  # sliders and number boxes send floats
        value = int(value)
    try:
        options.update({name: value})
    except (OptionError, OSError) as e:
        return str(e)
    return None


def _option(ctx: UIContext, name: str, fallback):
    options = getattr(ctx, "options", None)  # test doubles of UIContext may lack it
    return options.get(name) if options is not None else fallback


def checkpoint_value(ctx: UIContext) -> str | None:
    """The checkpoint the dropdown starts on: the stored sd_model_checkpoint when installed, else the current one."""
    return _current(ctx, _titles(ctx))


def vae_value(ctx: UIContext) -> str:
    """The VAE dropdown's choice for the stored sd_vae ("Automatic" when that VAE is gone)."""
    name = _option(ctx, "sd_vae", VAE_AUTOMATIC)
    return name if name in (VAE_AUTOMATIC, VAE_NONE) else vae_choice(ctx, name) or VAE_AUTOMATIC


def _current(ctx: UIContext, titles: list[str]) -> str | None:
    """The stored sd_model_checkpoint when it is installed, else the manager's current model."""
    stored = _option(ctx, "sd_model_checkpoint", "")
    if stored:
        try:
            title = ctx.catalog.find(stored).title
        except (ModelNotFound, ValueError):
            title = None
        if title in titles:
            return title
    try:
        return ctx.manager.info(None).title
    except ModelError:
        return titles[0] if titles else None
