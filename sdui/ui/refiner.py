"""The generation tabs' "Refiner" accordion (A1111's layout and defaults) and what pasting an infotext puts in it."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sdui.params import HIRES_REFINER_PASSES, GenerationParams
from sdui.ui.context import UIContext

NO_REFINER = "None"  # the dropdown's label for "" (no refiner)
ENABLE = "enable_refiner"  # the accordion's checkbox: a widget of the tab, not a GenerationParams field


def checkpoint_choices(ctx: UIContext) -> list[tuple[str, str]]:
    return [(NO_REFINER, ""), *((info.title, info.title) for info in ctx.catalog.list())]


def build(ctx: UIContext, tab: str, hires: bool = False) -> dict[str, Any]:
    """The accordion's widgets by GenerationParams field name, and its checkbox as `enable_refiner`.

    A1111 keeps "switch by sampling steps" and the hires pass among its settings; sdui has no settings tab, so
    they sit here (they are in the infotext and the API too)."""
    defaults = GenerationParams()
    with gr.Accordion("Refiner", open=False, elem_id=f"{tab}_refiner"):
        enable = gr.Checkbox(False, label="Refiner", elem_id=f"{tab}_enable_refiner")
        with gr.Row():
            checkpoint = gr.Dropdown(checkpoint_choices(ctx), value="", label="Checkpoint",
                                     info="switch to another model in the middle of generation",
                                     elem_id=f"{tab}_refiner_checkpoint")
            switch_at = gr.Slider(0.01, 1.0, value=defaults.refiner_switch_at, step=0.01, label="Switch at",
                                  info="fraction of sampling steps when the switch to refiner model should happen; "
                                       "1=never, 0.5=switch in the middle of generation",
                                  elem_id=f"{tab}_refiner_switch_at")
        by_steps = gr.Checkbox(defaults.refiner_switch_by_steps, label="Switch by sampling steps",
                               info="count the steps done instead of the noise left (A1111's "
                                    "refiner_switch_by_sample_steps)", elem_id=f"{tab}_refiner_switch_by_steps")
        widgets = {ENABLE: enable, "refiner_checkpoint": checkpoint, "refiner_switch_at": switch_at,
                   "refiner_switch_by_steps": by_steps}
        if hires:
            widgets["hires_refiner_pass"] = gr.Radio(list(HIRES_REFINER_PASSES), value=defaults.hires_refiner_pass,
                                                     label="With hires fix, switch in",
                                                     elem_id=f"{tab}_hires_refiner_pass")
    return widgets


def fields_for_params(fields: dict[str, Any]) -> dict[str, Any]:
    """Widget values by name with the accordion's checkbox applied: unticked means no refiner, as in A1111."""
    fields = dict(fields)
    if not fields.pop(ENABLE, False):
        fields["refiner_checkpoint"] = ""
    return fields


def bind(ctx: UIContext, panel, refresh: gr.Button) -> None:
    """The top bar's refresh also refreshes the checkpoint choices (keeping the chosen one when still there)."""
    dropdown = panel.fields["refiner_checkpoint"]

    def update(chosen: str | None):
        choices = checkpoint_choices(ctx)
        return gr.Dropdown(choices=choices, value=chosen if chosen in dict(choices).values() else "")

    refresh.click(update, dropdown, dropdown, queue=False, api_visibility="private")


def paste_outputs(panel) -> list[gr.components.Component]:
    """The tab widgets besides its fields that pasting an infotext sets (the accordion's checkbox)."""
    return [panel.extras[ENABLE]] if ENABLE in panel.extras else []


def sent_updates(ctx: UIContext, panel, params: GenerationParams, updates: dict[Any, Any]) -> None:
    """A pasted infotext's refiner (outputs/paste.py has put the installed one, or "", into `params`)."""
    choices = checkpoint_choices(ctx)
    chosen = params.refiner_checkpoint if params.refiner_checkpoint in dict(choices).values() else ""
    updates[panel.fields["refiner_checkpoint"]] = gr.Dropdown(choices=choices, value=chosen)
    updates[panel.extras[ENABLE]] = bool(chosen)
