"""Submit-and-follow: put a tab's GenerationParams on the job queue and stream its progress to the page (Generate,
and Live mode's changes: see live.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gradio as gr

from sdui.engine.generate import GenerationError
from sdui.jobs import FINISHED, Job, JobState
from sdui.models.errors import ModelError
from sdui.params import GenerationParams
from sdui.scripts.xyz import PlotParams
from sdui.ui.context import DEVICE_CONCURRENCY_ID, UIContext
from sdui.ui import live as live_ui
from sdui.ui import networks as networks_ui
from sdui.ui import panel as panel_ui
from sdui.ui import results as results_ui
from sdui.ui import saving as saving_ui
from sdui.ui.panel import Panel
from sdui.ui.results import Results, gallery_items, progress_html, warnings_html
from sdui.ui.topbar import TopBar

POLL_SECONDS = 0.2


def follow(ctx: UIContext, params: GenerationParams, owner: str, results: Results,
           carried: Sequence[str] = (), live: str | None = None) -> Iterator[dict]:
    """Submit `params` for `owner` and yield widget updates until the job ends (a gr.Error if it fails).

    `carried`: warnings from before the job (what a pasted infotext asked that was not applied), shown with its own.
    `live`: a Live mode job of that supersede key: not saved, no preview (the last image stays until the new one
    comes), and once a newer change supersedes it this stops without another update.
    """
    try:
        job = ctx.queue.submit(params, owner=owner, save=live is None, replace=live)
    except ValueError as e:
        if live:  # while the user is still moving things: say so in place, a toast per change is too much
            yield {results.progress: progress_html(0, 0, f"Live · cannot generate yet: {e}")}
            return
        raise gr.Error(f"Cannot generate: {e}") from e
    first = {results.job: job.id, results.progress: progress_html(0, 0, "Queued…"),
             results.warnings: warnings_html(list(carried)), results.pasted_warnings: []}
    yield first if live else {**first, results.preview: gr.update(value=None, visible=True)}
    shown = None
    try:
        while (p := job.progress()).state not in FINISHED and not job.superseded:
            text = _status_text(ctx, job, p) if live is None else _live_text(ctx, job, _status_text(ctx, job, p))
            update: dict[Any, Any] = {results.progress: progress_html(p.step, p.total, text)}
            # The job keeps the same preview object until the engine makes a new one: send each one once.
            if live is None and p.preview is not None and p.preview is not shown:
                update[results.preview] = p.preview
                shown = p.preview
            yield update
            _pause(job)
    except GeneratorExit:  # the page went away: nobody will see this job, free the device
        job.interrupt()
        raise
    if not job.superseded:  # a superseded job's newer change shows its own image
        yield _finished(job, results, carried, live=live is not None)


def _pause(job: Job) -> None:
    """Wait POLL_SECONDS between two updates, less when the job ends first (its image shows at once)."""
    try:
        job.wait(POLL_SECONDS)
    except Exception:  # noqa: BLE001 - it timed out, ended or failed: the loop sees which, _finished reports it
        pass


def interrupt_own(ctx: UIContext, job_id: str | None, owner: str) -> None:
    """Interrupt this session's jobs (the one it follows, and any it has queued); nobody else's."""
    jobs = ctx.queue.active(owner) if owner else []
    followed = ctx.queue.get(job_id) if job_id else None
    if followed is not None and followed.owner == owner and not followed.done:
        jobs.append(followed)
    for job in jobs:
        job.interrupt()


def bind_generate(ctx: UIContext, panel: Panel, handler: Callable[..., Iterator[dict]], api_name: str,
                  inputs_kwargs: dict[str, gr.components.Component]) -> None:
    """Wire Generate (one FIFO line for the device, shared by every tab) and Interrupt (runs at once)."""
    panel.generate.click(handler, inputs_kwargs=inputs_kwargs, outputs=panel.results.outputs, api_name=api_name,
                         concurrency_id=DEVICE_CONCURRENCY_ID, concurrency_limit=1,
                         show_progress_on=[panel.results.gallery])

    def interrupt(job_id: str | None, request: gr.Request) -> None:
        interrupt_own(ctx, job_id, request.session_hash or "")

    panel.interrupt.click(interrupt, panel.results.job, None, queue=False, api_visibility="private")


def raise_as_gr_error(error: Exception) -> None:
    """Turn a domain failure into the toast that tells the user what to do."""
    if isinstance(error, ModelError):
        raise gr.Error(f"The checkpoint could not be used: {error}. Pick another checkpoint in the top bar, "
                       "or check the file in the models folder.") from error
    if isinstance(error, GenerationError):
        raise gr.Error(f"Generation failed: {error}") from error
    raise gr.Error(f"Cannot generate: {error}") from error


def _finished(job: Job, results: Results, carried: Sequence[str] = (), live: bool = False) -> dict:
    try:
        result = job.wait()
    except Exception as e:  # noqa: BLE001 - the one boundary where any job failure becomes a toast
        raise_as_gr_error(e)
    if job.save_error:
        gr.Warning(f"The images were not saved: {job.save_error}")
    paths = [str(p) for p in job.saved_paths]
    items = gallery_items(paths, result.images, result.infotexts)
    done = len(result.images)
    text = (f"Interrupted: {done} image(s) made" if result.interrupted
            else f"Done: {done} image(s), seed {result.seeds[0] if result.seeds else '?'}")
    text = f"Live · {text} (not saved: 💾 Save keeps it)" if live else text
    return {results.progress: progress_html(1, 1, text) if not result.interrupted else progress_html(0, 0, text),
            results.preview: gr.update(value=None, visible=False), results.gallery: items,
            results.infotext: result.infotexts[0] if result.infotexts else "",
            results.warnings: warnings_html([*carried, *result.warnings]),
            results.data: {"paths": paths, "infotexts": list(result.infotexts), "seeds": list(result.seeds),
                           "warnings": [*carried, *result.warnings]},
            results.selected: 0, results.job: None, results.shown: job.id, results.saved: ""}


def _status_text(ctx: UIContext, job: Job, p: Any) -> str:
    if p.state is JobState.QUEUED:
        return f"Waiting in line: {p.queue_position} job(s) ahead"
    if p.step == 0:
        return p.textinfo or _loading_text(ctx, job)
    eta = f", ETA {p.eta_seconds:.0f}s" if p.eta_seconds is not None else ""
    return f"Step {p.step}/{p.total}{eta}"


def _live_text(ctx: UIContext, job: Job, status: str) -> str:
    """Live mode's progress line, with how many of this user's live changes wait (at most one: see live.py)."""
    waiting = sum(1 for j in ctx.queue.queued() if j.owner == job.owner and j.replace == job.replace)
    return f"Live · {status} · {waiting} waiting"


def _loading_text(ctx: UIContext, job: Job) -> str:
    wanted = job.params.checkpoint
    if wanted and not any(wanted in title for title in ctx.manager.loaded()):
        return f"Loading model {wanted}…"
    return "Starting…"


def bind_tab(ctx: UIContext, panel: Panel, bar: TopBar, api_name: str,
             to_params: Callable[[dict[str, Any]], GenerationParams], skip: tuple[str, ...] = ()) -> None:
    """Wire a tab's panel buttons, extra networks, results, and Generate → `to_params(widget values by name)` →
    job queue.

    Every panel field, extra widget and top bar field (checkpoint, VAE, clip skip, ...) is an input (and a named
    API parameter, except the gr.State ones) but those in `skip`.
    """
    panel_ui.bind(panel)
    results_ui.bind(panel.results)
    if panel.networks is not None:
        networks_ui.bind(ctx, panel.networks, bar)

    def handler(request: gr.Request, pasted_warnings: list[str] | None = None, **fields: Any) -> Iterator[dict]:
        try:
            params = to_params(fields)
        except ValueError as e:
            raise gr.Error(f"Cannot generate: {e}") from e
        yield from follow(ctx, params, request.session_hash or "", panel.results, pasted_warnings or [])

    extras = {name: widget for name, widget in panel.extras.items() if name not in skip}
    inputs = {**panel.fields, **extras, **bar.fields, "pasted_warnings": panel.results.pasted_warnings}
    bind_generate(ctx, panel, handler, api_name, inputs)
    if panel.results.save is not None:
        saving_ui.bind(ctx, panel.results, ctx.settings.outputs_dir)
    if panel.results.live is None:
        return
    key = live_ui.replace_key(panel.tab)

    def live_handler(request: gr.Request, pasted_warnings: list[str] | None = None, **fields: Any) -> Iterator[dict]:
        try:
            params = to_params(fields)
        except ValueError as e:  # as in follow: in place, not a toast
            yield {panel.results.progress: progress_html(0, 0, f"Live · cannot generate yet: {e}")}
            return
        if isinstance(params, PlotParams):  # Live follows the picture itself, never a whole X/Y/Z plot per change
            params = params.base
        yield from follow(ctx, params, request.session_hash or "", panel.results, pasted_warnings or [], live=key)

    live_ui.bind(panel, bar, live_handler, inputs)
