"""The Settings tab: the options store's options grouped by A1111's sections, "Apply settings" (writes config.json
and says what changed or why a value was refused) and what was wrong in config.json when sdui started.

The options themselves (names, defaults, checks, the file) live in sdui/options.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sdui.options import SECTIONS, Option, OptionError, Options
from sdui.ui import topbar, ui_config
from sdui.ui.context import UIContext

TAB = "settings"
NUMBER_SLIDER_SPAN = 1000  # wider ranges (seeds) get a number box instead of a slider
# Top-bar widget -> the option it shows.
BAR_OPTIONS = topbar.OPTIONS  # the top bar's widgets and the options they show


@dataclass
class SettingsTab:
    widgets: dict[str, gr.components.Component]  # option name -> its input
    apply: gr.Button
    result: gr.Markdown
    messages: gr.Markdown
    problems: list[str]  # what the messages box lists: config.json's, then ui-config.json's
    save_defaults: gr.Button
    defaults_result: gr.Markdown


def build(ctx: UIContext) -> SettingsTab:
    """Lay out the tab (inside the page's gr.Tabs, after PNG info)."""
    options = ctx.options
    widgets: dict[str, gr.components.Component] = {}
    with gr.Tab("Settings", id=TAB):
        messages = gr.Markdown(messages_text(options.messages), visible=bool(options.messages),
                               elem_id="settings_messages")
        with gr.Row():
            apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit", scale=0, min_width=160)
            result = gr.Markdown("", elem_id="settings_result")
        gr.Markdown(f"Kept in `{options.path}`. Options a command-line flag sets are shown but fixed for this run.")
        for section, title in SECTIONS.items():
            members = [o for o in options.table.values() if o.section == section]
            with gr.Accordion(title, open=True, elem_id=f"settings_section_{section}"):
                for option in members:
                    widgets[option.name] = _widget(ctx, option)
        with gr.Accordion("Defaults", open=True, elem_id="settings_section_defaults"):
            gr.Markdown("Keep what the tabs show now (sliders, dropdowns, prompts, ...) as their starting values "
                        "in `ui-config.json`; they apply at the next start.")
            with gr.Row():
                save_defaults = gr.Button("Save current UI values as defaults", elem_id="settings_save_ui_defaults",
                                          scale=0, min_width=260)
                defaults_result = gr.Markdown("", elem_id="settings_defaults_result")
    return SettingsTab(widgets=widgets, apply=apply, result=result, messages=messages,
                       problems=list(options.messages), save_defaults=save_defaults, defaults_result=defaults_result)


def bind(ctx: UIContext, tab: SettingsTab, bar: topbar.TopBar, demo: gr.Blocks) -> None:
    """Apply settings: save what changed, then show the result and the new values in the top bar. Each page load
    shows the store's values now (changed meanwhile through the API or another browser) in the tab and the bar."""
    names = list(tab.widgets)
    bar_widgets = [getattr(bar, widget) for widget in BAR_OPTIONS]

    def load():
        return (*(shown_value(ctx, name) for name in names), *(shown_value(ctx, name) for name in BAR_OPTIONS.values()))

    def apply(*values: Any):
        changed, refused = apply_changes(ctx, dict(zip(names, values)))
        return (result_text(ctx.options, changed, refused),
                *(shown_value(ctx, name) for name in BAR_OPTIONS.values()))

    tab.apply.click(apply, list(tab.widgets.values()), [tab.result, *bar_widgets], api_visibility="private",
                    show_progress="hidden")
    demo.load(load, None, [*tab.widgets.values(), *bar_widgets], queue=False, api_visibility="private",
              show_progress="hidden")


def bind_defaults(tab: SettingsTab, widgets: dict[str, gr.components.Component], path: Path) -> None:
    """"Save current UI values as defaults": the `widgets` ui-config.json covers (call once they all exist)."""
    def save(*values: Any) -> str:
        try:
            changed, refused = ui_config.save_values(path, widgets, list(values))
        except OSError as e:
            raise gr.Error(f"Could not write {path}: {e}") from None
        text = f"Saved {changed} default(s) in `{path.name}`; they apply at the next start." if changed else (
            "Nothing changed.")
        return text + "".join(f"\n- not saved: {message}" for message in refused)

    tab.save_defaults.click(save, list(widgets.values()), tab.defaults_result, api_visibility="private",
                            show_progress="hidden")


def apply_changes(ctx: UIContext, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Save the values that differ from what the tab showed; returns (changed, refused: name -> reason).

    Each value is checked on its own, so one bad value does not keep the others from being saved.
    """
    options = ctx.options
    wanted = {name: value for name, value in values.items() if value != shown_value(ctx, name)}
    refused: dict[str, str] = {}
    for name, value in wanted.items():
        try:
            options.check({name: value})
        except OptionError as e:
            refused[name] = str(e)
    try:
        changed = options.update({n: v for n, v in wanted.items() if n not in refused})
    except OSError as e:
        raise gr.Error(f"Could not write {options.path}: {e}") from None
    return changed, refused


def shown_value(ctx: UIContext, name: str) -> Any:
    """What the tab (and the top bar) shows for option `name`: the checkpoint and VAE as their dropdowns do."""
    if name == "sd_model_checkpoint":
        return topbar.checkpoint_value(ctx)
    if name == "sd_vae":
        return topbar.vae_value(ctx)
    return ctx.options.get(name)


def result_text(options: Options, changed: dict[str, Any], refused: dict[str, str]) -> str:
    """Markdown: what was saved (marking what needs a restart) and each refused value with its reason."""
    lines = []
    for name, value in changed.items():
        restart = " (requires restart)" if options.table[name].restart else ""
        lines.append(f"- `{name}` = `{value!r}`{restart}")
    text = f"Saved {len(changed)} setting(s):\n" + "\n".join(lines) if changed else "Nothing changed."
    if refused:
        text += "\n\nNot saved:\n" + "\n".join(f"- `{name}`: {reason}" for name, reason in refused.items())
    return text


def show_messages(tab: SettingsTab, more: list[str]) -> None:
    """Add `more` problems (ui-config.json's) to the tab's list while the page is built, and print them."""
    for message in more:
        print(f"sdui: {message}", file=sys.stderr, flush=True)
    if more:
        tab.problems.extend(more)
        tab.messages.value = messages_text(tab.problems)
        tab.messages.visible = True


def messages_text(messages: list[str]) -> str:
    return "**Problems in the settings file (their defaults are used):**\n" + "\n".join(f"- {m}" for m in messages)


def _widget(ctx: UIContext, option: Option) -> gr.components.Component:
    """The input for one option, showing the store's value."""
    options = ctx.options
    flag = options.fixed_by(option.name)
    notes = [option.info] if option.info else []
    if option.restart:
        notes.append("requires restart")
    if flag:
        notes.append(f"fixed by the command-line flag {flag}")
    common = {"label": option.label, "info": "; ".join(notes) or None, "interactive": not flag,
              "elem_id": f"setting_{option.name}"}

    value = shown_value(ctx, option.name)
    if option.name == "sd_model_checkpoint":
        return gr.Dropdown([info.title for info in ctx.catalog.list()], value=value, **common)
    if option.name == "sd_vae":
        return gr.Dropdown(topbar.vae_choices(ctx.manager.extras.vaes.list()), value=value, **common)
    if option.kind is bool:
        return gr.Checkbox(value=value, **common)
    if option.choices:
        return gr.Radio(list(option.choices), value=value, **common)
    if option.kind in (int, float):
        if option.maximum - option.minimum <= NUMBER_SLIDER_SPAN:
            return gr.Slider(option.minimum, option.maximum, value=value, step=option.step, **common)
        return gr.Number(value, minimum=option.minimum, maximum=option.maximum,
                         precision=0 if option.kind is int else None, **common)
    return gr.Textbox(value=value, **common)
