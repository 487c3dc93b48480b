"""Every model family through the engine: SD2, SDXL, their inpainting models in every mode, the SDXL refiner."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sdui.engine.generate import Engine
from sdui.models.catalog import Catalog
from sdui.models.errors import ModelError
from sdui.models.manager import ModelManager
from sdui.outputs.infotext import read_params
from sdui.settings import Settings
from tests.engine.conftest import small

FAMILIES = [("sd2", 4), ("sd2", 9), ("sdxl", 4), ("sdxl", 9), ("sdxl-refiner", 4)]


@pytest.fixture(scope="module")
def family_engine(tmp_path_factory) -> Engine:
    from sdui.models.layout import write_tiny_checkpoint

    models = tmp_path_factory.mktemp("family-models")
    for family, channels in FAMILIES:
        write_tiny_checkpoint(models / f"{family}-{channels}.safetensors", family=family, in_channels=channels)
    v = models / "sd2-4.safetensors"
    save_file(load_file(str(v)), str(models / "sd2-v.safetensors"), metadata={"modelspec.prediction_type": "v"})
    cache = tmp_path_factory.mktemp("family-cache")
    settings = Settings.for_data_dir(cache, ckpt_dir=models, device="cpu", fast_path=False, models_in_memory=6)
    return Engine(ModelManager(Catalog(models, cache), settings))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def _mode(mode: str, photo: Image.Image) -> dict:
    mask = Image.new("L", (64, 64))
    mask.paste(255, (16, 16, 48, 48))
    return {"txt2img": {}, "img2img": {"init_image": photo, "denoising_strength": 0.6},
            "inpaint": {"init_image": photo, "mask": mask, "denoising_strength": 0.8}}[mode]


def _first_unet_input(engine: Engine, checkpoint: str, params) -> torch.Tensor:
    """What the checkpoint's UNet is first called with in a run of `params`."""
    seen: list[torch.Tensor] = []
    hook = engine.manager.get(checkpoint).unet.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()) if not seen else None)
    try:
        engine.run(params)
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize("family,channels", FAMILIES)
@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_every_family_runs_every_mode_or_says_why_not(family_engine, photo, family, channels, mode):
    params = small(checkpoint=f"{family}-{channels}", mode=mode, **_mode(mode, photo))
    if family == "sdxl-refiner" and mode == "txt2img":
        with pytest.raises(ModelError, match="is an SDXL refiner: it does not make pictures from text"):
            family_engine.run(params)
        return
    result = family_engine.run(params)
    assert result.images[0].size == (64, 64) and np.asarray(result.images[0]).std() > 0
    again = family_engine.run(params)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(again.images[0]))


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_an_inpainting_model_paints_the_whole_picture_in_txt2img_and_img2img(family_engine, photo, family):
    name = f"{family}-9"
    for mode, whole in (("txt2img", True), ("img2img", True), ("inpaint", False)):
        sample = _first_unet_input(family_engine, name, small(checkpoint=name, mode=mode, **_mode(mode, photo)))
        mask_channel = sample[:, 4]  # latents (4), then the mask (1), then the masked picture's latents (4)
        assert bool((mask_channel == 1).all()) is whole, mode


def test_hires_fix_on_an_inpainting_checkpoint_is_refused_by_name(family_engine):
    with pytest.raises(ValueError, match="hr_checkpoint: hires fix cannot run its second pass on an inpainting"):
        family_engine.run(small(checkpoint="sd2-9", enable_hr=True, hr_scale=1.5))


def test_a_v_prediction_model_says_so_in_its_infotext(family_engine):
    v = family_engine.run(small(checkpoint="sd2-v"))
    assert "Prediction: v," in v.infotexts[0]
    assert family_engine.manager.base_scheduler_config("sd2-v")["prediction_type"] == "v_prediction"
    read = read_params(v.infotexts[0], small(checkpoint="sd2-v"))
    assert read.warnings == []
    plain = family_engine.run(small(checkpoint="sdxl-4"))
    assert "Prediction" not in plain.infotexts[0]
    assert not np.array_equal(np.asarray(v.images[0]), np.asarray(family_engine.run(
        small(checkpoint="sd2-4")).images[0]))
