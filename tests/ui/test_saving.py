"""💾 Save (once, also with --no-save) and 📂 Open outputs folder (only locally, opener injected): saving.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from sdui.jobs import JobQueue
from sdui.outputs.read import read_infotext
from sdui.outputs.save import OutputWriter
from sdui.settings import Settings
from sdui.ui import saving
from sdui.ui.live import live_info
from sdui.ui.saving import FolderRefused, NothingToSave, open_outputs, save_job
from tests.test_jobs import FakeEngine, params


@pytest.fixture
def no_save_queue(tmp_path):
    """A running queue whose writer is off, as with --no-save."""
    queue = JobQueue(FakeEngine(), OutputWriter(tmp_path / "outputs", enabled=False))
    queue.start()
    yield queue
    queue.stop()


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.png"))


def test_save_writes_an_unsaved_job_once_with_its_infotext(no_save_queue, tmp_path):
    job = no_save_queue.submit(params("keep me", seed=77), owner="alice")
    job.wait(5)
    assert job.saved_paths == [] and _files(tmp_path) == []  # --no-save: nothing written by the job
    paths, new = save_job(no_save_queue, job.id, "alice")
    assert new and _files(tmp_path) == paths and len(paths) == 1
    with Image.open(paths[0]) as image:
        assert read_infotext(image) == "keep me\nSeed: 77"
    again, new = save_job(no_save_queue, job.id, "alice")
    assert not new and again == paths and _files(tmp_path) == paths  # "already saved": no second copy


def test_save_of_a_saved_job_reports_its_files(tmp_path):
    queue = JobQueue(FakeEngine(), OutputWriter(tmp_path / "outputs"))
    queue.start()
    try:
        job = queue.submit(params("saved by the job", seed=5), owner="alice")
        job.wait(5)
        assert save_job(queue, job.id, "alice") == (job.saved_paths, False)
        assert len(_files(tmp_path)) == 1
    finally:
        queue.stop()


@pytest.mark.parametrize("job_id, owner, message", [
    (None, "alice", "generate an image first"),
    ("unknown", "alice", "no longer kept in memory"),
    ("first", "bob", "no longer kept in memory"),  # another session's job is not theirs to save
])
def test_save_with_nothing_to_save_says_why(no_save_queue, job_id, owner, message):
    job = no_save_queue.submit(params("alice's"), owner="alice")
    job.wait(5)
    with pytest.raises(NothingToSave, match=message):
        save_job(no_save_queue, job.id if job_id == "first" else job_id, owner)


def test_save_of_a_running_job_waits_for_its_image(tmp_path):
    engine = FakeEngine()
    engine.gate.clear()
    queue = JobQueue(engine, OutputWriter(tmp_path, enabled=False))
    queue.start()
    try:
        job = queue.submit(params("slow"), owner="alice")
        with pytest.raises(NothingToSave, match="still running"):
            save_job(queue, job.id, "alice")
    finally:
        engine.gate.set()
        queue.stop()


@pytest.fixture
def opened(monkeypatch) -> list[Path]:
    """Replaces the OS opener: no file browser ever starts in tests."""
    calls: list[Path] = []
    monkeypatch.setattr(saving, "open_in_file_browser", calls.append)
    return calls


def test_open_folder_locally_uses_the_opener(tmp_path, opened):
    message = open_outputs(Settings.for_data_dir(tmp_path), tmp_path, "127.0.0.1")
    assert opened == [tmp_path] and str(tmp_path) in message


@pytest.mark.parametrize("flags, host", [({"listen": True}, "127.0.0.1"), ({"share": True}, "127.0.0.1"),
                                         ({}, "192.168.1.20"), ({}, None)])
def test_open_folder_is_refused_when_served_to_others(tmp_path, opened, flags, host):
    with pytest.raises(FolderRefused, match="same machine") as refused:
        open_outputs(Settings.for_data_dir(tmp_path, **flags), tmp_path, host)
    assert str(tmp_path) in str(refused.value) and opened == []


def test_open_folder_without_folder_or_opener_gives_the_path(tmp_path, monkeypatch, opened):
    missing = tmp_path / "not yet"
    assert "does not exist" in open_outputs(Settings.for_data_dir(tmp_path), missing, "::1") and opened == []

    def no_opener(folder: Path) -> None:
        raise OSError("no `xdg-open` command on this machine")

    monkeypatch.setattr(saving, "open_in_file_browser", no_opener)
    message = open_outputs(Settings.for_data_dir(tmp_path), tmp_path, "localhost")
    assert "xdg-open" in message and str(tmp_path) in message


def test_live_hint_names_few_step_settings_for_lcm_turbo_lightning_models():
    assert "In use" not in live_info("sd15 [abc123]", "a cat")
    assert "Turbo: sampler Euler a" in live_info("sdxl_turbo_1.0 [abc]", "a cat")
    assert "LCM: sampler LCM" in live_info("sd15", "a cat <lora:LCM_LoRA_sd15:1>")
    assert "Lightning" in live_info(None, "<lora:sdxl_lightning_4step:0.8>, a dog")
