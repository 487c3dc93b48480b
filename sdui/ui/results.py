"""The results side of a tab: progress bar, live preview, gallery of saved files, infotext, warnings, send buttons,
and on the generation tabs 📂 / 💾 Save (handlers in `saving.py`) and the Live toggle (wired in `live.py`)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

SEND_TARGETS = ("img2img", "inpaint", "outpaint", "extras")  # the generation tabs' results
PICTURE_TARGETS = ("img2img", "inpaint", "outpaint")  # the tabs that take a picture (and so Extras' results)
# The tabs whose jobs `run.follow` follows: it records the shown job, which Save keeps.
FILE_BUTTON_TABS = ("txt2img", "img2img", "inpaint", "outpaint")
LIVE_TABS = ("txt2img", "img2img")
PROGRESS_CSS = ".sdui-progress-bar { width: 100%; height: 14px; accent-color: #f97316; }"
WARNINGS_CSS = """
.sdui-warnings { border: 1px solid #f59e0b; border-radius: 6px; padding: 6px 10px;
  background: rgba(245, 158, 11, 0.1); }
.sdui-warnings ul { margin: 0; padding-left: 1.2em; }
"""


@dataclass
class Results:
    progress: gr.HTML
    preview: gr.Image
    gallery: gr.Gallery
    infotext: gr.Textbox
    warnings: gr.HTML  # what the last job could not apply (Result.warnings); empty when all was applied
    data: gr.JSON  # {"paths", "infotexts", "seeds", "warnings"} of the last job: the API returns it, select reads it
    selected: gr.State  # index of the selected gallery image
    job: gr.State  # id of this session's last Job, so Interrupt reaches only it
    send: dict[str, gr.Button]
    # What PNG info's Regenerate could not apply from the infotext: the job it starts shows them with its own.
    pasted_warnings: gr.State
    shown: gr.State  # id of the Job whose images the gallery shows (what 💾 Save keeps)
    saved: gr.Markdown  # where 💾 Save put them; cleared when a new job finishes
    save: gr.Button | None = None  # 💾, on FILE_BUTTON_TABS
    open_folder: gr.Button | None = None  # 📂, on FILE_BUTTON_TABS
    live: gr.Checkbox | None = None  # on LIVE_TABS
    live_run: gr.Button | None = None  # hidden: the page script clicks it once the settings rest (see live.py)

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Everything a generate handler may update, in one fixed list."""
        return [self.progress, self.preview, self.gallery, self.infotext, self.data, self.warnings, self.selected,
                self.job, self.pasted_warnings, self.shown, self.saved]


def build(tab: str, outputs_dir: Path, send_targets: tuple[str, ...] = SEND_TARGETS,
          info_label: str = "Generation parameters") -> Results:
    """Create the results column of `tab` (call inside a Column), with a "Send to" button per target."""
    progress = gr.HTML("", elem_id=f"{tab}_progress", padding=False, css_template=PROGRESS_CSS)
    preview = gr.Image(label="Preview", type="pil", format="png", interactive=False, visible=False,
                       elem_id=f"{tab}_preview", height=256)
    gallery = gr.Gallery(label="Output", format="png", columns=2, height=480, interactive=False,
                         elem_id=f"{tab}_gallery", object_fit="contain")
    buttons = _file_buttons(tab) if tab in FILE_BUTTON_TABS else {}
    saved = gr.Markdown("", elem_id=f"{tab}_saved")
    infotext = gr.Textbox(label=info_label, lines=4, interactive=False, elem_id=f"{tab}_infotext")
    warnings = gr.HTML("", elem_id=f"{tab}_warnings", css_template=WARNINGS_CSS, js_on_load=None)
    data = gr.JSON(value=empty_data(), visible=False, label="Result data")
    with gr.Row():
        send = {target: gr.Button(f"Send to {target}", size="sm", elem_id=f"{tab}_send_to_{target}")
                for target in send_targets}
    gr.Markdown(f"Images are saved in `{outputs_dir}`", elem_id=f"{tab}_outputs_folder")
    return Results(progress=progress, preview=preview, gallery=gallery, infotext=infotext, warnings=warnings, data=data,
                   selected=gr.State(0), job=gr.State(None), send=send, pasted_warnings=gr.State([]),
                   shown=gr.State(None), saved=saved, **buttons)


def _file_buttons(tab: str) -> dict[str, Any]:
    """A1111's row under the gallery: 📂, 💾 Save, and (live tabs) the Live toggle with its hidden trigger."""
    from sdui.ui.live import LIVE_INFO

    with gr.Row(equal_height=True):
        open_folder = gr.Button("📂", elem_id=f"{tab}_open_folder", min_width=40, scale=0, size="sm")
        save = gr.Button("💾 Save", elem_id=f"{tab}_save", size="sm", scale=1)
        live = (gr.Checkbox(False, label="Live", info=LIVE_INFO, elem_id=f"{tab}_live", scale=3)
                if tab in LIVE_TABS else None)
    live_run = gr.Button("live", visible="hidden", elem_id=f"{tab}_live_run") if live is not None else None
    return {"open_folder": open_folder, "save": save, "live": live, "live_run": live_run}


def bind(results: Results) -> None:
    """Show the infotext of the image the user selects in the gallery."""
    results.gallery.select(_on_select, results.data, [results.infotext, results.selected], queue=False,
                           api_visibility="private")


def _on_select(data: dict | None, evt: gr.SelectData) -> tuple[str, int]:
    index = evt.index if isinstance(evt.index, int) else 0
    infotexts = (data or {}).get("infotexts") or []
    return (infotexts[index] if index < len(infotexts) else ""), index


def selected_seed(data: dict | None, selected: int | None) -> int:
    """The seed of the selected (else first) image of the last job, or -1 when there is none."""
    seed = _selected(data, "seeds", selected)
    return -1 if seed is None else int(seed)


def selected_path(data: dict | None, selected: int | None) -> str | None:
    """The saved file of the selected (else first) image of the last job."""
    return _selected(data, "paths", selected)


def _selected(data: dict | None, key: str, selected: int | None) -> Any:
    """data[key][selected], or its first item when `selected` is out of range; None when it is empty."""
    items = (data or {}).get(key) or []
    if not items:
        return None
    return items[selected if isinstance(selected, int) and 0 <= selected < len(items) else 0]


def gallery_items(paths: list[str], images: list, parameters: list[str]) -> list[Any]:
    """What a finished job's gallery shows: its saved files, or (saving off or failed) the images with their
    `parameters` chunk, so a download keeps it."""
    if paths:
        return list(paths)
    items = []
    for image, text in zip(images, parameters):
        if text:
            image.info["parameters"] = text
        items.append(image)
    return items


def progress_html(step: int, total: int, text: str) -> str:
    """A progress bar with `text` under it; `total` 0 shows the text alone (queued / loading)."""
    bar = (f'<progress class="sdui-progress-bar" max="{total}" value="{min(step, total)}"></progress>'
           if total > 0 else "")
    return f'<div class="sdui-progress">{bar}<div class="sdui-progress-text">{html.escape(text)}</div></div>'


def warnings_html(warnings: list[str]) -> str:
    """The list of what a job did not apply, each escaped; "" when there is nothing to say."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(text)}</li>" for text in warnings)
    return f'<div class="sdui-warnings"><strong>Warnings</strong><ul>{items}</ul></div>'


def empty_data() -> dict[str, Any]:
    return {"paths": [], "infotexts": [], "seeds": [], "warnings": []}

