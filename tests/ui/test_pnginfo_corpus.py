"""PNG info → Send to with the corpus of real infotexts: every key reaches the picture made, or is named."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

from sdui.outputs.infotext import DEFAULTS, infotext_mode, parse_infotext
from sdui.params import Mode
from sdui.ui import img2img, inpaint, outpaint, pnginfo, topbar, txt2img
from sdui.ui.context import UIContext
from sdui.ui.panel import params_from_fields
from tests.outputs.infotext_corpus import CORPUS, IDS, dropped_silently, small_fields

TABS = (("txt2img", txt2img), ("img2img", img2img), ("inpaint", inpaint), ("outpaint", outpaint))


@pytest.fixture(scope="module")
def page(tiny_model_dir, tmp_path_factory):
    """The generation tabs and top bar over a real ModelManager and Engine on the tiny model (nothing launched)."""
    from sdui.engine.generate import Engine
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.settings import Settings

    root = tmp_path_factory.mktemp("pnginfo-corpus")
    settings = Settings.for_data_dir(root, ckpt_dir=tiny_model_dir, device="cpu")
    for folder in settings.network_dirs:
        folder.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(tiny_model_dir, root / "cache", exclude=settings.network_dirs)
    manager = ModelManager(catalog, settings)
    ctx = UIContext(queue=None, manager=manager, catalog=catalog, settings=settings)
    with gr.Blocks():
        bar = topbar.build(ctx)
        with gr.Tabs():
            panels = {name: module.build(ctx) for name, module in TABS}
    return ctx, bar, panels, Engine(manager)


def _value(widget, update):
    """What the handler gets for a widget showing `update`, after Gradio's preprocessing."""
    value = getattr(update, "value", update)
    if isinstance(widget, gr.Radio) and widget.type == "index":
        return [choice[1] for choice in widget.choices].index(value)
    return value


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_send_to_the_tab_of_its_mode_keeps_every_key_or_names_it(page, entry):
    ctx, bar, panels, engine = page
    text = entry["text"]
    current = ctx.catalog.list()[0].title
    mode = infotext_mode(parse_infotext(text))
    panel = panels[mode.value]
    if not set(parse_infotext(text)) - {"Prompt", "Negative prompt", *DEFAULTS}:  # the parameters line is unreadable
        with pytest.raises(gr.Error, match="the text has no parameters line"):
            pnginfo.infotext_updates(ctx, text, panel, bar, current, "Automatic")
        return
    updates, pasted = pnginfo.infotext_updates(ctx, text, panel, bar, current, "Automatic")
    values = {name: _value(widget, updates[widget]) for name, widget in {**panel.fields, **bar.fields}.items()
              if widget in updates}
    own = small_fields(text)
    inputs = {}
    if mode is not Mode.TXT2IMG:
        inputs["init_image"] = Image.new("RGB", (64, 64), (120, 90, 60))
    if mode is Mode.INPAINT:
        inputs["mask"] = Image.new("L", (64, 64), 0)
        inputs["mask"].paste(255, (16, 16, 48, 48))
    params = params_from_fields(values, mode=mode, **own, **inputs)
    result = engine.run(params)
    dropped = dropped_silently(text, result.infotexts[0], own, [*pasted.warnings, *result.warnings])
    assert not dropped, f"dropped silently: {dropped}; warnings: {pasted.warnings + result.warnings}"
