"""The tools around each prompt box: the Styles row (apply 📋, save 💾, refresh 🔄), the token counters, Ctrl+Up/Down.

The widgets are laid out by `panel.build` (through `build` and `token_counter`); `bind` wires them once every tab
exists, since saving a style refreshes every tab's list. What a Styles list shows is a snapshot of styles.csv (the
"style book" the page holds, as A1111 keeps its styles in memory until refreshed); Generate and 📋 expand the
selected styles from it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from sdui.engine.prompt_schedule import prompt_variants
from sdui.engine.prompts import CHUNK_TOKENS, tokenize_chunks
from sdui.networks.tags import TAG
from sdui.styles import Style, StyleStore, apply_styles

if TYPE_CHECKING:
    from sdui.ui.context import UIContext
    from sdui.ui.panel import Panel

APPLY_SYMBOL, SAVE_SYMBOL, REFRESH_SYMBOL = "📋", "💾", "🔄"
STYLES = "styles"  # the names of the selected styles, among the panel's extras
STYLE_BOOK = "style_book"  # {name: [prompt, negative prompt]}: the styles the page lists


@dataclass
class PromptTools:
    """One tab's Styles row and token counters."""

    styles: gr.Dropdown
    book: gr.State
    apply: gr.Button
    refresh: gr.Button
    name: gr.Textbox
    save: gr.Button
    problems: gr.HTML
    prompt_counter: gr.HTML
    negative_counter: gr.HTML


def token_counter(tab: str, box: str) -> gr.HTML:
    """The `12/75` counter shown on the top right of the prompt box built right after it (`box`: prompt or
    neg_prompt)."""
    return gr.HTML(counter_html(0, CHUNK_TOKENS), elem_id=f"{tab}_{box}_token_counter", container=False,
                   padding=False, min_height=0)


def build(tab: str, prompt_counter: gr.HTML, negative_counter: gr.HTML) -> PromptTools:
    """Lay out the Styles row (call under the prompt boxes)."""
    with gr.Row(equal_height=True):
        styles = gr.Dropdown([], value=[], multiselect=True, label="Styles", elem_id=f"{tab}_styles", scale=4)
        apply = gr.Button(APPLY_SYMBOL, elem_id=f"{tab}_style_apply", min_width=40, scale=0)
        refresh = gr.Button(REFRESH_SYMBOL, elem_id=f"{tab}_style_refresh", min_width=40, scale=0)
        name = gr.Textbox("", label="New style name", placeholder="Name, then 💾 to save the prompts as a style",
                          elem_id=f"{tab}_style_name", scale=3)
        save = gr.Button(SAVE_SYMBOL, elem_id=f"{tab}_style_save", min_width=40, scale=0)
    problems = gr.HTML("", elem_id=f"{tab}_style_problems", container=False, padding=False)
    return PromptTools(styles=styles, book=gr.State({}), apply=apply, refresh=refresh, name=name, save=save,
                       problems=problems, prompt_counter=prompt_counter, negative_counter=negative_counter)


def extras(tools: PromptTools) -> dict[str, gr.components.Component]:
    """The widgets Generate reads, by the names `with_styles` expects."""
    return {STYLES: tools.styles, STYLE_BOOK: tools.book}


def with_styles(values: dict[str, Any]) -> dict[str, Any]:
    """Widget values with the selected styles merged into the prompts (what Generate runs and the infotext keeps).

    ValueError naming a selected style the page's list does not have.
    """
    values = dict(values)
    names, book = values.pop(STYLES, None) or [], values.pop(STYLE_BOOK, None) or {}
    if not names:
        return values
    styles = styles_from_book(names, book)
    values["prompt"], values["negative_prompt"] = apply_styles(values.get("prompt") or "",
                                                               values.get("negative_prompt") or "", styles)
    # An empty hires prompt means "the first pass's" (styled already): only one of its own gets the styles too.
    hires = apply_styles(values.get("hr_prompt") or "", values.get("hr_negative_prompt") or "", styles)
    for name, styled in zip(("hr_prompt", "hr_negative_prompt"), hires):
        if values.get(name):
            values[name] = styled
    return values


def styles_from_book(names: Iterable[str], book: dict[str, list[str]]) -> list[Style]:
    """The named styles from a page's style book; ValueError for a name it does not hold."""
    missing = [name for name in names if name not in book]
    if missing:
        raise ValueError(f"style {', '.join(map(repr, missing))} is not in styles.csv any more; "
                         f"press {REFRESH_SYMBOL} next to Styles")
    return [Style(name, *book[name]) for name in names]


def style_book(store: StyleStore) -> dict[str, list[str]]:
    return {name: [style.prompt, style.negative_prompt] for name, style in store.styles().items()}


def count_tokens(text: str, steps: int = 20, tokenizer: Any = None) -> tuple[int, int]:
    """A1111's token counter: (tokens used, the chunk limit they fit in: 75, 150, ...) of the longest variant the
    prompt takes over `steps` (prompt editing, alternation, AND), extra-network tags left out.

    Full chunks count 75 each (a BREAK or a comma moving words to the next chunk leaves the rest unused), the
    last its own tokens, as A1111 counts.
    """
    if tokenizer is None:
        from sdui.models.tokenizer import load_tokenizer

        tokenizer = load_tokenizer()
    counts = []
    for variant in prompt_variants(text or "", max(1, int(steps or 1))):
        chunks = tokenize_chunks(tokenizer, TAG.sub("", variant))
        counts.append((CHUNK_TOKENS * (len(chunks) - 1) + len(chunks[-1].tokens), CHUNK_TOKENS * len(chunks)))
    return max(counts) if counts else (0, CHUNK_TOKENS)


def counter_html(used: int, limit: int) -> str:
    # A zero-height line that lets the count float down onto the label line of the prompt box built after it:
    # its top right corner, where A1111 shows it.
    return ('<div style="display:flex;justify-content:flex-end;height:0;position:relative;z-index:10">'
            '<span class="token-counter" style="transform:translateY(calc(var(--layout-gap) + 8px));'
            'margin-right:12px;padding:0 6px;border-radius:4px;font-size:var(--text-sm);'
            f'color:var(--block-label-text-color)">{int(used)}/{int(limit)}</span></div>')


def bind(ctx: UIContext, panels: Iterable[Panel], demo: gr.Blocks) -> None:
    """Wire every tab's Styles row and counters; the lists fill when a page loads."""
    store = getattr(ctx, "styles", None) or StyleStore.in_data_dir(ctx.settings.data_dir)
    pairs = [(panel, panel.prompt_tools) for panel in panels if panel.prompt_tools is not None]
    every = [tools for _, tools in pairs]
    lists = [widget for tools in every for widget in (tools.styles, tools.book, tools.problems)]
    selections = [tools.styles for tools in every]

    def listing(*selected: list[str] | None) -> list[Any]:
        book, problems = style_book(store), store.problems()
        shown = _problems_html(problems)
        out: list[Any] = []
        for chosen in selected:
            out += [gr.update(choices=list(book), value=[n for n in chosen or [] if n in book]), book, shown]
        return out

    def refreshed(*selected: list[str] | None) -> list[Any]:
        for problem in store.problems():
            gr.Warning(problem)
        return listing(*selected)

    def save(name: str, prompt: str, negative: str, *selected: list[str] | None) -> list[Any]:
        try:
            store.save(Style(name or "", prompt or "", negative or ""))
        except (ValueError, OSError) as e:
            raise gr.Error(f"The style was not saved: {e}") from e
        gr.Info(f"Saved style {name.strip()!r} in {store.path.name}")
        return ["", *listing(*selected)]

    demo.load(listing, selections, lists, queue=False, api_visibility="private")
    for panel, tools in pairs:
        prompt, negative = panel.fields["prompt"], panel.fields["negative_prompt"]
        # Queued (its own line, not the device's) so a gr.Error/gr.Warning shows as a toast.
        tools.refresh.click(refreshed, selections, lists, api_visibility="private", show_progress="hidden")
        tools.save.click(save, [tools.name, prompt, negative, *selections], [tools.name, *lists],
                         api_visibility="private", show_progress="hidden")
        tools.apply.click(_apply, [prompt, negative, tools.styles, tools.book], [prompt, negative, tools.styles],
                          api_visibility="private", show_progress="hidden")
        for box, counter in ((prompt, tools.prompt_counter), (negative, tools.negative_counter)):
            gr.on([box.change, panel.fields["steps"].change, tools.styles.change], _counter_for(box is prompt),
                  [box, panel.fields["steps"], tools.styles, tools.book], counter, queue=False,
                  trigger_mode="always_last", show_progress="hidden", api_visibility="private")


def _apply(prompt: str, negative: str, names: list[str] | None, book: dict[str, list[str]]):
    try:
        styles = styles_from_book(names or [], book or {})
    except ValueError as e:
        raise gr.Error(str(e)) from e
    prompt, negative = apply_styles(prompt or "", negative or "", styles)
    return prompt, negative, []


def _counter_for(positive: bool):
    # The count includes the selected styles, as A1111's does by default (include_styles_into_token_counters).
    def update(text: str, steps: float, names: list[str] | None, book: dict[str, list[str]]) -> str:
        styles = [Style(name, *book[name]) for name in names or [] if name in (book or {})]
        styled = apply_styles(text or "", text or "", styles)[0 if positive else 1]
        return counter_html(*count_tokens(styled, int(steps or 20)))

    return update


def _problems_html(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{html.escape(problem)}</li>" for problem in problems)
    return f'<div class="style-problems" style="color:var(--color-accent)"><ul>{items}</ul></div>'


# Ctrl+Up / Ctrl+Down in a prompt box, as A1111's edit-attention: the selection (or, with none, the weighted
# block or the word under the caret) gets its emphasis raised or lowered by 0.1: word → (word:1.1) → (word:1.2);
# back at 1.0 the brackets go. The selection stays on the words; an input event tells Gradio the new value.
EDIT_ATTENTION_JS = r"""
() => {
  const STEP = 0.1;
  const DELIMITERS = ".,\\/!?%^*;:{}=`~() \t\r\n";
  const WEIGHT = /^:\s*(-?[\d.]+)\s*\)/;

  function insideBrackets(text, caret) {
    const open = text.lastIndexOf("(", caret - 1);
    if (open < 0 || text.lastIndexOf(")", caret - 1) > open) return null;
    const close = text.indexOf(")", caret);
    if (close < 0 || (text.indexOf("(", caret) >= 0 && text.indexOf("(", caret) < close)) return null;
    const inner = text.slice(open + 1, close);
    const colon = inner.lastIndexOf(":");
    const end = colon >= 0 && WEIGHT.test(inner.slice(colon) + ")") ? open + 1 + colon : close;
    return [open + 1, end];
  }

  function wordAt(text, caret) {
    let start = caret, end = caret;
    while (start > 0 && !DELIMITERS.includes(text[start - 1])) start--;
    while (end < text.length && !DELIMITERS.includes(text[end])) end++;
    return [start, end];
  }

  function format(weight) {
    const rounded = parseFloat(weight.toPrecision(12));
    return Number.isInteger(rounded) ? rounded + ".0" : String(rounded);
  }

  function reweigh(text, start, end, up) {
    while (end > start && text[end - 1] === " ") end--;
    while (start < end && text[start] === " ") start++;
    if (start === end) return null;
    if (text[start - 1] === "(" && text[end] === ")") {  // (word) or ((word)): old-style emphasis → explicit
      let depth = 0;
      while (text[start - depth - 1] === "(" && text[end + depth] === ")") depth++;
      const weight = Math.round(1.1 ** depth / STEP) * STEP;
      text = text.slice(0, start - depth) + "(" + text.slice(start, end) + ":" + format(weight) + ")"
        + text.slice(end + depth);
      start -= depth - 1;
      end -= depth - 1;
    } else if (!(text[start - 1] === "(" && WEIGHT.test(text.slice(end)))) {
      text = text.slice(0, start) + "(" + text.slice(start, end) + ":1.0)" + text.slice(end);
      start += 1;
      end += 1;
    }
    const match = text.slice(end).match(WEIGHT);
    const weight = parseFloat(match[1]) + (up ? STEP : -STEP);
    const after = end + match[0].length;
    if (Math.abs(weight - 1) < 1e-9) {
      return [text.slice(0, start - 1) + text.slice(start, end) + text.slice(after), start - 1, end - 1];
    }
    return [text.slice(0, end) + ":" + format(weight) + ")" + text.slice(after), start, end];
  }

  document.addEventListener("keydown", (e) => {
    if (!(e.ctrlKey || e.metaKey) || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
    const box = e.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("[id$='_prompt']")) return;
    const text = box.value;
    let [start, end] = [box.selectionStart, box.selectionEnd];
    if (start === end) [start, end] = insideBrackets(text, start) || wordAt(text, start);
    const changed = reweigh(text, start, end, e.key === "ArrowUp");
    e.preventDefault();
    if (!changed) return;
    box.value = changed[0];
    box.setSelectionRange(changed[1], changed[2]);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });
}
"""
