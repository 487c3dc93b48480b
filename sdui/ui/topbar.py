"""The top bar: checkpoint dropdown with refresh, model status, and the demo-model banner."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from sdui.models.errors import ModelError
from sdui.models.tiny import DEMO_NAME
from sdui.ui.context import UIContext

DEMO_BANNER = (
    "⚠️ **Only the built-in demo model is installed.** Its weights are random, so it makes noise-like "
    "images. To make real pictures, put a Stable Diffusion checkpoint (`.safetensors`, or a diffusers "
    "folder) into `{ckpt_dir}` and press 🔄 next to the checkpoint list."
)


@dataclass
class TopBar:
    checkpoint: gr.Dropdown
    refresh: gr.Button
    status: gr.Markdown
    banner: gr.Markdown


def build(ctx: UIContext) -> TopBar:
    """Lay out the bar (call at the top of the Blocks)."""
    titles = _titles(ctx)
    with gr.Row(equal_height=True):
        checkpoint = gr.Dropdown(titles, value=_current(ctx, titles), label="Stable Diffusion checkpoint",
                                 elem_id="checkpoint", scale=4)
        refresh = gr.Button("🔄", elem_id="refresh_checkpoints", min_width=40, scale=0)
        status = gr.Markdown("", elem_id="model_status")
    banner = gr.Markdown(banner_text(ctx), visible=only_demo(ctx), elem_id="demo_banner")
    return TopBar(checkpoint=checkpoint, refresh=refresh, status=status, banner=banner)


def bind(ctx: UIContext, bar: TopBar) -> None:
    """Refresh re-scans the models folder; choosing a checkpoint says it loads with the next job."""
    def refresh(current: str | None):
        ctx.catalog.refresh()
        titles = _titles(ctx)
        value = current if current in titles else _current(ctx, titles)
        return (gr.Dropdown(choices=titles, value=value), gr.Markdown(banner_text(ctx), visible=only_demo(ctx)),
                f"Found {len(titles)} checkpoint(s)")

    bar.refresh.click(refresh, bar.checkpoint, [bar.checkpoint, bar.banner, bar.status], queue=False,
                      api_visibility="private")
    bar.checkpoint.input(_status, bar.checkpoint, bar.status, queue=False, api_visibility="private")


def only_demo(ctx: UIContext) -> bool:
    """True when the demo model is the only checkpoint there is."""
    names = {info.name for info in ctx.catalog.list()}
    return names <= {DEMO_NAME}


def banner_text(ctx: UIContext) -> str:
    return DEMO_BANNER.format(ckpt_dir=ctx.settings.ckpt_dir)


def _status(title: str | None) -> str:
    return f"`{title}` loads when the next job starts…" if title else ""


def _titles(ctx: UIContext) -> list[str]:
    return [info.title for info in ctx.catalog.list()]


def _current(ctx: UIContext, titles: list[str]) -> str | None:
    try:
        return ctx.manager.info(None).title
    except ModelError:
        return titles[0] if titles else None
