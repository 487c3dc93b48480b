"""JobQueue.submit(replace=key): live mode's supersede (fake engine, no model)."""

from __future__ import annotations

import threading
import time

import pytest

from sdui.jobs import JobQueue, JobState
from tests.test_jobs import FakeEngine, params

LIVE = "live:txt2img"


@pytest.fixture
def engine():
    return FakeEngine(hold_at=1)  # the first job holds after its first step until the test opens the gate


@pytest.fixture
def queue(engine):
    q = JobQueue(engine, None)
    q.start()
    yield q
    engine.gate.set()
    q.stop()


def waiting(queue: JobQueue, owner: str) -> list:
    return [job for job in queue.queued() if job.owner == owner]


def test_a_running_live_job_is_interrupted_and_the_newest_runs(queue, engine):
    first = queue.submit(params("first", steps=50), owner="alice", save=False, replace=LIVE)
    assert engine.held.wait(5)
    second = queue.submit(params("second"), owner="alice", save=False, replace=LIVE)
    assert first.superseded and first.interrupted and not second.superseded
    engine.gate.set()
    assert first.wait(5).interrupted and first.state is JobState.INTERRUPTED
    assert engine.stopped_at["first"] <= 2  # it stopped within one step of being superseded
    assert second.wait(5).interrupted is False and second.state is JobState.DONE


def test_a_queued_live_job_is_dropped_and_never_runs(queue, engine):
    running = queue.submit(params("running"), owner="alice", save=False, replace=LIVE)
    assert engine.held.wait(5)
    queued = queue.submit(params("queued"), owner="alice", save=False, replace=LIVE)
    newest = queue.submit(params("newest"), owner="alice", save=False, replace=LIVE)
    # Dropped at once, not when the worker reaches it: it is finished and filed in the history already.
    assert queued.done and queued.state is JobState.INTERRUPTED and queued.superseded
    assert queue.get(queued.id) is queued and waiting(queue, "alice") == [newest]
    engine.gate.set()
    newest.wait(5)
    assert running.state is JobState.INTERRUPTED  # superseded while running
    assert "queued" not in engine.ran and engine.ran[-1] == "newest"


def test_an_owner_holds_at_most_one_running_and_one_waiting_job(queue, engine):
    seen_waiting, seen_running = [], []
    queue.submit(params("change 0", steps=50), owner="alice", save=False, replace=LIVE)
    assert engine.held.wait(5)
    engine.gate.set()
    engine.step_seconds = 0.01  # each job takes a few steps' time: changes arrive while one runs
    for i in range(1, 30):
        queue.submit(params(f"change {i}", steps=20), owner="alice", save=False, replace=LIVE)
        active = queue.active("alice")
        seen_running.append(sum(job.state is JobState.RUNNING for job in active))
        seen_waiting.append(len(waiting(queue, "alice")))
        time.sleep(0.003)
    assert max(seen_waiting) == 1 and max(seen_running) <= 1
    last = queue.active("alice")[-1]
    last.wait(5)
    assert engine.ran[-1] == "change 29" and last.state is JobState.DONE


def test_another_owners_job_keeps_its_place_and_runs(queue, engine):
    queue.submit(params("alice 1"), owner="alice", save=False, replace=LIVE)
    assert engine.held.wait(5)
    alice_waiting = queue.submit(params("alice 2"), owner="alice", save=False, replace=LIVE)
    bob = queue.submit(params("bob"), owner="bob")
    alice_newest = queue.submit(params("alice 3"), owner="alice", save=False, replace=LIVE)
    # Alice's newest change takes her dropped job's place; Bob stays second in the line, not pushed back.
    assert queue.queued() == [alice_newest, bob] and alice_waiting.superseded
    assert not bob.interrupted and queue.position(bob) == 2
    engine.gate.set()
    assert bob.wait(5).interrupted is False and bob.state is JobState.DONE
    alice_newest.wait(5)
    assert engine.ran == ["alice 1", "alice 3", "bob"]


def test_supersede_needs_the_same_owner_and_key(queue, engine):
    first = queue.submit(params("alice live"), owner="alice", save=False, replace=LIVE)
    assert engine.held.wait(5)
    others = [queue.submit(params("bob live"), owner="bob", save=False, replace=LIVE),
              queue.submit(params("alice img2img"), owner="alice", save=False, replace="live:img2img"),
              queue.submit(params("alice generate"), owner="alice")]
    assert not first.interrupted and not any(job.interrupted for job in others)
    assert queue.queued() == others
    engine.gate.set()
    for job in [first, *others]:
        assert job.wait(5).interrupted is False


def test_concurrent_submits_leave_one_waiting_job(queue, engine):
    queue.submit(params("running"), owner="alice", save=False, replace=LIVE)
    assert engine.held.wait(5)
    start = threading.Barrier(8)

    def change(i: int) -> None:
        start.wait()
        queue.submit(params(f"change {i}"), owner="alice", save=False, replace=LIVE)

    threads = [threading.Thread(target=change, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waiting(queue, "alice")) == 1
    assert sum(job.superseded for job in queue.history()) == 7  # the other seven were dropped, none lost
