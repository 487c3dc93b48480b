"""paste_infotext: the models an infotext names, found here by name or hash, or named in the warnings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sdui.models.errors import ModelNotFound
from sdui.outputs.paste import paste_infotext
from sdui.params import GenerationParams, Mode


@dataclass
class Item:
    title: str = ""
    rel: str = ""


class Catalog:
    def __init__(self, **titles: str) -> None:
        self.titles = titles  # name or short hash -> title

    def find(self, wanted: str) -> Item:
        if wanted not in self.titles:
            raise ModelNotFound(f"no checkpoint named {wanted!r}", wanted)
        return Item(title=self.titles[wanted])


class Folder:
    def __init__(self, by_name: dict[str, str] | None = None, by_hash: dict[str, str] | None = None) -> None:
        self.by_name, self.by_hash = by_name or {}, by_hash or {}

    def find(self, name: str) -> Item | None:
        return Item(rel=self.by_name[name]) if name in self.by_name else None

    def find_by_hash(self, short_hash: str) -> Item | None:
        return Item(rel=self.by_hash[short_hash]) if short_hash in self.by_hash else None


class Upscalers:
    def __init__(self, *names: str) -> None:
        self.names = names

    def find(self, name: str):
        return name if name in self.names else None


class Networks:
    def __init__(self, loras: dict[str, str], embeddings: Folder) -> None:
        self.loras, self.embeddings = loras, embeddings

    def find_lora(self, name: str, short_hash: str | None = None):
        return (self.loras.get(name) or self.loras.get(short_hash or "")), False


TEXT = ("a castle <lora:add_detail:0.5>\nNegative prompt: EasyNegative\nSteps: 25, Sampler: Euler a, CFG scale: 7, "
        "Seed: 5, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned, VAE hash: 735e4c3a44, VAE: mse.pt, "
        "Denoising strength: 0.5, Clip skip: 2, Hires upscale: 2, Hires upscaler: 4x-UltraSharp, "
        "Hires checkpoint: elsewhere, Lora hashes: \"add_detail: 7c6bad76eb54\", "
        "TI hashes: \"EasyNegative: c74b4e810b03\"")


def paste(text=TEXT, base=None, **kw):
    args = {"catalog": Catalog(), "vaes": Folder(), "upscalers": Upscalers(), "networks": None, **kw}
    return paste_infotext(text, base or GenerationParams(checkpoint="tiny [abc]", vae="Automatic"), **args)


def test_installed_models_are_found_by_name_and_nothing_is_reported():
    pasted = paste(catalog=Catalog(**{"v1-5-pruned": "v1-5-pruned.safetensors [6ce0161689]",
                                      "elsewhere": "elsewhere.ckpt [0000000000]"}),
                   vaes=Folder({"mse.pt": "mse.pt"}), upscalers=Upscalers("4x-UltraSharp"),
                   networks=Networks({"add_detail": "add_detail.safetensors"},
                                     Folder({"EasyNegative": "EasyNegative.pt"})))
    p = pasted.params
    assert pasted.warnings == []
    assert (p.checkpoint, p.vae, p.hr_checkpoint, p.hr_upscaler) == (
        "v1-5-pruned.safetensors [6ce0161689]", "mse.pt", "elsewhere.ckpt [0000000000]", "4x-UltraSharp")
    assert (p.clip_skip, p.steps, p.width, p.height, p.enable_hr) == (2, 25, 512, 768, True)
    assert pasted.mode is Mode.TXT2IMG and {"checkpoint", "vae", "clip_skip", "steps"} <= pasted.fields


def test_models_found_by_hash_say_so():
    pasted = paste(catalog=Catalog(**{"6ce0161689": "renamed.safetensors [6ce0161689]"}),
                   vaes=Folder(by_hash={"735e4c3a44": "other-name.pt"}), upscalers=Upscalers("4x-UltraSharp"))
    assert pasted.params.checkpoint == "renamed.safetensors [6ce0161689]" and pasted.params.vae == "other-name.pt"
    assert pasted.warnings[:2] == [
        "Model: 'v1-5-pruned' is not installed by that name: used 'renamed.safetensors [6ce0161689]', which has its "
        "hash 6ce0161689",
        "VAE: 'mse.pt' is not installed by that name: used 'other-name.pt', which has its hash"]


def test_every_missing_model_is_named_with_what_is_used_instead():
    pasted = paste(networks=Networks({}, Folder()))
    assert pasted.params.checkpoint == "tiny [abc]" and pasted.params.vae == "Automatic"
    assert pasted.params.hr_checkpoint == "" and pasted.params.hr_upscaler == "Lanczos"
    assert pasted.warnings == [
        "Model, Model hash: 'v1-5-pruned' [6ce0161689] is not installed: used 'tiny [abc]' instead",
        "VAE, VAE hash: 'mse.pt' [735e4c3a44] is not in the VAE folder: used the SD VAE setting 'Automatic' instead",
        "Hires checkpoint: 'elsewhere' is not installed: the hires pass uses the first pass's checkpoint",
        "Hires upscaler: '4x-UltraSharp' is not installed: used Lanczos instead (put the model into models/ESRGAN, "
        "RealESRGAN, SwinIR or DAT)",
        "Lora hashes: LoRA 'add_detail' [7c6bad76eb54] is not installed (by name or hash): its <lora:...> tag will "
        "not be applied",
        "TI hashes: embedding 'EasyNegative' [c74b4e810b03] is not installed: its name stays plain words in the prompt",
    ]


def test_civitai_hashes_find_the_model():
    text = 'x\nSteps: 2, Sampler: Euler, Seed: 1, Model: gone, Hashes: {"model": "aaaabbbbcc", "vae": "1234567890"}'
    pasted = paste(text, catalog=Catalog(aaaabbbbcc="found [aaaabbbbcc]"))
    assert pasted.params.checkpoint == "found [aaaabbbbcc]"
    assert pasted.warnings == ["Model: 'gone' is not installed by that name: used 'found [aaaabbbbcc]', which has its "
                               "hash aaaabbbbcc"]


def test_the_mode_it_came_from_and_the_tab_it_goes_to():
    text = "x\nSteps: 2, Sampler: Euler, Seed: 1, Denoising strength: 0.4, Mask blur: 4"
    pasted = paste(text, GenerationParams(mode=Mode.INPAINT))
    assert pasted.mode is Mode.INPAINT and pasted.params.mode is Mode.INPAINT and pasted.warnings == []


@pytest.mark.parametrize("text", ["", "   \n "])
def test_an_empty_infotext_is_a_clear_error(text):
    with pytest.raises(ValueError, match="the infotext is empty"):
        paste(text)


REFINED = ("x\nSteps: 24, Sampler: Euler, Seed: 1, Size: 64x64, Model: tiny, Refiner: sd_xl_refiner_1.0 [7440042bbd], "
           "Refiner switch at: 0.7")


def test_the_refiner_is_found_by_name_then_by_hash():
    by_name = paste(REFINED, catalog=Catalog(tiny="tiny [abc]", **{"sd_xl_refiner_1.0": "refiner.safetensors [744]"}))
    assert by_name.warnings == [] and by_name.params.refiner_checkpoint == "refiner.safetensors [744]"
    assert by_name.params.refiner_switch_at == 0.7 and "refiner_checkpoint" in by_name.fields
    by_hash = paste(REFINED, catalog=Catalog(tiny="tiny [abc]", **{"7440042bbd": "renamed [7440042bbd]"}))
    assert by_hash.params.refiner_checkpoint == "renamed [7440042bbd]"
    assert by_hash.warnings == ["Refiner: 'sd_xl_refiner_1.0' is not installed by that name: used 'renamed "
                                "[7440042bbd]', which has its hash 7440042bbd"]


def test_a_missing_refiner_is_named_and_the_picture_is_made_without_one():
    pasted = paste(REFINED, GenerationParams(refiner_checkpoint="mine"), catalog=Catalog(tiny="tiny [abc]"))
    assert pasted.params.refiner_checkpoint == ""
    assert pasted.warnings == ["Refiner, Refiner switch at: 'sd_xl_refiner_1.0 [7440042bbd]' is not installed: the "
                               "picture is made without a refiner"]
    same = paste(REFINED.replace("Model: tiny", "Model: sd_xl_refiner_1.0"),
                 catalog=Catalog(**{"sd_xl_refiner_1.0": "refiner.safetensors [744]"}))
    assert same.warnings == ["Refiner: 'sd_xl_refiner_1.0 [7440042bbd]' is the picture's own checkpoint: there is "
                             "nothing to switch to"]
