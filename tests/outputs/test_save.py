"""OutputWriter on real files: naming, metadata in PNG/JPEG/WEBP, concurrency, and disk failures."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import date
from pathlib import Path

import numpy as np
import piexif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sdui.engine.result import Result
from sdui.outputs.infotext import format_infotext, params_from_infotext, parse_infotext
from sdui.outputs.read import read_infotext
from sdui.outputs.save import OutputWriter, next_number
from sdui.params import GenerationParams, Mode

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^(txt2img|img2img|inpaint|outpaint)-images/(\d{4}-\d{2}-\d{2})/(\d{5})-(\d+)\.(png|jpg|webp)$")


def _result(seeds, mode=Mode.TXT2IMG, prompt="a lighthouse, dusk: oil on canvas\nsecond line",
            size=(64, 64)) -> Result:
    params = GenerationParams(prompt=prompt, negative_prompt="blurry, lowres", mode=mode, seed=seeds[0],
                              width=size[0], height=size[1])
    images = [Image.effect_noise(size, 40 + i).convert("RGB") for i in range(len(seeds))]
    infotexts = [format_infotext(params, seed=s, subseed=s, model_name="tiny", model_hash="0123456789")
                 for s in seeds]
    return Result(params=params, images=images, seeds=list(seeds), subseeds=list(seeds), infotexts=infotexts)


def test_png_carries_the_infotext_and_follows_the_pattern(tmp_path):
    result = _result([1234, 1235])
    paths = OutputWriter(tmp_path).save(result)
    assert len(paths) == 2
    for i, path in enumerate(paths):
        match = NAME.match(path.relative_to(tmp_path).as_posix())
        assert match, path
        mode, day, number, seed, ext = match.groups()
        assert (mode, day, int(number), ext) == ("txt2img", date.today().isoformat(), i, "png")
        with Image.open(path) as image:
            assert image.info["parameters"] == result.infotexts[i]
            assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(result.images[i]))
        assert parse_infotext(read_infotext(path))["Seed"] == seed == str(result.seeds[i])
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_jpeg_and_webp_carry_it_in_exif_user_comment(tmp_path, fmt):
    result = _result([77], prompt="naïve 漢字, \"quoted\": yes\nline two")
    (path,) = OutputWriter(tmp_path, fmt=fmt).save(result)
    assert path.suffix == f".{fmt}" and NAME.match(path.relative_to(tmp_path).as_posix())
    assert read_infotext(path) == result.infotexts[0]
    with Image.open(path) as image:
        comment = piexif.load(image.info["exif"])["Exif"][piexif.ExifIFD.UserComment]
        image.load()
    assert comment.startswith(b"UNICODE\x00")  # as A1111 writes it


def test_each_mode_has_its_folder(tmp_path):
    writer = OutputWriter(tmp_path)
    for mode in Mode:
        (path,) = writer.save(_result([5], mode=mode))
        assert path.parent == tmp_path / f"{mode.value}-images" / date.today().isoformat()
        assert path.name == "00000-5.png"


def test_counter_continues_the_highest_number(tmp_path):
    writer = OutputWriter(tmp_path)
    folder = writer.folder_for("txt2img")
    folder.mkdir(parents=True)
    for name in ("00002-1.png", "00007-5.png", "readme.txt", "abc-9.png", ".sdui-0000.tmp"):
        (folder / name).write_bytes(b"keep me")
    assert next_number(folder) == 8
    (path,) = writer.save(_result([42]))
    assert path.name == "00008-42.png"
    assert (folder / "00007-5.png").read_bytes() == b"keep me"


def test_eight_threads_save_two_hundred_distinct_files(tmp_path):
    writers = [OutputWriter(tmp_path), OutputWriter(tmp_path)]  # two writers: the file lock must hold too
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(25):
                writers[thread % 2].save(_result([thread * 1000 + i], size=(64, 64)))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    folder = writers[0].folder_for("txt2img")
    names = sorted(os.listdir(folder))
    assert len(names) == 200 and [int(n[:5]) for n in names] == list(range(200))
    seeds = set()
    for name in names:
        with Image.open(folder / name) as image:
            image.load()
            assert image.size == (64, 64)
            assert parse_infotext(image.info["parameters"])["Seed"] == name[6:-4]
        seeds.add(int(name[6:-4]))
    assert seeds == {t * 1000 + i for t in range(8) for i in range(25)}


_CHILD_SAVE_MANY = r"""
import sys
from pathlib import Path
from PIL import Image
from sdui.engine.result import Result
from sdui.params import GenerationParams
from sdui.outputs.save import OutputWriter
writer, base = OutputWriter(Path(sys.argv[1])), int(sys.argv[2])
for i in range(15):
    seed = base + i
    image = Image.effect_noise((64, 64), 50).convert("RGB")
    writer.save(Result(params=GenerationParams(), images=[image], seeds=[seed], infotexts=[f"p\nSeed: {seed}"]))
"""


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"}


def test_three_processes_never_clash(tmp_path):
    children = [subprocess.Popen([sys.executable, "-c", _CHILD_SAVE_MANY, str(tmp_path), str(base)],
                                 env=_child_env(), stderr=subprocess.PIPE, text=True)
                for base in (10_000, 20_000, 30_000)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    folder = OutputWriter(tmp_path).folder_for("txt2img")
    names = sorted(os.listdir(folder))
    assert [int(n[:5]) for n in names] == list(range(45))
    assert {int(n[6:-4]) for n in names} == {b + i for b in (10_000, 20_000, 30_000) for i in range(15)}


_CHILD_FAILING_SAVE = r"""
import json, os, resource, signal, sys
from pathlib import Path
from PIL import Image
from sdui.engine.result import Result
from sdui.params import GenerationParams
from sdui.outputs.save import OutputWriter, SaveError
root, size_limit, uid = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if size_limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write(), as a full disk gives ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (size_limit, size_limit))
if uid >= 0:
    os.setgid(uid)
    os.setuid(uid)
small = Image.new("RGB", (128, 128), "red")
noisy = Image.effect_noise((128, 128), 90).convert("RGB")
result = Result(params=GenerationParams(), images=[small, noisy], seeds=[1, 2], infotexts=["a\nSeed: 1", "b\nSeed: 2"])
try:
    OutputWriter(root).save(result)
    print(json.dumps({"error": None}))
except SaveError as e:
    print(json.dumps({"error": str(e), "errno": e.errno, "saved": [str(p) for p in e.saved],
                      "images": [im.size for im in result.images], "is_oserror": isinstance(e, OSError)}))
"""


def _run_failing_save(root: Path, size_limit: int = 0, uid: int = -1) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD_FAILING_SAVE, str(root), str(size_limit), str(uid)],
                         env=_child_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_disk_full_gives_a_save_error_and_keeps_the_images(tmp_path):
    report = _run_failing_save(tmp_path, size_limit=8192)
    assert report["error"] and report["is_oserror"]
    assert "Could not save image 2 of 2" in report["error"] and "full" in report["error"]
    assert report["images"] == [[128, 128], [128, 128]]
    (first,) = [Path(p) for p in report["saved"]]
    assert first.name == "00000-1.png" and read_infotext(first) == "a\nSeed: 1"
    assert sorted(os.listdir(first.parent)) == ["00000-1.png"]  # no half-written image, no temp file


def test_read_only_outputs_dir_gives_a_save_error():
    # Root ignores file modes, so the child drops to "nobody" first; the folder must be reachable for it.
    base = Path(tempfile.mkdtemp(prefix="sdui-readonly-"))
    try:
        base.chmod(0o755)
        outputs = base / "outputs"
        outputs.mkdir(mode=0o555)
        outputs.chmod(0o555)
        report = _run_failing_save(outputs, uid=65534 if os.geteuid() == 0 else -1)
        assert "Could not save image 1 of 2" in report["error"] and "not writable" in report["error"]
        assert "--outputs-dir" in report["error"] and report["saved"] == []
        assert report["images"] == [[128, 128], [128, 128]]
        assert os.listdir(outputs) == []
    finally:
        (base / "outputs").chmod(0o755)
        shutil.rmtree(base)


def test_disabled_writer_saves_nothing(tmp_path):
    root = tmp_path / "outputs"
    assert OutputWriter(root, enabled=False).save(_result([1])) == []
    assert not root.exists()
    assert OutputWriter(root).save(Result(params=GenerationParams())) == []


def test_bad_format_is_refused():
    with pytest.raises(ValueError, match=r"save format must be one of png, jpg, webp; got 'gif'"):
        OutputWriter(Path("x"), fmt="gif")
    assert OutputWriter(Path("x"), fmt="JPEG").fmt == "jpg"


def test_jpeg_too_long_for_exif_gets_a_text_file_beside_it(tmp_path):
    result = _result([9], prompt="long prompt, " * 4000)
    (path,) = OutputWriter(tmp_path, fmt="jpg").save(result)
    with Image.open(path) as image:
        image.load()
    assert path.with_suffix(".txt").read_text(encoding="utf-8") == result.infotexts[0]
    assert read_infotext(path) is None


def test_real_tiny_pipeline_image_round_trips(tiny_pipeline, tmp_path):
    import torch

    params = GenerationParams(prompt="a red apple, studio light", negative_prompt="blurry", sampler="DPM++ 2M",
                              schedule="Karras", steps=2, cfg_scale=5.5, width=64, height=64, seed=7)
    out = tiny_pipeline(params.prompt, negative_prompt=params.negative_prompt, num_inference_steps=params.steps,
                        guidance_scale=params.cfg_scale, width=64, height=64,
                        generator=torch.Generator().manual_seed(params.seed))
    info = format_infotext(params, seed=7, subseed=7, model_name="sdui-tiny-demo", model_hash="")
    result = Result(params=params, images=out.images, seeds=[7], subseeds=[7], infotexts=[info])
    (path,) = OutputWriter(tmp_path).save(result)
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), np.asarray(out.images[0]))
    back = params_from_infotext(read_infotext(path))
    assert back == params.replace(checkpoint="sdui-tiny-demo")


_TEXT = st.text(st.one_of(st.characters(blacklist_categories=("Cs", "Cc")), st.sampled_from("\n\t\x1b,:\"{")),
                min_size=1, max_size=120)


@settings(max_examples=40, deadline=None, database=None)
@given(prompt=_TEXT, negative=_TEXT, fmt=st.sampled_from(["png", "jpg", "webp"]))
def test_any_text_survives_the_file(prompt, negative, fmt):
    with tempfile.TemporaryDirectory() as root:
        params = GenerationParams(prompt=prompt, negative_prompt=negative, width=64, height=64)
        info = format_infotext(params, seed=3, subseed=3, model_name="m", model_hash="")
        image = Image.new("RGB", (64, 64), "navy")
        (path,) = OutputWriter(Path(root), fmt=fmt).save(
            Result(params=params, images=[image], seeds=[3], infotexts=[info]))
        assert read_infotext(path) == info
