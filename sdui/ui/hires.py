"""txt2img's "Hires. fix" accordion (A1111's layout and defaults) and the line saying what size it will make."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sdui.engine import samplers
from sdui.engine.hires import LATENT_MODES
from sdui.params import HIRES_SCALE_MAX, HIRES_SIZE_MAX, STEPS_MAX, GenerationParams
from sdui.ui.context import UIContext

# A1111's "Use same ..." choices stand for "" in GenerationParams (the first pass's value).
SAME_CHECKPOINT, SAME_SAMPLER, SAME_SCHEDULE = "Use same checkpoint", "Use same sampler", "Use same scheduler"
DEFAULT_DENOISING = 0.7  # A1111's txt2img hires default (img2img's is 0.75)


def upscaler_choices(ctx: UIContext) -> list[str]:
    """A1111's hires upscaler list: the latent modes, then None, Lanczos, Nearest and every upscaler model."""
    return [*LATENT_MODES, *ctx.manager.upscalers.names()]


def checkpoint_choices(ctx: UIContext) -> list[tuple[str, str]]:
    return [(SAME_CHECKPOINT, ""), *((info.title, info.title) for info in ctx.catalog.list())]


def build(ctx: UIContext) -> dict[str, Any]:
    """The accordion's widgets by GenerationParams field name, and `hires_size` (the size line)."""
    with gr.Accordion("Hires. fix", open=False, elem_id="txt2img_hr"):
        enable = gr.Checkbox(False, label="Hires. fix", elem_id="txt2img_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(upscaler_choices(ctx), value="Latent", label="Upscaler",
                                   elem_id="txt2img_hr_upscaler")
            steps = gr.Slider(0, STEPS_MAX, value=0, step=1, label="Hires steps", elem_id="txt2img_hires_steps")
            denoising = gr.Slider(0.0, 1.0, value=DEFAULT_DENOISING, step=0.01, label="Denoising strength",
                                  elem_id="txt2img_denoising_strength")
        with gr.Row():
            scale = gr.Slider(1.0, HIRES_SCALE_MAX, value=2.0, step=0.05, label="Upscale by",
                              elem_id="txt2img_hr_scale")
            resize_x = gr.Slider(0, HIRES_SIZE_MAX, value=0, step=8, label="Resize width to",
                                 elem_id="txt2img_hr_resize_x")
            resize_y = gr.Slider(0, HIRES_SIZE_MAX, value=0, step=8, label="Resize height to",
                                 elem_id="txt2img_hr_resize_y")
        size = gr.Markdown(size_text(GenerationParams(enable_hr=True)), elem_id="txt2img_hr_final_resolution")
        with gr.Row():
            checkpoint = gr.Dropdown(checkpoint_choices(ctx), value="", label="Hires checkpoint",
                                     elem_id="txt2img_hr_checkpoint")
            sampler = gr.Dropdown([(SAME_SAMPLER, ""), *((n, n) for n in samplers.sampler_names())], value="",
                                  label="Hires sampling method", elem_id="txt2img_hr_sampler")
            schedule = gr.Dropdown([(SAME_SCHEDULE, ""), *((n, n) for n in samplers.schedule_names())], value="",
                                   label="Hires schedule type", elem_id="txt2img_hr_scheduler")
        prompt = gr.Textbox("", label="Hires prompt", lines=2, elem_id="txt2img_hr_prompt",
                            placeholder="Prompt for hires fix pass. Leave empty to use the same prompt.")
        negative = gr.Textbox("", label="Hires negative prompt", lines=2, elem_id="txt2img_hr_neg_prompt",
                              placeholder="Negative prompt for hires fix pass. Leave empty to use the same.")
    return {"enable_hr": enable, "hr_upscaler": upscaler, "hr_second_pass_steps": steps,
            "denoising_strength": denoising, "hr_scale": scale, "hr_resize_x": resize_x, "hr_resize_y": resize_y,
            "hr_checkpoint": checkpoint, "hr_sampler": sampler, "hr_schedule": schedule, "hr_prompt": prompt,
            "hr_negative_prompt": negative, "hires_size": size}


SIZE_INPUTS = ("width", "height", "hr_scale", "hr_resize_x", "hr_resize_y")


def size_text(params: GenerationParams) -> str:
    """A1111's "from 512x512 to 1024x1024" line, or why those sizes cannot be made."""
    try:
        size = params.replace(enable_hr=True).hires_size()
    except (ValueError, ZeroDivisionError):
        return "Set a width and height first"
    text = f"from {params.width}x{params.height} to {size.width}x{size.height}"
    if max(size.width, size.height) > HIRES_SIZE_MAX:
        text += f" (too large: each side at most {HIRES_SIZE_MAX})"
    return text


def bind(fields: dict[str, Any], size: gr.Markdown) -> None:
    """The size line follows the first-pass size and the hires sizes as they change."""
    inputs = [fields[name] for name in SIZE_INPUTS]

    def show(*values: Any) -> str:
        numbers = dict(zip(SIZE_INPUTS, values))
        try:
            params = GenerationParams(width=int(numbers["width"]), height=int(numbers["height"]),
                                      hr_scale=float(numbers["hr_scale"]), hr_resize_x=int(numbers["hr_resize_x"]),
                                      hr_resize_y=int(numbers["hr_resize_y"]))
        except (TypeError, ValueError):
            return "Set a width and height first"
        return size_text(params)

    gr.on([widget.change for widget in inputs], show, inputs, size, queue=False, api_visibility="private",
          show_progress="hidden")


def refresh(ctx: UIContext, upscaler: str | None, checkpoint: str | None):
    """New upscaler and checkpoint choices (after the folders changed), keeping what is chosen when still there."""
    ctx.manager.upscalers.refresh()
    upscalers = upscaler_choices(ctx)
    checkpoints = checkpoint_choices(ctx)
    return (gr.Dropdown(choices=upscalers, value=upscaler if upscaler in upscalers else "Latent"),
            gr.Dropdown(choices=checkpoints, value=checkpoint if checkpoint in dict(checkpoints).values() else ""))


def sent_updates(ctx: UIContext, fields: dict[str, Any], params: GenerationParams, updates: dict[Any, Any]) -> None:
    """A pasted infotext's hires upscaler and checkpoint with the choices installed now (outputs/paste.py has put
    what is installed into `params`, and said what was not)."""
    upscalers = upscaler_choices(ctx)
    updates[fields["hr_upscaler"]] = gr.Dropdown(choices=upscalers, value=params.hr_upscaler)
    checkpoints = checkpoint_choices(ctx)
    chosen = params.hr_checkpoint if params.hr_checkpoint in dict(checkpoints).values() else ""
    updates[fields["hr_checkpoint"]] = gr.Dropdown(choices=checkpoints, value=chosen)
