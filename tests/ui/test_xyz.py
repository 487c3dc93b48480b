"""The Script dropdown's widget values -> the X/Y/Z plot's PlotParams (no server: the tab's to_params)."""

from __future__ import annotations

import pytest

from sdui.params import GenerationParams
from sdui.scripts.xyz import PlotParams
from sdui.ui import img2img, txt2img

FIELDS = {"prompt": "a cat", "steps": 2.0, "width": 64.0, "height": 64.0, "seed": 3.0, "sampler": "Euler"}
PLOT = {"script": "X/Y/Z plot", "xyz_x_type": "Steps", "xyz_x_values": "1-2", "xyz_y_type": "Sampler",
        "xyz_y_values": "typed, ignored", "xyz_y_choices": ["Euler", "DDIM"], "xyz_z_type": "Nothing",
        "xyz_z_values": "", "xyz_draw_legend": False, "xyz_include_sub_images": True, "xyz_margin_size": 4.0,
        "xyz_vary_seeds_y": True}


def test_no_script_is_a_plain_generation():
    params = txt2img.to_params({**FIELDS, "script": "None", "xyz_x_type": "Steps", "xyz_x_values": "1-2"})
    assert isinstance(params, GenerationParams) and params.steps == 2


def test_the_plot_takes_the_tab_params_and_the_picked_choices():
    plot = txt2img.to_params({**FIELDS, **PLOT})
    assert isinstance(plot, PlotParams) and plot.base.steps == 2 and plot.base.seed == 3
    assert (plot.x.type, plot.x.values, plot.y.type, plot.y.values) == ("Steps", "1-2", "Sampler", "Euler,DDIM")
    assert (plot.draw_legend, plot.include_sub_images, plot.margin_size, plot.vary_seeds) == (False, True, 4,
                                                                                             (False, True, False))
    assert [(c.params.steps, c.params.sampler) for c in plot.cells()] == [(1, "Euler"), (2, "Euler"),
                                                                         (1, "DDIM"), (2, "DDIM")]


def test_img2img_plot_keeps_its_picture_and_refuses_txt2img_axes():
    from PIL import Image

    fields = {**FIELDS, **PLOT, "init_image": Image.new("RGB", (64, 64)), "xyz_x_type": "Hires steps"}
    plot = img2img.to_params(fields)
    assert plot.base.init_image is not None
    with pytest.raises(ValueError, match="'Hires steps' is not one of img2img's"):
        plot.validate()
