"""A tab's extra networks panel (A1111's): Lora, Textual Inversion and Checkpoints cards, a search box and refresh.

A card is an HTML button whose `data-*` attributes say what a click does; the page script `CARDS_JS` (loaded once
by blocks.py) puts a card's text into the tab's prompt box that had focus last, or hands a checkpoint card's title
to a CSS-hidden textbox whose event selects it in the top bar. Cards are rendered when the panel opens, as the
search changes and on refresh (which rescans the folders and the checkpoint catalog); listing reads no file.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import gradio as gr

from sdui.models.errors import ModelNotFound
from sdui.ui import topbar
from sdui.ui.context import UIContext

PAGES = {"lora": "Lora", "embedding": "Textual Inversion", "checkpoint": "Checkpoints"}
# `<lora:name:w>` cannot carry a name holding these (the tag parser splits on ':' and '=', ends at '>').
TAG_BREAKERS = re.compile(r"[:=>]")
DEFAULT_MULTIPLIER = 1  # A1111's extra_networks_default_multiplier

CARDS_CSS = """
.sdui-cards { display: flex; flex-wrap: wrap; gap: 6px; max-height: 320px; overflow-y: auto; }
.sdui-card { display: flex; flex-direction: column; align-items: flex-start; min-width: 140px; max-width: 260px;
  padding: 6px 10px; border: 1px solid var(--border-color-primary); border-radius: 6px; cursor: pointer;
  background: var(--background-fill-secondary); text-align: left; }
.sdui-card:hover { border-color: var(--color-accent); }
.sdui-card-name { font-weight: 600; overflow-wrap: anywhere; }
.sdui-card-path { font-size: 0.8em; opacity: 0.7; overflow-wrap: anywhere; }
.sdui-card-unusable { cursor: not-allowed; opacity: 0.6; }
.sdui-cards-empty { opacity: 0.7; padding: 6px; }
"""

# One document-level script: remembers which prompt box of each tab had focus last and handles card clicks.
CARDS_JS = """
() => {
  const lastPrompt = {};  // tab -> elem_id of the prompt textbox that had focus last
  document.addEventListener("focusin", (e) => {
    const box = e.target.tagName === "TEXTAREA" && e.target.closest("[id$='_prompt']");
    const match = box && box.id.match(/^(.+?)_(neg_)?prompt$/);
    if (match) lastPrompt[match[1]] = box.id;
  });
  const setValue = (area, value) => {
    area.value = value;
    area.dispatchEvent(new Event("input", { bubbles: true }));  // so Gradio takes the new value
  };
  const insert = (area, text, atCursor) => {
    const value = area.value;
    const start = atCursor ? area.selectionStart : value.length, end = atCursor ? area.selectionEnd : value.length;
    let before = value.slice(0, start), after = value.slice(end);
    if (before && !/\\s$/.test(before)) before += " ";
    if (after && !/^\\s/.test(after)) after = " " + after;
    setValue(area, before + text + after);
    area.setSelectionRange(before.length + text.length, before.length + text.length);
  };
  document.addEventListener("click", (e) => {
    const card = e.target.closest && e.target.closest(".sdui-card");
    const panel = card && card.closest("[id$='_extra_networks']");
    if (!panel) return;
    const tab = panel.id.slice(0, -"_extra_networks".length);
    if (card.dataset.insert !== undefined) {
      const target = lastPrompt[tab] || tab + "_prompt";
      const area = document.querySelector("#" + target + " textarea");
      if (area) insert(area, card.dataset.insert, lastPrompt[tab] !== undefined);
    } else if (card.dataset.checkpoint !== undefined) {
      const id = "#" + tab + "_extra_checkpoint";
      const hidden = document.querySelector(id + " textarea, " + id + " input");
      if (hidden) setValue(hidden, card.dataset.checkpoint);
    }
  });
}
"""


@dataclass(frozen=True)
class Card:
    """One file as the panel shows it and what a click on it does (insert text, or select a checkpoint)."""

    kind: str  # a key of PAGES
    name: str
    rel: str  # the path inside its folder: shown under the name, searched
    insert: str = ""  # text a click adds to the prompt
    checkpoint: str = ""  # the checkpoint title a click selects
    problem: str = ""  # why a click does nothing (shown as the card's tooltip)


@dataclass
class NetworksPanel:
    tab: str
    accordion: gr.Accordion
    search: gr.Textbox
    refresh: gr.Button
    pages: dict[str, gr.HTML]  # by PAGES key
    choose_checkpoint: gr.Textbox  # CSS-hidden: a checkpoint card's title arrives here


def lora_card(name: str, rel: str) -> Card:
    """A LoRA card: a click adds `<lora:NAME:1>`, unless no tag can name the file."""
    if TAG_BREAKERS.search(name) or name != name.strip():
        return Card("lora", name, rel, problem="Its file name cannot be written in a <lora:name:weight> tag "
                    "(it holds ':', '=' or '>', or starts or ends with a space): rename the file to use it")
    return Card("lora", name, rel, insert=f"<lora:{name}:{DEFAULT_MULTIPLIER}>")


def embedding_card(name: str, rel: str) -> Card:
    """An embedding card: a click adds its name (a prompt uses an embedding by its file name)."""
    return Card("embedding", name, rel, insert=name)


def checkpoint_card(name: str, rel: str, title: str) -> Card:
    """A checkpoint card: a click selects `title` in the top bar."""
    return Card("checkpoint", name, rel, checkpoint=title)


def cards(ctx: UIContext, kind: str) -> list[Card]:
    """The cards of one page from the (cached) folder listings."""
    extras = ctx.manager.extras
    if kind == "lora":
        return [lora_card(f.name, f.rel) for f in extras.loras.list()]
    if kind == "embedding":
        return [embedding_card(f.name, f.rel) for f in extras.embeddings.list()]
    return [checkpoint_card(info.name, info.rel, info.title) for info in ctx.catalog.list()]


def matches(card: Card, query: str) -> bool:
    """True when every word of `query` is in the card's name or path (case ignored)."""
    haystack = f"{card.name} {card.rel}".lower()
    return all(word in haystack for word in query.lower().split())


def cards_html(items: Iterable[Card], query: str = "", empty: str = "No files found") -> str:
    """The page of cards that match `query`, every name and path escaped."""
    items = list(items)
    shown = [card for card in items if matches(card, query)]
    if not shown:
        text = f"Nothing matches “{query.strip()}”" if items else empty
        return f'<div class="sdui-cards-empty">{html.escape(text)}</div>'
    return '<div class="sdui-cards">' + "".join(_card_html(card) for card in shown) + "</div>"


def _card_html(card: Card) -> str:
    attrs = {"type": "button", "class": "sdui-card" + (" sdui-card-unusable" if card.problem else ""),
             "data-kind": card.kind, "data-name": card.name, "title": card.problem or card.rel}
    if card.insert:
        attrs["data-insert"] = card.insert
    if card.checkpoint:
        attrs["data-checkpoint"] = card.checkpoint
    if card.problem:
        attrs["aria-disabled"] = "true"
    folder = str(PurePosixPath(card.rel).parent)
    where = "" if folder == "." else f'<span class="sdui-card-path">{html.escape(folder)}/</span>'
    return ("<button " + " ".join(f'{key}="{html.escape(value, quote=True)}"' for key, value in attrs.items())
            + f'><span class="sdui-card-name">{html.escape(card.name)}</span>{where}</button>')


def render_pages(ctx: UIContext, query: str | None) -> list[str]:
    """The HTML of every page, in PAGES order, filtered by `query`."""
    folders = {"lora": ctx.settings.lora_dir, "embedding": ctx.settings.embeddings_dir,
               "checkpoint": ctx.settings.ckpt_dir}
    return [cards_html(cards(ctx, kind), query or "", empty=f"No files found in {folders[kind]}") for kind in PAGES]


def build(ctx: UIContext, tab: str) -> NetworksPanel:
    """Lay out the closed "Extra networks" accordion (the cards are rendered when it opens)."""
    with gr.Accordion("Extra networks", open=False, elem_id=f"{tab}_extra_networks") as accordion:
        with gr.Row(equal_height=True):
            search = gr.Textbox("", placeholder="Search by name or folder", show_label=False, container=False,
                                elem_id=f"{tab}_extra_search", scale=4)
            refresh = gr.Button("🔄 Refresh", elem_id=f"{tab}_extra_refresh", scale=0, min_width=110)
        pages = {}
        with gr.Tabs():
            for kind, label in PAGES.items():
                with gr.Tab(label, id=f"{tab}_extra_{kind}", elem_id=f"{tab}_extra_tab_{kind}"):
                    pages[kind] = gr.HTML("", elem_id=f"{tab}_extra_{kind}_cards", css_template=CARDS_CSS,
                                          js_on_load=None)
        choose = gr.Textbox("", visible="hidden", elem_id=f"{tab}_extra_checkpoint")
    return NetworksPanel(tab=tab, accordion=accordion, search=search, refresh=refresh, pages=pages,
                         choose_checkpoint=choose)


def bind(ctx: UIContext, panel: NetworksPanel, bar: topbar.TopBar) -> None:
    """Opening and searching render the cards; refresh rescans; a checkpoint card selects it in the top bar."""
    pages = list(panel.pages.values())
    private = {"queue": False, "api_visibility": "private", "show_progress": "hidden"}

    def show(query: str | None) -> list[str]:
        return render_pages(ctx, query)

    def refresh(query: str | None, current: str | None):
        ctx.catalog.refresh()
        ctx.manager.extras.refresh()
        return (*render_pages(ctx, query), topbar.checkpoint_update(ctx, current))

    def choose(title: str | None):
        if not title:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            title = ctx.catalog.find(title).title
        except (ModelNotFound, ValueError):
            return gr.skip(), f"`{title}` is gone from the models folder: press 🔄 Refresh in Extra networks", ""
        return topbar.checkpoint_update(ctx, title), topbar.status_text(title), ""

    panel.accordion.expand(show, panel.search, pages, **private)
    # change, not input: Gradio's Textbox fires input on key presses only, so a pasted query would not search.
    panel.search.change(show, panel.search, pages, trigger_mode="always_last", **private)
    panel.refresh.click(refresh, [panel.search, bar.checkpoint], [*pages, bar.checkpoint], **private)
    # change (the script sets the value; input needs key presses), emptied after use so the same card works again.
    panel.choose_checkpoint.change(choose, panel.choose_checkpoint,
                                   [bar.checkpoint, bar.status, panel.choose_checkpoint], **private)
