"""LoRA, embeddings and VAEs over the real API server: the A1111 listing routes, refresh, prompt tags, warnings,
refusals and the `sd_vae` option, with real-format tiny files dropped into the shared stack's folders."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import requests
import torch
from PIL import Image

from tests.networks import embedding_files as ef
from tests.networks import lora_files as lf
from tests.networks import vae_files as vf

SMALL = {"width": 64, "height": 64, "steps": 2}
BASE = {"prompt": "a lake", "seed": 11, **SMALL}


class RunsCode:
    """Unpickled without weights_only, it would create `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def addnet_hash(path: Path) -> str:
    """kohya's addnet hash: sha256 of a safetensors file after its header, first 12 hex digits."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def txt2img(server, **body) -> requests.Response:
    return requests.post(server.api("txt2img"), json={**BASE, **body}, timeout=120)


def generate(server, **body) -> tuple[bytes, dict]:
    """The first image's pixels and the parsed `info` of a txt2img that must succeed."""
    r = txt2img(server, **body)
    assert r.status_code == 200, r.text
    body = r.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    return image.convert("RGB").tobytes(), json.loads(body["info"])


def refused(r: requests.Response, status: int, field: str, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field, body
    for word in words:
        assert word in body["detail"], (word, body["detail"])
    return body


def refresh_all(server) -> None:
    for route in ("refresh-loras", "refresh-embeddings", "refresh-vae"):
        assert requests.post(server.api(route), timeout=30).status_code == 200, route


@pytest.fixture(scope="module")
def tiny():
    from sdui.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline()


@pytest.fixture(scope="module")
def files(api_server, tiny, tmp_path_factory):
    """LoRAs, embeddings and VAEs in the shared stack's folders; removed again (and rescanned) afterwards."""
    from safetensors.torch import load_file, save_file

    from tests.engine.conftest import build_tiny_sdxl

    xl = build_tiny_sdxl()  # its VAE is vae_files.sdxl_vae(): another family's, of the same shapes
    s = api_server.stack.settings
    lora, lyco, emb, vae = s.lora_dir, s.lyco_dir, s.embeddings_dir, s.vae_dir
    paths = {"kohya": lf.write_kohya_lora(lora / "kohya.safetensors", tiny, seed=0),
             "loha": lf.write_loha(lyco / "loha.safetensors", tiny, seed=2),
             "xl": lf.write_kohya_lora(lora / "xl.safetensors", xl, seed=3),
             "oft": lf.write_unsupported(lora / "oft.safetensors", tiny, kind="OFT")}
    styled = lora / "sub" / "styled.safetensors"
    styled.parent.mkdir()
    save_file(load_file(str(lf.write_kohya_lora(tmp_path_factory.mktemp("l") / "s.safetensors", tiny, seed=1))),
              str(styled), metadata={"ss_output_name": "StyledOut", "ss_network_dim": "4",
                                     "ss_tag_frequency": json.dumps({"10_cats": {"cat": 3}})})
    paths["styled"] = styled
    cut = lf.write_kohya_lora(lora / "cut.safetensors", tiny, seed=4)
    cut.write_bytes(cut.read_bytes()[:-100])
    paths["cut"] = cut
    marker = tmp_path_factory.mktemp("marker") / "pwned"
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2), "evil": RunsCode(marker)}, lora / "evil.pt")
    paths["evil"], paths["marker"] = lora / "evil.pt", marker

    same = ef.vectors(2, 32, seed=1)
    paths["frostyglint"] = ef.write_a1111_pt(emb / "frostyglint.pt", same, step=500, checkpoint="a1b2c3d4",
                                             checkpoint_name="tiny")
    (emb / "sub").mkdir()
    paths["mossyhollow"] = ef.write_emb_params_safetensors(emb / "sub" / "mossyhollow.safetensors", same)
    paths["widecloak"] = ef.write_a1111_pt(emb / "widecloak.pt", ef.vectors(1, 768, seed=2))

    paths["ft"] = vf.write_ldm_safetensors(vf.finetuned(tiny.vae, "decoder", noise=0.2), vae / "ft.safetensors")
    paths["xl-vae"] = vf.write_ldm_safetensors(xl.vae.eval(), vae / "xl-vae.safetensors")
    refresh_all(api_server)
    yield paths
    requests.post(api_server.api("options"), json={"sd_vae": "Automatic"}, timeout=30)
    for folder in s.network_dirs:
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    refresh_all(api_server)


@pytest.fixture(scope="module")
def baseline(api_server, files) -> bytes:
    """BASE made with no network at all."""
    image, info = generate(api_server)
    assert info["warnings"] == [] and "Lora hashes" not in info["infotexts"][0]
    return image


# LoRA listing and refresh

def test_loras_lists_name_alias_path_and_metadata(api_server, files):
    r = requests.get(api_server.api("loras"), timeout=30)
    assert r.status_code == 200, r.text
    items = {item["name"]: item for item in r.json()}
    assert {"kohya", "loha", "xl", "oft", "styled", "cut", "evil"} <= set(items)
    assert set(items["kohya"]) == {"name", "alias", "path", "metadata"}
    assert items["kohya"] == {"name": "kohya", "alias": "kohya", "path": str(files["kohya"]),
                              "metadata": {"ss_network_dim": "4"}}
    # A subfolder's file, its alias from ss_output_name and its JSON metadata parsed, as A1111 returns it.
    assert items["styled"] == {"name": "styled", "alias": "StyledOut", "path": str(files["styled"]),
                               "metadata": {"ss_output_name": "StyledOut", "ss_network_dim": "4",
                                            "ss_tag_frequency": {"10_cats": {"cat": 3}}}}
    assert items["loha"]["path"] == str(files["loha"])  # the LyCORIS folder
    assert items["evil"]["metadata"] == {} and items["cut"]["alias"] == "cut"
    assert not files["marker"].exists()


def test_a_new_lora_appears_after_refresh(api_server, files):
    names = lambda: [item["name"] for item in requests.get(api_server.api("loras"), timeout=30).json()]  # noqa: E731
    assert "latecomer" not in names()
    shutil.copy(files["kohya"], api_server.stack.settings.lora_dir / "latecomer.safetensors")
    assert "latecomer" not in names()
    assert requests.post(api_server.api("refresh-loras"), timeout=30).status_code == 200
    assert "latecomer" in names()


# LoRA in prompts

def test_lora_tag_changes_the_image_and_the_infotext_has_its_hash(api_server, files, baseline):
    prompt = "a lake <lora:kohya:0.8>"
    image, info = generate(api_server, prompt=prompt)
    assert image != baseline
    assert info["warnings"] == []
    assert info["prompt"] == prompt
    text = info["infotexts"][0]
    assert text.startswith(prompt + "\n")
    assert f'Lora hashes: "kohya: {addnet_hash(files["kohya"])}"' in text
    assert info["extra_generation_params"]["Lora hashes"] == f"kohya: {addnet_hash(files['kohya'])}"
    # The same request again makes the same image (the fused weights are reused, not added twice).
    assert generate(api_server, prompt=prompt)[0] == image
    # Weight 0 changes nothing; and the weights are back as loaded for the next job without the tag.
    assert generate(api_server, prompt="a lake <lora:kohya:0>")[0] == baseline
    assert generate(api_server)[0] == baseline


def test_lyco_tag_and_negative_prompt_tags_apply(api_server, files, baseline):
    image, info = generate(api_server, prompt="a lake <lyco:loha:1>", negative_prompt="<lora:styled:0.5>")
    assert image != baseline and info["warnings"] == []
    assert info["negative_prompt"] == "<lora:styled:0.5>"
    assert info["infotexts"][0].startswith("a lake <lyco:loha:1>\nNegative prompt: <lora:styled:0.5>\n")
    assert info["extra_generation_params"]["Lora hashes"] == (f"loha: {addnet_hash(files['loha'])}, "
                                                              f"styled: {addnet_hash(files['styled'])}")


def test_a_lora_named_by_its_alias_is_applied_without_a_warning(api_server, files):
    by_name, _ = generate(api_server, prompt="a lake <lora:styled:1>")
    by_alias, info = generate(api_server, prompt="a lake <lora:StyledOut:1>")
    assert by_alias == by_name
    assert info["extra_generation_params"]["Lora hashes"] == f"StyledOut: {addnet_hash(files['styled'])}"
    # README: `<lora:name>` is "its file name without suffix, or its `ss_output_name`": no "not found" warning.
    assert info["warnings"] == []


def test_networks_that_cannot_apply_are_warnings(api_server, files, baseline):
    prompt = "a lake <lora:nosuch:1> <lora:xl:1> <lora:oft:0.7> <hypernet:x:1>"
    image, info = generate(api_server, prompt=prompt)
    warnings = info["warnings"]
    assert len(warnings) == 4, warnings
    for name in ("'nosuch'", "'xl'", "'oft'", "<hypernet:x:1>"):
        assert sum(name in w for w in warnings) == 1, (name, warnings)
    assert any("'nosuch' not found" in w for w in warnings)
    assert any("'xl' is made for another model family" in w for w in warnings)
    assert any("'oft' has LyCORIS OFT layers" in w for w in warnings)
    assert all("not applied" in w for w in warnings)
    assert info["infotexts"][0].startswith(prompt + "\n")
    assert image == baseline  # nothing was applied


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_lora_weight_that_is_not_a_number_is_400(api_server, files, field):
    body = {"prompt": "a lake", field: "x <lora:kohya:abc>"}
    refused(txt2img(api_server, **body), 400, field, "<lora:kohya:abc>", "'abc'")


def test_a_lora_name_with_dots_up_is_400(api_server, files):
    refused(txt2img(api_server, prompt="<lora:../Lora/kohya:1>"), 400, "prompt", "../Lora/kohya", "path")


def test_disable_extra_networks_is_400(api_server, files):
    refused(txt2img(api_server, prompt="<lora:kohya:1>", disable_extra_networks=True), 400, "disable_extra_networks",
            "disable_extra_networks")


def outputs(server) -> list[Path]:
    return sorted(p for p in server.stack.outputs.rglob("*") if p.is_file())


def test_a_pickle_lora_that_runs_code_is_refused_and_never_runs(api_server, files, baseline):
    before = outputs(api_server)
    r = txt2img(api_server, prompt="a lake <lora:evil:1>", save_images=True)
    assert 400 <= r.status_code < 500, r.text
    assert "evil.pt" in r.json()["detail"] and r.json()["field"] == "prompt"
    assert not files["marker"].exists()
    assert outputs(api_server) == before
    assert generate(api_server)[0] == baseline


def test_a_corrupt_lora_is_an_error_naming_the_file(api_server, files, baseline):
    r = txt2img(api_server, prompt="a lake <lora:cut:1>")
    assert r.status_code == 500, r.text  # the file on the server is broken, not the request
    assert "cut.safetensors" in r.json()["detail"] and r.json()["field"] == "prompt"
    assert generate(api_server)[0] == baseline


# Embeddings

def test_embeddings_lists_the_loaded_and_the_skipped(api_server, files):
    r = requests.get(api_server.api("embeddings"), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["loaded"] == {
        "frostyglint": {"step": 500, "sd_checkpoint": "a1b2c3d4", "sd_checkpoint_name": "tiny", "shape": 32,
                        "vectors": 2},
        "mossyhollow": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": 32, "vectors": 2}}
    assert list(body["skipped"]) == ["widecloak"]
    assert body["skipped"]["widecloak"]["reason"] == "made for width 768, this model's text encoder is 32"


def test_a_new_embedding_is_used_after_refresh(api_server, files):
    prompt = "a lake emberveil"
    plain, info = generate(api_server, prompt=prompt)
    assert "TI hashes" not in info["infotexts"][0] and info["warnings"] == []
    path = ef.write_a1111_pt(api_server.stack.settings.embeddings_dir / "emberveil.pt", ef.vectors(3, 32, seed=5))
    assert "emberveil" not in requests.get(api_server.api("embeddings"), timeout=30).json()["loaded"]
    assert generate(api_server, prompt=prompt)[0] == plain
    assert requests.post(api_server.api("refresh-embeddings"), timeout=30).status_code == 200
    assert requests.get(api_server.api("embeddings"), timeout=30).json()["loaded"]["emberveil"]["vectors"] == 3
    image, info = generate(api_server, prompt=prompt)
    assert image != plain
    assert f"TI hashes: \"emberveil: {sha256(path)[:12]}\"" in info["infotexts"][0]


def test_same_vectors_under_other_names_make_the_same_image(api_server, files):
    first, info = generate(api_server, prompt="a lake frostyglint")
    second, info2 = generate(api_server, prompt="a lake mossyhollow")
    assert first == second
    assert info["extra_generation_params"]["TI hashes"] == f"frostyglint: {sha256(files['frostyglint'])[:12]}"
    assert f"TI hashes: \"mossyhollow: {sha256(files['mossyhollow'])[:12]}\"" in info2["infotexts"][0]
    assert info["warnings"] == [] == info2["warnings"]


def test_a_skipped_embedding_named_in_a_prompt_is_a_warning(api_server, files):
    _, info = generate(api_server, prompt="a lake widecloak")
    assert len(info["warnings"]) == 1 and "'widecloak'" in info["warnings"][0]
    assert "width 768" in info["warnings"][0]


# VAE

def test_sd_vae_lists_the_vae_folder_and_the_option_is_automatic(api_server, files):
    r = requests.get(api_server.api("sd-vae"), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == [{"model_name": "ft.safetensors", "filename": str(files["ft"])},
                        {"model_name": "xl-vae.safetensors", "filename": str(files["xl-vae"])}]
    assert requests.get(api_server.api("options"), timeout=30).json()["sd_vae"] == "Automatic"
    late = api_server.stack.settings.vae_dir / "late.safetensors"
    shutil.copy(files["ft"], late)
    try:
        assert len(requests.get(api_server.api("sd-vae"), timeout=30).json()) == 2
        assert requests.post(api_server.api("refresh-vae"), timeout=30).status_code == 200
        listed = requests.get(api_server.api("sd-vae"), timeout=30).json()
        assert "late.safetensors" in [v["model_name"] for v in listed]
    finally:
        late.unlink()
        requests.post(api_server.api("refresh-vae"), timeout=30)


def assert_vae_used(info: dict, path: Path) -> None:
    text = info["infotexts"][0]
    assert f"VAE hash: {sha256(path)[:10]}" in text and f"VAE: {path.name}" in text
    assert info["sd_vae_name"] == path.name and info["sd_vae_hash"] == sha256(path)[:10]


def test_override_settings_sd_vae_applies_to_that_request_only(api_server, files, baseline):
    image, info = generate(api_server, override_settings={"sd_vae": "ft.safetensors"})
    assert image != baseline and info["warnings"] == []
    assert_vae_used(info, files["ft"])
    again, info = generate(api_server)
    assert again == baseline and "VAE" not in info["infotexts"][0] and info["sd_vae_name"] is None
    assert requests.get(api_server.api("options"), timeout=30).json()["sd_vae"] == "Automatic"


def test_options_sd_vae_applies_to_later_requests(api_server, files, baseline):
    override, _ = generate(api_server, override_settings={"sd_vae": "ft.safetensors"})
    try:
        r = requests.post(api_server.api("options"), json={"sd_vae": "ft.safetensors"}, timeout=30)
        assert r.status_code == 200, r.text
        assert requests.get(api_server.api("options"), timeout=30).json()["sd_vae"] == "ft.safetensors"
        image, info = generate(api_server)
        assert image == override
        assert_vae_used(info, files["ft"])
    finally:
        r = requests.post(api_server.api("options"), json={"sd_vae": "Automatic"}, timeout=30)
        assert r.status_code == 200, r.text
    assert requests.get(api_server.api("options"), timeout=30).json()["sd_vae"] == "Automatic"
    assert generate(api_server)[0] == baseline


def test_an_unknown_vae_is_404_and_a_path_400(api_server, files):
    refused(requests.post(api_server.api("options"), json={"sd_vae": "nosuch.safetensors"}, timeout=30), 404,
            "sd_vae", "nosuch.safetensors")
    refused(txt2img(api_server, override_settings={"sd_vae": "nosuch.safetensors"}), 404,
            "override_settings.sd_vae", "nosuch.safetensors")
    for path in ("../VAE/ft.safetensors", str(files["ft"])):
        refused(requests.post(api_server.api("options"), json={"sd_vae": path}, timeout=30), 400, "sd_vae", "path")
        refused(txt2img(api_server, override_settings={"sd_vae": path}), 400, "override_settings.sd_vae", "path")
    assert requests.get(api_server.api("options"), timeout=30).json()["sd_vae"] == "Automatic"


def test_a_vae_of_another_family_is_refused_in_a_request(api_server, files, baseline):
    before = outputs(api_server)
    r = txt2img(api_server, override_settings={"sd_vae": "xl-vae.safetensors"}, save_images=True)
    refused(r, 400, "sd_vae", "xl-vae.safetensors", "does not fit this model")
    assert outputs(api_server) == before
    assert generate(api_server)[0] == baseline


def test_a_vae_of_another_family_is_refused_as_the_option(api_server, files, baseline):
    # As a checkpoint set through /options is loaded there, a VAE that cannot work is refused there, not by every
    # later txt2img.
    try:
        r = requests.post(api_server.api("options"), json={"sd_vae": "xl-vae.safetensors"}, timeout=30)
        refused(r, 400, "sd_vae", "xl-vae.safetensors", "does not fit this model")
        assert requests.get(api_server.api("options"), timeout=30).json()["sd_vae"] == "Automatic"
    finally:
        requests.post(api_server.api("options"), json={"sd_vae": "Automatic"}, timeout=30)
    assert generate(api_server)[0] == baseline
