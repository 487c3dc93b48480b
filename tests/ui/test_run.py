"""The UI's Interrupt button (`interrupt_own`): a session stops its own jobs and never anybody else's."""

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
