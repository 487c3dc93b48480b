"""The UI's job plumbing in run.py: Interrupt stops only the session's own jobs; finished jobs fill the gallery."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sdui.jobs import JobQueue
from sdui.params import GenerationParams
from sdui.ui.run import interrupt_own


class NeverRuns:
    """The queue is never started in these tests: jobs stay queued, the engine is never called."""

    def run(self, params, progress=None, cancel=None):
        raise AssertionError("no job should run here")


@pytest.fixture
def setup():
    queue = JobQueue(NeverRuns())
    jobs = {owner: queue.submit(GenerationParams(prompt=owner, width=64, height=64), owner=owner)
            for owner in ("alice", "bob")}
    return SimpleNamespace(queue=queue), jobs


def interrupted(jobs: dict) -> set[str]:
    return {owner for owner, job in jobs.items() if job.interrupted}


def test_interrupt_stops_only_the_sessions_own_jobs(setup):
    ctx, jobs = setup
    interrupt_own(ctx, jobs["alice"].id, "alice")
    assert interrupted(jobs) == {"alice"}


def test_a_foreign_job_id_is_not_interrupted(setup):
    ctx, jobs = setup
    interrupt_own(ctx, jobs["bob"].id, "alice")  # alice's page sends bob's job id
    assert interrupted(jobs) == {"alice"}


def test_a_session_without_id_or_jobs_stops_nothing(setup):
    ctx, jobs = setup
    interrupt_own(ctx, jobs["bob"].id, "")
    interrupt_own(ctx, None, "carol")
    assert interrupted(jobs) == set()


def finished_items(saved_paths: list[str]):
    from PIL import Image

    from sdui.engine.result import Result
    from sdui.ui.run import _finished

    params = GenerationParams(prompt="kept", width=64, height=64)
    result = Result(params=params, images=[Image.new("RGB", (8, 8)) for _ in range(2)], seeds=[5, 6],
                    subseeds=[0, 0], infotexts=["kept\nSeed: 5", "kept\nSeed: 6"],
                    warnings=["LoRA 'gone' not found in the LoRA folders (by name): not applied"])
    job = SimpleNamespace(wait=lambda: result, save_error=None, saved_paths=saved_paths, id="j1")
    results = SimpleNamespace(progress="progress", preview="preview", gallery="gallery", infotext="infotext",
                              data="data", warnings="warnings", selected="selected", job="job", shown="shown",
                              saved="saved")
    return _finished(job, results)


def test_unsaved_images_reach_the_gallery_with_their_infotext():
    # --no-save (or a failed save): the downloads must still carry the parameters chunk.
    update = finished_items([])
    assert [image.info.get("parameters") for image in update["gallery"]] == ["kept\nSeed: 5", "kept\nSeed: 6"]
    assert update["data"]["seeds"] == [5, 6] and update["infotext"] == "kept\nSeed: 5"


def test_saved_images_reach_the_gallery_as_their_files():
    update = finished_items(["/out/00001-5.png", "/out/00002-6.png"])
    assert update["gallery"] == ["/out/00001-5.png", "/out/00002-6.png"]
    assert update["data"]["paths"] == update["gallery"]


def test_what_a_job_did_not_apply_is_shown_and_returned():
    update = finished_items([])
    assert "LoRA &#x27;gone&#x27; not found" in update["warnings"]
    assert update["data"]["warnings"] == ["LoRA 'gone' not found in the LoRA folders (by name): not applied"]
