"""ui-config.json (sdui/ui/ui_config.py): A1111's keys, values applied to built widgets, bad values reported."""

from __future__ import annotations

import json

import gradio as gr

from sdui.ui import ui_config


def build(path):
    """A small page in sdui's shape: a top-level tab with the widget kinds ui-config covers, one outside any tab."""
    with gr.Blocks() as demo:
        outside = gr.Slider(1, 12, value=1, label="Clip skip")
        with gr.Tabs(), gr.Tab("txt2img", id="txt2img"):
            widgets = {
                "steps": gr.Slider(1, 150, value=20, step=1, label="Sampling steps"),
                "sampler": gr.Dropdown(["Euler a", "DPM++ 2M"], value="Euler a", label="Sampling method"),
                "cfg": gr.Number(7.0, label="CFG Scale", minimum=1, maximum=30),
                "restore": gr.Checkbox(False, label="Hires. fix"),
                "prompt": gr.Textbox("", label="Prompt"),
                "mode": gr.Radio(["Just resize", "Crop and resize"], value="Just resize", label="Resize mode"),
                "loaded": gr.Slider(1, 12, value=lambda: 3, label="Loaded each time"),
                "infotext": gr.Textbox(label="Generation parameters", interactive=False),
                "folder": gr.Textbox(None, label="Input directory"),
            }
        report = ui_config.apply(demo, path)
    return demo, outside, widgets, report


def props(demo, label):
    return next(c["props"] for c in demo.config["components"] if c.get("props", {}).get("label") == label)


def test_missing_file_is_written_with_the_built_in_defaults(tmp_path):
    path = tmp_path / ui_config.UI_CONFIG_NAME
    _, _, _, report = build(path)
    data = json.loads(path.read_text())
    assert report.written and report.messages == []
    assert data["txt2img/Sampling steps/value"] == 20 and data["txt2img/Sampling steps/maximum"] == 150
    assert data["txt2img/Sampling method/value"] == "Euler a" and data["txt2img/Prompt/visible"] is True
    assert data["txt2img/Hires. fix/value"] is False and data["txt2img/CFG Scale/minimum"] == 1
    assert not any(key.startswith("Clip skip") or "/Clip skip/" in key for key in data)  # outside any tab
    assert not any("Loaded each time" in key for key in data)  # set at page load: not ui-config's
    assert not any("Generation parameters" in key for key in data)  # an output box
    assert "txt2img/Input directory/visible" in data and "txt2img/Input directory/value" not in data  # unset


def test_values_apply_to_the_built_page(tmp_path):
    path = tmp_path / ui_config.UI_CONFIG_NAME
    path.write_text(json.dumps({"txt2img/Sampling steps/value": 7, "txt2img/Sampling steps/maximum": 40,
                                "txt2img/Sampling method/value": "DPM++ 2M", "txt2img/Prompt/value": "a fox",
                                "txt2img/Hires. fix/value": True, "txt2img/Resize mode/visible": False,
                                "some-extension/Thing/value": 1}))
    demo, _, widgets, report = build(path)
    assert props(demo, "Sampling steps")["value"] == 7 and props(demo, "Sampling steps")["maximum"] == 40
    assert props(demo, "Sampling method")["value"] == "DPM++ 2M" and props(demo, "Prompt")["value"] == "a fox"
    assert props(demo, "Hires. fix")["value"] is True and props(demo, "Resize mode")["visible"] is False
    assert report.messages == []
    data = json.loads(path.read_text())
    assert data["some-extension/Thing/value"] == 1  # others' keys kept
    assert data["txt2img/Sampling steps/value"] == 7 and "txt2img/CFG Scale/value" in data  # new keys added


def test_a_bad_value_is_reported_and_the_widget_keeps_its_default(tmp_path):
    path = tmp_path / ui_config.UI_CONFIG_NAME
    path.write_text(json.dumps({"txt2img/Sampling steps/value": 500, "txt2img/Sampling method/value": "Nope",
                                "txt2img/CFG Scale/value": "high", "txt2img/Hires. fix/value": "yes",
                                "txt2img/Prompt/value": "kept"}))
    demo, _, _, report = build(path)
    assert props(demo, "Sampling steps")["value"] == 20 and props(demo, "Sampling method")["value"] == "Euler a"
    assert props(demo, "CFG Scale")["value"] == 7.0 and props(demo, "Hires. fix")["value"] is False
    assert props(demo, "Prompt")["value"] == "kept"
    bad = ("txt2img/Sampling steps/value", "txt2img/Sampling method/value", "txt2img/CFG Scale/value",
           "txt2img/Hires. fix/value")
    assert len(report.messages) == len(bad)
    for key, message in zip(bad, report.messages):
        assert key in message
    assert json.loads(path.read_text())["txt2img/Sampling steps/value"] == 500  # the user's file is not "fixed"


def test_an_unreadable_file_is_reported_and_left_alone(tmp_path):
    path = tmp_path / ui_config.UI_CONFIG_NAME
    path.write_text("{not json")
    demo, _, _, report = build(path)
    assert props(demo, "Sampling steps")["value"] == 20
    assert len(report.messages) == 1 and "not readable" in report.messages[0]
    assert path.read_text() == "{not json" and not report.written


def test_current_values_are_saved_as_the_new_defaults(tmp_path):
    path = tmp_path / ui_config.UI_CONFIG_NAME
    path.write_text(json.dumps({"txt2img/Sampling steps/maximum": 40, "other/Thing/value": 1}))
    _, _, widgets, report = build(path)
    values = {"txt2img/Sampling steps": 9.0, "txt2img/Sampling method": "DPM++ 2M", "txt2img/CFG Scale": 99,
              "txt2img/Prompt": "a fox"}
    ordered = [values.get(key, widget.value) for key, widget in report.widgets.items()]
    changed, refused = ui_config.save_values(path, report.widgets, ordered)
    data = json.loads(path.read_text())
    assert data["txt2img/Sampling steps/value"] == 9 and isinstance(data["txt2img/Sampling steps/value"], int)
    assert data["txt2img/Sampling method/value"] == "DPM++ 2M" and data["txt2img/Prompt/value"] == "a fox"
    assert data["txt2img/CFG Scale/value"] == 7.0 and data["other/Thing/value"] == 1  # refused; others kept
    assert changed == 3 and len(refused) == 1 and "txt2img/CFG Scale/value" in refused[0]
