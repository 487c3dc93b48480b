"""Saving Extras results: `extras-images/` without a date folder, A1111's names and chunks, never overwriting."""

from __future__ import annotations

import piexif
import piexif.helper
from PIL import Image

from sdui.engine.postprocess import ExtrasParams, ExtrasResult
from sdui.outputs.read import read_infotext
from sdui.outputs.save import OutputWriter, next_extras_number, source_file_name

PARAMETERS = "a fox\nNegative prompt: blur\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 8x8"
POSTPROCESSING = "Postprocess upscale by: 2, Postprocess upscaler: Nearest"


def result(*names: str | None, parameters: str | None = PARAMETERS) -> ExtrasResult:
    n = len(names)
    return ExtrasResult(params=ExtrasParams(images=()), images=[Image.new("RGB", (16, 16), (9, 8, 7))] * n,
                        infotexts=[POSTPROCESSING] * n, parameters=[parameters] * n, names=list(names))


def test_a_single_picture_gets_the_next_number_and_a1111s_three_chunks(tmp_path):
    writer = OutputWriter(tmp_path)
    folder = tmp_path / "extras-images"
    folder.mkdir()
    (folder / "00004.png").write_bytes(b"an older result")
    (folder / "00007-cat.png").write_bytes(b"a batch one")
    [path] = writer.save_extras(result(None))
    assert path == folder / "00008.png"
    assert (folder / "00004.png").read_bytes() == b"an older result"
    with Image.open(path) as image:
        assert list(image.text.items()) == [("parameters", PARAMETERS), ("postprocessing", POSTPROCESSING),
                                            ("extras", POSTPROCESSING)]
    assert read_infotext(path) == PARAMETERS  # PNG info still reads the source's recipe
    assert writer.save_extras(result(None)) == [folder / "00009.png"]


def test_batch_pictures_keep_their_names_and_number_on_instead_of_overwriting(tmp_path):
    writer = OutputWriter(tmp_path)
    first = writer.save_extras(result("cat", "dog"))
    assert [p.name for p in first] == ["cat.png", "dog.png"]
    before = first[0].read_bytes()
    again = writer.save_extras(result("cat", "cat"))
    assert [p.name for p in again] == ["cat-0000.png", "cat-0001.png"]
    assert first[0].read_bytes() == before


def test_a_source_without_infotext_gets_the_postprocessing_chunks_only(tmp_path):
    [path] = OutputWriter(tmp_path).save_extras(result(None, parameters=None))
    with Image.open(path) as image:
        assert list(image.text) == ["postprocessing", "extras"]


def test_jpeg_carries_the_source_infotext_as_its_exif_comment(tmp_path):
    [path] = OutputWriter(tmp_path, fmt="jpg").save_extras(result("fox"))
    assert path.name == "fox.jpg"
    with Image.open(path) as image:
        comment = piexif.load(image.info["exif"])["Exif"][piexif.ExifIFD.UserComment]
    assert piexif.helper.UserComment.load(comment) == PARAMETERS


def test_saving_off_writes_nothing(tmp_path):
    assert OutputWriter(tmp_path, enabled=False).save_extras(result(None)) == []
    assert not (tmp_path / "extras-images").exists()


def test_source_names_cannot_leave_the_folder_or_hold_reserved_characters():
    assert source_file_name("../../etc/passwd") == "passwd"
    assert source_file_name("..\\..\\boot") == "boot"
    assert source_file_name('a:b*c?"d<e>|f\x00') == "a_b_c__d_e__f_"
    assert source_file_name("...") is None and source_file_name("") is None and source_file_name(None) is None
    assert len(source_file_name("x" * 500)) == 120


def test_next_extras_number_follows_a1111s_sequence_rule(tmp_path):
    assert next_extras_number(tmp_path / "missing") == 0
    for name in ("00002.png", "00010-x.png", "cat.png", "cat-0003.png", "cat-dog-0009.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert next_extras_number(tmp_path) == 11
    assert next_extras_number(tmp_path, "cat") == 4
