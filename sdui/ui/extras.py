"""The Extras tab (A1111's): upscale one picture, several uploads or a folder on the server with upscaler 1 and 2.

The results land in outputs/extras-images/ with the source's parameters kept. Batch from Directory reads the
server's folders, so it is off whenever strangers can reach the page (--share, --listen).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sdui.engine.postprocess import SCALE_MAX, SIDE_MAX, ExtrasImage, ExtrasParams, ScaleMode, images_from_folder
from sdui.jobs import FINISHED, Job, JobState
from sdui.models.errors import ModelError
from sdui.outputs.save import EXTRAS_FOLDER
from sdui.settings import Settings
from sdui.ui import results as results_ui
from sdui.ui.context import DEVICE_CONCURRENCY_ID, UIContext
from sdui.ui.results import Results, gallery_items, progress_html, warnings_html
from sdui.ui.run import POLL_SECONDS, interrupt_own

TAB = "extras"
SINGLE, BATCH, FOLDER = 0, 1, 2  # A1111's extras_mode: which input tab is selected
INPUT_TABS = {SINGLE: ("Single Image", "extras_single_tab"), BATCH: ("Batch Process", "extras_batch_process_tab"),
              FOLDER: ("Batch from Directory", "extras_batch_directory_tab")}
SCALE_TABS = {ScaleMode.SCALE_BY: ("Scale by", "extras_scale_by_tab"),
              ScaleMode.SCALE_TO: ("Scale to", "extras_scale_to_tab")}
FOLDER_REFUSED = (
    "Batch from Directory is off: this server can be reached from other machines (--share or --listen), and the "
    "folder box would let anyone who opens the page read pictures from any folder of this server. Upload the "
    "pictures under Batch Process instead, or start sdui without --share and --listen to use it.")
FOLDER_NOTE = "Reads every picture of a folder **on this server** (not its subfolders)."


@dataclass
class ExtrasTab:
    image: gr.Image
    batch: gr.File
    input_dir: gr.Textbox
    show_results: gr.Checkbox
    input_tabs: gr.Tabs
    input_mode: gr.State  # SINGLE, BATCH or FOLDER: follows the selected input tab
    input_tab: dict[int, gr.Tab]
    scale_mode: gr.State  # ScaleMode: follows the selected Scale by / Scale to tab
    scale_tab: dict[int, gr.Tab]
    fields: dict[str, gr.components.Component]  # ExtrasParams fields by name
    refresh: gr.Button
    generate: gr.Button
    interrupt: gr.Button
    results: Results


def folder_refusal(settings: Settings) -> str | None:
    """Why Batch from Directory is off, or None when only this machine can reach the page."""
    return FOLDER_REFUSED if settings.share or settings.listen else None


def build(ctx: UIContext) -> ExtrasTab:
    """Lay out the tab (call inside gr.Tabs)."""
    refusal = folder_refusal(ctx.settings)
    names = ctx.manager.upscalers.names()
    with gr.Tab("Extras", id=TAB):
        with gr.Row(equal_height=False):
            with gr.Column():
                tabs: dict[int, gr.Tab] = {}
                with gr.Tabs(selected=INPUT_TABS[SINGLE][1]) as input_tabs:
                    with gr.Tab(INPUT_TABS[SINGLE][0], id=INPUT_TABS[SINGLE][1]) as tabs[SINGLE]:
                        # filepath + no image_mode: the file is read as uploaded, its parameters chunk intact.
                        image = gr.Image(label="Source", type="filepath", image_mode=None,
                                         sources=["upload", "clipboard"], height=360, elem_id="extras_image")
                    with gr.Tab(INPUT_TABS[BATCH][0], id=INPUT_TABS[BATCH][1]) as tabs[BATCH]:
                        batch = gr.File(label="Batch Process", file_count="multiple", file_types=["image"],
                                        elem_id="extras_image_batch")
                    with gr.Tab(INPUT_TABS[FOLDER][0], id=INPUT_TABS[FOLDER][1]) as tabs[FOLDER]:
                        input_dir = gr.Textbox(label="Input directory", interactive=refusal is None,
                                               placeholder="A folder on this server, e.g. /home/me/pictures",
                                               elem_id="extras_batch_input_dir")
                        show_results = gr.Checkbox(True, label="Show result images", interactive=refusal is None,
                                                   elem_id="extras_show_extras_results")
                        gr.Markdown(f"**{refusal}**" if refusal else FOLDER_NOTE, elem_id="extras_batch_dir_note")
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
                    interrupt = gr.Button("Interrupt", variant="stop", elem_id="extras_interrupt")
                fields, scale_tabs, refresh = _upscale_controls(names)
            with gr.Column():
                results = results_ui.build(TAB, ctx.settings.outputs_dir / EXTRAS_FOLDER,
                                           send_targets=results_ui.PICTURE_TARGETS, info_label="Postprocessing")
        # Inside the tab: a component left between two tabs of gr.Tabs makes Gradio draw a tab button twice.
        input_mode, scale_mode = gr.State(SINGLE), gr.State(int(ScaleMode.SCALE_BY))
    return ExtrasTab(image=image, batch=batch, input_dir=input_dir, show_results=show_results, input_tabs=input_tabs,
                     input_mode=input_mode, input_tab=tabs, scale_mode=scale_mode,
                     scale_tab=scale_tabs, fields=fields, refresh=refresh, generate=generate, interrupt=interrupt,
                     results=results)


def _upscale_controls(names: list[str]) -> tuple[dict[str, Any], dict[int, gr.Tab], gr.Button]:
    """A1111's Upscale section: Scale by / Scale to, Upscaler 1, Upscaler 2 and its visibility."""
    tabs: dict[int, gr.Tab] = {}
    with gr.Tabs(elem_id="extras_resize_mode"):
        with gr.Tab(SCALE_TABS[ScaleMode.SCALE_BY][0], id=SCALE_TABS[ScaleMode.SCALE_BY][1]) as tabs[0]:
            resize = gr.Slider(1.0, SCALE_MAX, value=4, step=0.05, label="Resize", elem_id="extras_upscaling_resize")
        with gr.Tab(SCALE_TABS[ScaleMode.SCALE_TO][0], id=SCALE_TABS[ScaleMode.SCALE_TO][1]) as tabs[1], gr.Row():
            width = gr.Slider(64, SIDE_MAX, value=512, step=8, label="Width", elem_id="extras_upscaling_resize_w")
            height = gr.Slider(64, SIDE_MAX, value=512, step=8, label="Height", elem_id="extras_upscaling_resize_h")
            crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
    with gr.Row():
        upscaler_1 = gr.Dropdown(names, value=names[0], label="Upscaler 1", elem_id="extras_upscaler_1", scale=4)
        refresh = gr.Button("🔄", elem_id="extras_refresh_upscalers", min_width=40, scale=0)
    with gr.Row():
        upscaler_2 = gr.Dropdown(names, value=names[0], label="Upscaler 2", elem_id="extras_upscaler_2")
        visibility = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility",
                               elem_id="extras_upscaler_2_visibility")
    fields = {"upscaling_resize": resize, "upscaling_resize_w": width, "upscaling_resize_h": height,
              "upscaling_crop": crop, "upscaler_1": upscaler_1, "upscaler_2": upscaler_2,
              "extras_upscaler_2_visibility": visibility}
    return fields, tabs, refresh


def bind(ctx: UIContext, tab: ExtrasTab) -> None:
    """Wire Generate (api_name "extras", in the device's one line), Interrupt, the tab choices and the refresh."""
    for mode, widget in tab.input_tab.items():
        widget.select(lambda mode=mode: mode, None, tab.input_mode, queue=False, api_visibility="private")
    for mode, widget in tab.scale_tab.items():
        widget.select(lambda mode=mode: mode, None, tab.scale_mode, queue=False, api_visibility="private")
    dropdowns = [tab.fields["upscaler_1"], tab.fields["upscaler_2"]]
    tab.refresh.click(lambda *chosen: _refreshed(ctx, chosen), dropdowns, dropdowns, queue=False,
                      api_visibility="private")
    results_ui.bind(tab.results)

    def run(request: gr.Request, **values: Any) -> Iterator[dict]:
        try:
            params, notes = to_params(ctx.settings, values)
        except ValueError as e:
            raise gr.Error(f"Cannot run Extras: {e}") from e
        for note in notes:
            gr.Warning(note)
        yield from follow(ctx, params, request.session_hash or "", tab.results,
                          show=values["show_results"] or values["input_mode"] != FOLDER)

    inputs = {"input_mode": tab.input_mode, "image": tab.image, "batch": tab.batch, "input_dir": tab.input_dir,
              "show_results": tab.show_results, "scale_mode": tab.scale_mode, **tab.fields}
    tab.generate.click(run, inputs_kwargs=inputs, outputs=tab.results.outputs, api_name="extras",
                       concurrency_id=DEVICE_CONCURRENCY_ID, concurrency_limit=1,
                       show_progress_on=[tab.results.gallery])

    def interrupt(job_id: str | None, request: gr.Request) -> None:
        interrupt_own(ctx, job_id, request.session_hash or "")

    tab.interrupt.click(interrupt, tab.results.job, None, queue=False, api_visibility="private")


def to_params(settings: Settings, values: dict[str, Any]) -> tuple[ExtrasParams, list[str]]:
    """Widget values by name -> ExtrasParams (validated), and notes on folder files that were skipped."""
    sources, notes = _sources(settings, values)
    params = ExtrasParams(
        images=tuple(sources), resize_mode=int(values.get("scale_mode") or 0),
        upscaling_resize=values["upscaling_resize"], upscaling_resize_w=_whole(values["upscaling_resize_w"]),
        upscaling_resize_h=_whole(values["upscaling_resize_h"]), upscaling_crop=bool(values["upscaling_crop"]),
        upscaler_1=values["upscaler_1"] or "None", upscaler_2=values["upscaler_2"] or "None",
        extras_upscaler_2_visibility=values["extras_upscaler_2_visibility"])
    params.validate()
    return params, notes


def _sources(settings: Settings, values: dict[str, Any]) -> tuple[list[ExtrasImage], list[str]]:
    mode = values.get("input_mode") or SINGLE
    if mode == SINGLE:
        if not values.get("image"):
            raise ValueError("drop a picture into Single Image first (or pick a batch tab)")
        return [ExtrasImage.from_file(values["image"])], []
    if mode == BATCH:
        paths = [Path(getattr(item, "name", item)) for item in values.get("batch") or []]
        if not paths:
            raise ValueError("add pictures to Batch Process first")
        return [ExtrasImage.from_file(path, name=path.stem) for path in paths], []
    refusal = folder_refusal(settings)
    if refusal:
        raise ValueError(refusal)
    folder = (values.get("input_dir") or "").strip()
    if not folder:
        raise ValueError("input_dir: type the folder to read in Input directory")
    images, notes = images_from_folder(folder)
    if not images:
        raise ValueError(f"input_dir: {folder} holds no pictures" + (f" ({'; '.join(notes)})" if notes else ""))
    return images, notes


def follow(ctx: UIContext, params: ExtrasParams, owner: str, results: Results, show: bool = True) -> Iterator[dict]:
    """Submit `params` for `owner` and yield widget updates until the job ends (a gr.Error if it fails)."""
    try:
        job = ctx.queue.submit(params, owner=owner)
    except ValueError as e:
        raise gr.Error(f"Cannot run Extras: {e}") from e
    yield {results.job: job.id, results.progress: progress_html(0, 0, "Queued…"), results.warnings: ""}
    try:
        while (p := job.progress()).state not in FINISHED:
            text = (f"Waiting in line: {p.queue_position} job(s) ahead" if p.state is JobState.QUEUED
                    else f"Picture {min(p.step + 1, p.total)} of {p.total}…")
            yield {results.progress: progress_html(p.step, p.total, text)}
            time.sleep(POLL_SECONDS)
    except GeneratorExit:  # the page went away: nobody will see this job, free the device
        job.interrupt()
        raise
    yield _finished(job, results, show)


def bind_send_to_extras(button: gr.Button, picture: Callable[..., str | None], inputs: list[Any], tabs: gr.Tabs,
                        tab: ExtrasTab, nothing: str) -> None:
    """A "Send to extras" button: the picture `picture(*inputs)` names goes into Single Image and Extras opens
    (`nothing` is the toast when there is no picture)."""
    def send(*values: Any) -> tuple:
        path = picture(*values)
        if path is None:
            raise gr.Error(nothing)
        return path, gr.Tabs(selected=INPUT_TABS[SINGLE][1]), SINGLE, gr.Tabs(selected=TAB)

    # Queued so its gr.Error shows a toast (Gradio 6 shows none for queue=False); no concurrency_id: runs at once.
    button.click(send, inputs, [tab.image, tab.input_tabs, tab.input_mode, tabs], api_visibility="private",
                 show_progress="hidden")


def _finished(job: Job, results: Results, show: bool) -> dict:
    try:
        result = job.wait()
    except ModelError as e:
        raise gr.Error(f"The upscaler could not be used: {e}. Pick another one, or check the file in the "
                       "upscaler folder.") from e
    except Exception as e:  # noqa: BLE001 - the one boundary where any job failure becomes a toast
        raise gr.Error(f"Extras failed: {e}") from e
    if job.save_error:
        gr.Warning(f"The pictures were not saved: {job.save_error}")
    paths = [str(p) for p in job.saved_paths]
    items = gallery_items(paths, result.images, result.parameters)
    done = len(result.images)
    text = f"Interrupted: {done} picture(s) done" if result.interrupted else f"Done: {done} picture(s)"
    return {results.progress: progress_html(0, 0, text) if result.interrupted else progress_html(1, 1, text),
            results.gallery: items if show else [], results.infotext: result.infotexts[0] if result.infotexts else "",
            results.warnings: warnings_html(result.warnings),
            results.data: {"paths": paths, "infotexts": list(result.infotexts), "seeds": [],
                           "warnings": list(result.warnings)},
            results.selected: 0, results.job: None}


def _refreshed(ctx: UIContext, chosen: tuple[str, ...]) -> list[gr.Dropdown]:
    ctx.manager.upscalers.refresh()
    names = ctx.manager.upscalers.names()
    return [gr.Dropdown(choices=names, value=value if value in names else names[0]) for value in chosen]


def _whole(value: Any) -> int:
    """A slider's number as a whole number of pixels (sliders send floats); left as is when it is not a number."""
    return round(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
