"""PNG info: which checkpoint an infotext's Model / Model hash points to, and what Send to sets."""

from __future__ import annotations

from types import SimpleNamespace

from sdui.models.catalog import Catalog
from sdui.ui.pnginfo import checkpoint_title, infotext_updates
from tests.ui.conftest import listing_ctx


def test_checkpoint_title_falls_back_to_a_known_model_hash(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.safetensors").write_bytes(b"not really a model")
    catalog = Catalog(models, tmp_path / "cache")
    short = catalog.find("mine").short_hash  # computed once, as the first infotext would
    ctx = SimpleNamespace(catalog=catalog)

    assert checkpoint_title(ctx, "renamed-elsewhere", short) == f"mine.safetensors [{short}]"
    assert checkpoint_title(ctx, "renamed-elsewhere", "0123456789") is None
    assert checkpoint_title(ctx, None, None) is None


def _panel_and_bar(tmp_path):
    import gradio as gr

    from sdui.ui import panel as panel_ui
    from sdui.ui.topbar import TopBar

    with gr.Blocks():
        panel = panel_ui.build("txt2img", tmp_path)
        bar = TopBar(checkpoint=gr.Dropdown(), refresh=gr.Button(), vae=gr.Dropdown(), refresh_vae=gr.Button(),
                     status=gr.Markdown(), banner=gr.Markdown())
    return panel, bar


PARAMETERS = "a fox <lora:renamed:0.5>\nNegative prompt: blur\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, " \
             "Size: 64x64, Model: mine"


def test_send_carries_lora_hashes_and_sets_the_checkpoint_and_an_installed_vae(tmp_path):
    ctx = listing_ctx(tmp_path)
    panel, bar = _panel_and_bar(tmp_path / "outputs")
    text = PARAMETERS + ', VAE hash: 0123456789, VAE: vae-ft-mse.safetensors, Lora hashes: "renamed: 0123456789ab"'
    updates, notes = infotext_updates(ctx, text, panel, bar)
    assert updates[panel.fields["lora_hashes"]] == {"renamed": "0123456789ab"}
    assert updates[bar.vae].value == "vae-ft-mse.safetensors" and "vae-ft-mse.safetensors" in str(
        updates[bar.vae].choices)
    assert updates[bar.checkpoint].value == "mine.safetensors"
    assert updates[panel.fields["prompt"]] == "a fox <lora:renamed:0.5>" and notes == []


def test_send_of_an_unknown_vae_leaves_the_setting_with_a_note_and_empties_old_lora_hashes(tmp_path):
    ctx = listing_ctx(tmp_path)
    panel, bar = _panel_and_bar(tmp_path / "outputs")
    updates, notes = infotext_updates(ctx, PARAMETERS + ", VAE: orangemix.vae.pt", panel, bar)
    assert bar.vae not in updates
    assert len(notes) == 1 and "'orangemix.vae.pt' is not in" in notes[0]
    assert updates[panel.fields["lora_hashes"]] == {}  # a picture without them: none from an earlier one
    updates, notes = infotext_updates(ctx, PARAMETERS, panel, bar)
    assert bar.vae not in updates and notes == []  # no VAE key: the setting is not touched (as A1111)
