"""The extra networks panel's cards (what a click inserts or selects, escaping, search) and the VAE choices."""

from __future__ import annotations

from html.parser import HTMLParser

from sdui.ui import networks, topbar
from sdui.ui.blocks import CTRL_ENTER_JS, page_js
from sdui.ui.results import warnings_html
from tests.ui.conftest import listing_ctx


class Buttons(HTMLParser):
    """The attributes and text of each card button, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "button":
            self.cards.append(dict(attrs))

    def handle_data(self, data):
        self.text += data
        if self.cards:
            self.cards[-1]["text"] = self.cards[-1].get("text", "") + data


def parse(markup: str) -> Buttons:
    parser = Buttons()
    parser.feed(markup)
    return parser


ODD = 'say "hi" & <b> it\'s'


def test_a_lora_card_inserts_its_tag_and_an_embedding_card_its_name():
    assert networks.lora_card("detail", "styles/detail.safetensors").insert == "<lora:detail:1>"
    assert networks.embedding_card("EasyNegative", "EasyNegative.pt").insert == "EasyNegative"
    card = networks.checkpoint_card("sub_model", "sub/model.safetensors", "sub/model.safetensors [0123456789]")
    assert card.checkpoint == "sub/model.safetensors [0123456789]" and card.insert == ""


def test_a_lora_name_no_tag_can_hold_gets_no_insert_but_a_reason():
    for name in ("a:b", "x=y", "end>", " padded"):
        card = networks.lora_card(name, f"{name}.safetensors")
        assert card.insert == "" and "rename the file" in card.problem, name
    (button,) = parse(networks.cards_html([networks.lora_card("a:b", "a:b.safetensors")])).cards
    assert "data-insert" not in button and button["aria-disabled"] == "true" and "rename" in button["title"]


def test_names_and_paths_are_escaped_and_come_back_exactly():
    lora = networks.lora_card("say \"hi\" & <b it's", f'sub "dir"/{ODD}.safetensors')
    markup = networks.cards_html([lora, networks.embedding_card(ODD, f"{ODD}.pt")])
    assert "<b>" not in markup and '"hi"' not in markup  # nothing a browser would read as markup
    first, second = parse(markup).cards
    assert first["data-insert"] == "<lora:say \"hi\" & <b it's:1>" and first["data-kind"] == "lora"
    assert first["text"] == "say \"hi\" & <b it'ssub \"dir\"/"  # the name, then its folder
    assert first["title"] == f'sub "dir"/{ODD}.safetensors'
    assert second["data-insert"] == ODD and second["text"] == ODD


def test_search_matches_every_word_in_name_or_folder_ignoring_case():
    items = [networks.lora_card("Detail", "styles/Detail.safetensors"),
             networks.lora_card("add_more", "characters/add_more.safetensors"),
             networks.embedding_card("EasyNegative", "EasyNegative.pt")]
    names = lambda query: [c["data-name"] for c in parse(networks.cards_html(items, query)).cards]  # noqa: E731
    assert names("") == ["Detail", "add_more", "EasyNegative"]
    assert names("detail") == ["Detail"] and names("STYLES") == ["Detail"]
    assert names("char more") == ["add_more"] and names("char detail") == []
    assert "Nothing matches “zebra”" in networks.cards_html(items, " zebra ")
    assert "No files found in /x" in networks.cards_html([], "", empty="No files found in /x")


def test_pages_list_the_folders_in_order(tmp_path):
    lora, embedding, checkpoint = (parse(page).cards for page in networks.render_pages(listing_ctx(tmp_path), ""))
    assert [c["data-insert"] for c in lora] == ["<lora:detail:1>", "<lora:style:1>"]
    assert [c["data-insert"] for c in embedding] == ["EasyNegative"]
    assert [c["data-checkpoint"] for c in checkpoint] == ["mine.safetensors"]
    only = networks.render_pages(listing_ctx(tmp_path), "sub")
    assert [c["data-name"] for c in parse(only[0]).cards] == ["style"] and "Nothing matches" in only[1]


def test_vae_choices_are_automatic_none_then_file_names(tmp_path):
    ctx = listing_ctx(tmp_path)
    assert topbar.vae_choices(ctx.manager.extras.vaes.list()) == [
        "Automatic", "None", "a/same.pt", "b/same.pt", "vae-ft-mse.safetensors"]  # a repeated name keeps its folder
    assert topbar.vae_choices([]) == ["Automatic", "None"]
    # An infotext's `VAE:` (file name or stem) selects the installed file; an unknown one selects nothing.
    assert topbar.vae_choice(ctx, "vae-ft-mse.safetensors") == "vae-ft-mse.safetensors"
    assert topbar.vae_choice(ctx, "vae-ft-mse") == "vae-ft-mse.safetensors"
    assert topbar.vae_choice(ctx, "b/same.pt") == "b/same.pt"
    assert topbar.vae_choice(ctx, "orangemix.vae.pt") is None


def test_warnings_are_listed_escaped_and_empty_means_nothing_shown():
    assert warnings_html([]) == ""
    markup = warnings_html(["LoRA '<x>' not found", "VAE 'y' not found"])
    assert markup.count("<li>") == 2 and "&lt;x&gt;" in markup and "<x>" not in markup


def test_page_script_runs_each_script_once():
    js = page_js(CTRL_ENTER_JS, networks.CARDS_JS)
    assert js.startswith("() => {") and js.count("addEventListener(\"keydown\"") == 1
    assert js.count("addEventListener(\"click\"") == 1 and js.count("addEventListener(\"focusin\"") == 1
