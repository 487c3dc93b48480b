"""The upscaler list: built-ins, files of every folder and subfolder, A1111's names, order and fields, clashes."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from sdui.settings import Settings
from sdui.upscalers import BUILTIN_UPSCALERS, UpscalerInfo, Upscalers
from sdui.upscalers.listing import scale_in_name


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read by the listing")
    return path


def upscalers_on(root: Path, **changes) -> Upscalers:
    return Upscalers(Settings.for_data_dir(root, **changes), torch.device("cpu"))


def test_builtins_come_first_and_empty_folders_list_only_them(tmp_path):
    upscalers = upscalers_on(tmp_path)  # no folders at all
    assert upscalers.names() == ["None", "Lanczos", "Nearest"] == list(BUILTIN_UPSCALERS)
    assert upscalers.list()[1] == UpscalerInfo(name="Lanczos", model_name=None, model_path=None, model_url=None,
                                               scale=4.0)


def test_every_folder_and_subfolder_in_a1111_order_with_its_fields(tmp_path):
    models = tmp_path / "models"
    files = {
        "4x-UltraSharp": touch(models / "ESRGAN" / "4x-UltraSharp.pth"),
        "nested": touch(models / "ESRGAN" / "photo" / "deeper" / "nested.safetensors"),
        "RealESRGAN_x2plus": touch(models / "RealESRGAN" / "RealESRGAN_x2plus.pth"),
        "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN": touch(
            models / "SwinIR" / "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth"),
        "DAT_x3": touch(models / "DAT" / "DAT_x3.pt"),
        "1x_ReFocus": touch(models / "ESRGAN" / "1x_ReFocus.pth"),
    }
    touch(models / "ESRGAN" / "notes.txt")
    touch(models / "ESRGAN" / "model.ckpt")  # not an upscaler suffix in A1111
    touch(models / "Stable-diffusion" / "sd15.safetensors")  # another folder entirely
    listed = upscalers_on(tmp_path).list()
    names = [info.name for info in listed]
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert names[3:] == sorted(files, key=str.lower)  # A1111 sorts the models by lower-cased name
    by_name = {info.name: info for info in listed}
    assert by_name["4x-UltraSharp"] == UpscalerInfo("4x-UltraSharp", "ESRGAN_4x", str(files["4x-UltraSharp"]),
                                                    None, 4.0)
    assert by_name["nested"].model_path == str(files["nested"]) and by_name["nested"].model_name == "ESRGAN_4x"
    assert (by_name["RealESRGAN_x2plus"].model_name, by_name["RealESRGAN_x2plus"].scale) == (None, 2.0)
    assert by_name["003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN"].model_name == "SwinIR 4x"
    assert (by_name["DAT_x3"].model_name, by_name["DAT_x3"].scale) == (None, 3.0)
    assert by_name["1x_ReFocus"].scale == 1.0


@pytest.mark.parametrize("stem, scale", [("4x-UltraSharp", 4), ("RealESRGAN_x2plus", 2), ("DAT_x3", 3),
                                         ("2xLexicaRRDBNet", 2), ("x4_model", 4), ("1x_ReFocus", 1),
                                         ("Remacri", 4), ("model_x264", 4), ("Siax200k", 4), ("8x_NMKD", 8)])
def test_scale_from_the_file_name_else_4(stem, scale):
    assert scale_in_name(stem) == scale


def test_same_stem_twice_keeps_both_selectable(tmp_path):
    models = tmp_path / "models"
    first = touch(models / "ESRGAN" / "4x-clash.pth")
    in_sub = touch(models / "ESRGAN" / "sub" / "4x-clash.safetensors")
    other_folder = touch(models / "RealESRGAN" / "4x-clash.pth")
    builtin_name = touch(models / "DAT" / "Lanczos.pth")
    upscalers = upscalers_on(tmp_path)
    paths = {info.name: info.model_path for info in upscalers.list()}
    assert paths["4x-clash"] == str(first)  # the first folder, then the walk order, keeps the plain name
    assert paths["4x-clash (ESRGAN/sub/4x-clash.safetensors)"] == str(in_sub)
    assert paths["4x-clash (RealESRGAN/4x-clash.pth)"] == str(other_folder)
    assert paths["Lanczos (DAT/Lanczos.pth)"] == str(builtin_name)
    assert paths["Lanczos"] is None and len(paths) == 3 + 4


def test_one_folder_for_two_flags_lists_its_files_once(tmp_path):
    touch(tmp_path / "models" / "ESRGAN" / "4x-once.pth")
    upscalers = upscalers_on(tmp_path, realesrgan_dir=tmp_path / "models" / "ESRGAN")
    assert upscalers.names() == ["None", "Lanczos", "Nearest", "4x-once"]


def test_check_names_the_field_and_the_known_upscalers(tmp_path):
    touch(tmp_path / "models" / "ESRGAN" / "4x-garbage.pth")  # never read by check
    upscalers = upscalers_on(tmp_path)
    upscalers.check("4x-garbage")
    upscalers.check("Lanczos", "hr_upscaler")
    with pytest.raises(ValueError) as caught:
        upscalers.check("4x-Missing", "hr_upscaler")
    assert str(caught.value) == "hr_upscaler: no upscaler '4x-Missing'; known: None, Lanczos, Nearest, 4x-garbage"
    with pytest.raises(ValueError, match=r"^upscaler: no upscaler ''"):
        upscalers.check("")
    assert upscalers.load_count == 0


def test_find_exact_then_ignoring_case(tmp_path):
    touch(tmp_path / "models" / "ESRGAN" / "4x-UltraSharp.pth")
    upscalers = upscalers_on(tmp_path)
    assert upscalers.find("4x-UltraSharp").name == upscalers.find("4x-ultrasharp").name == "4x-UltraSharp"
    assert upscalers.find("lanczos").name == "Lanczos" and upscalers.find("4x-Ultra") is None


def test_new_files_show_up_after_refresh_and_check_rescans_once(tmp_path):
    upscalers = upscalers_on(tmp_path)
    assert upscalers.names() == list(BUILTIN_UPSCALERS)
    touch(tmp_path / "models" / "SwinIR" / "new.pth")
    assert upscalers.names() == list(BUILTIN_UPSCALERS)  # the scan is kept until refreshed
    upscalers.refresh()
    assert upscalers.names()[-1] == "new"
    touch(tmp_path / "models" / "DAT" / "newer.pth")
    upscalers.check("newer")  # a miss rescans the folders before refusing
    assert "newer" in upscalers.names()


def test_the_api_lists_them_as_a1111(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from sdui.api import mount_api

    model = touch(tmp_path / "models" / "ESRGAN" / "4x-UltraSharp.pth")
    settings = Settings.for_data_dir(tmp_path, api=True)
    app = FastAPI()
    manager = types.SimpleNamespace(upscalers=Upscalers(settings, torch.device("cpu")))
    mount_api(app, queue=None, manager=manager, catalog=None, settings=settings)
    rows = TestClient(app).get("/sdapi/v1/upscalers").json()
    assert rows[0] == {"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4.0}
    assert [row["name"] for row in rows] == ["None", "Lanczos", "Nearest", "4x-UltraSharp"]
    assert rows[3] == {"name": "4x-UltraSharp", "model_name": "ESRGAN_4x", "model_path": str(model),
                       "model_url": None, "scale": 4.0}
