"""Live mode: while a tab's Live box is ticked, each change of its settings regenerates, replacing the last try.

How the events are set up, and why:
- Debounce in the page: every input of the tab's Generate (prompt, sliders, dropdowns, the top bar's fields) has a
  browser-only `.change` listener (no server call) that restarts a 300 ms timer; when the settings rest, the timer
  clicks the tab's hidden `live_run` button. Gradio has no debounce of its own: `trigger_mode="always_last"` only
  holds the newest trigger until the running event ends, and a live event runs as long as its job, so it would wait
  for the old image instead of replacing it.
- `live_run` runs in its own concurrency line ("live", no limit), not in the device's line of limit 1: a live
  change never waits behind other users' Generate events, and it never holds that line either. The job queue does
  the ordering: the job is submitted with `save=False` and `replace="live:<tab>"`, which interrupts this user's
  running live job (it stops within one step) and puts the new one in place of a waiting one, so one user's live
  changes hold at most one running and one waiting job and nobody else moves back in the line. The superseded
  event then ends without touching the page (see `run.follow`). `cancels=` is not used: cancelling a Gradio event
  does not reliably stop the sync generator that follows the job, nor the job itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from sdui.ui.panel import Panel
from sdui.ui.topbar import TopBar

LIVE_CONCURRENCY_ID = "live"
DEBOUNCE_MS = 300
LIVE_INFO = ("Regenerate ~0.3 s after each change, without saving (💾 Save keeps the image). "
             "Best with few steps (4-8) and a fixed seed.")
# Words in a checkpoint or LoRA name that mean a few-step model, and the settings it wants (as its authors say).
FEW_STEP_HINTS = {
    "lcm": "LCM: sampler LCM, 4-8 steps, CFG 1-2",
    "turbo": "Turbo: sampler Euler a, 1-4 steps, CFG 1",
    "lightning": "Lightning: sampler Euler, schedule SGM Uniform, 2-8 steps, CFG 1-2",
}


def replace_key(tab: str) -> str:
    """The supersede key of `tab`'s live jobs (JobQueue.submit(replace=...))."""
    return f"live:{tab}"


def live_info(checkpoint: str | None, prompt: str | None) -> str:
    """The Live box's info: the base text, plus the few-step settings when the checkpoint or a `<lora:...>` in the
    prompt names an LCM/Turbo/Lightning model."""
    names = [(checkpoint or "").lower(), *(part.split(">")[0].lower() for part in (prompt or "").split("<lora:")[1:])]
    hints = [text for word, text in FEW_STEP_HINTS.items() if any(word in name for name in names)]
    return LIVE_INFO + ("" if not hints else " In use: " + "; ".join(hints) + ".")


def trigger_js(tab: str) -> str:
    """Browser-only listener: (re)start the tab's debounce timer when Live is on; the timer clicks `live_run`."""
    return f"""
(live) => {{
  const timers = (window.sduiLiveTimers = window.sduiLiveTimers || {{}});
  clearTimeout(timers["{tab}"]);
  if (live) {{
    timers["{tab}"] = setTimeout(() => document.getElementById("{tab}_live_run")?.click(), {DEBOUNCE_MS});
  }}
  return [];
}}
"""


def bind(panel: Panel, bar: TopBar, handler: Callable[..., Iterator[dict]],
         inputs_kwargs: dict[str, gr.components.Component]) -> None:
    """Wire the tab's Live box: each change of an input of `handler` (Generate's inputs) → after the pause,
    `handler` in the live line. Also keeps the Live box's hint in step with the checkpoint."""
    results = panel.results
    assert results.live is not None and results.live_run is not None
    changing = [widget for widget in inputs_kwargs.values() if not isinstance(widget, gr.State)]
    gr.on([widget.change for widget in (*changing, results.live)], None, inputs=[results.live],
          js=trigger_js(panel.tab))
    results.live_run.click(handler, inputs_kwargs=inputs_kwargs, outputs=results.outputs,
                           concurrency_id=LIVE_CONCURRENCY_ID, concurrency_limit=None, trigger_mode="multiple",
                           show_progress="hidden", api_visibility="private")

    def hint(checkpoint: str | None, prompt: str | None) -> Any:
        return gr.Checkbox(info=live_info(checkpoint, prompt))

    gr.on([results.live.input, bar.checkpoint.change], hint, [bar.checkpoint, panel.fields["prompt"]],
          results.live, queue=False, api_visibility="private", show_progress="hidden")
