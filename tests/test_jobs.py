"""JobQueue and Job: FIFO order, progress, interrupt, failures, saving, history (fake engine)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from sdui.engine.result import Progress, Result
from sdui.jobs import JobQueue, JobState
from sdui.params import GenerationParams


class FakeEngine:
    """A test double for Engine.run: one short sleep per step, honours cancel, can be held or fail."""

    def __init__(self, step_seconds: float = 0.005, hold_at: int | None = None) -> None:
        self.step_seconds = step_seconds
        self.ran: list[str] = []
        self.stopped_at: dict[str, int] = {}
        self.gate = threading.Event()  # cleared: the engine waits before its next step
        self.gate.set()
        self.hold_at = hold_at  # after this step the engine closes the gate itself
        self.step_reached = threading.Event()
        self.held = threading.Event()  # set when the engine closed its gate at hold_at

    def run(self, params, progress=None, cancel=None) -> Result:
        self.ran.append(params.prompt)
        if params.prompt.startswith("fail"):
            raise RuntimeError(f"engine exploded on {params.prompt}")
        total = params.steps * params.batch_count
        step = 0
        for batch in range(params.batch_count):
            for _ in range(params.steps):
                if cancel is not None and cancel.is_set():
                    self.stopped_at[params.prompt] = step
                    return self._result(params, interrupted=True)
                self.gate.wait(5)
                time.sleep(self.step_seconds)
                step += 1
                if progress is not None:
                    progress(Progress(step=step, total=total, preview=Image.new("RGB", (8, 8), (step, 0, 0)),
                                      batch_index=batch, batch_count=params.batch_count))
                if step == self.hold_at:
                    self.hold_at = None
                    self.gate.clear()
                    self.held.set()
                self.step_reached.set()
        self.stopped_at[params.prompt] = step
        return self._result(params, interrupted=False)

    @staticmethod
    def _result(params, interrupted: bool) -> Result:
        seed = params.seed if params.seed >= 0 else 1
        n = params.batch_size * params.batch_count
        return Result(params=params.replace(seed=seed), images=[Image.new("RGB", (8, 8)) for _ in range(n)],
                      seeds=[seed + i for i in range(n)], subseeds=[0] * n,
                      infotexts=[f"{params.prompt}\nSeed: {seed + i}" for i in range(n)], interrupted=interrupted)


class DirWriter:
    """Writes real PNG files, or fails like a full disk."""

    def __init__(self, root: Path, fail: bool = False) -> None:
        self.root, self.fail, self.calls = root, fail, 0

    def save(self, result: Result) -> list[Path]:
        self.calls += 1
        if self.fail:
            raise OSError(28, "No space left on device", str(self.root))
        paths = []
        for image, seed in zip(result.images, result.seeds):
            path = self.root / f"{seed}.png"
            image.save(path)
            paths.append(path)
        return paths


def params(prompt: str, steps: int = 3, **kw) -> GenerationParams:
    return GenerationParams(prompt=prompt, steps=steps, width=64, height=64, seed=kw.pop("seed", 10), **kw)


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def queue(engine):
    q = JobQueue(engine, None)
    q.start()
    yield q
    engine.gate.set()
    q.stop()


def test_no_worker_until_start(engine):
    q = JobQueue(engine)
    assert not q.running
    job = q.submit(params("a"))
    time.sleep(0.05)
    assert job.state is JobState.QUEUED and engine.ran == []
    q.start()
    q.start()  # idempotent
    assert job.wait(5).seeds == [10]
    q.stop()
    assert not q.running


def test_fifo_order_and_results(queue, engine):
    engine.gate.clear()
    jobs = [queue.submit(params(f"p{i}", seed=100 + i)) for i in range(4)]
    engine.gate.set()
    results = [j.wait(5) for j in jobs]
    assert engine.ran == ["p0", "p1", "p2", "p3"]
    assert [r.seeds[0] for r in results] == [100, 101, 102, 103]
    assert all(j.state is JobState.DONE for j in jobs)
    assert [j.id for j in queue.history()] == [j.id for j in jobs]


def test_progress_and_queue_positions(queue, engine):
    engine.hold_at = 3
    engine.gate.clear()
    first = queue.submit(params("first", steps=4, batch_count=2))
    second = queue.submit(params("second"))
    third = queue.submit(params("third"))
    engine.gate.set()
    assert engine.held.wait(5)  # the engine now waits after step 3
    p = first.progress()
    assert p.state is JobState.RUNNING and (p.step, p.total) == (3, 8)
    assert p.textinfo == "Step 3/8" and p.fraction == 3 / 8
    assert second.progress().queue_position == 1 and third.progress().queue_position == 2
    assert second.progress().textinfo == "Waiting in queue: position 1"
    assert queue.current() is first and queue.queued() == [second, third]
    assert queue.active() == [first, second, third]
    engine.gate.set()
    first.wait(5)
    done = first.progress()
    assert (done.step, done.total, done.state, done.eta_seconds) == (8, 8, JobState.DONE, 0.0)
    assert done.preview is not None and done.preview.getpixel((0, 0))[0] == 8
    third.wait(5)
    assert third.progress().queue_position == 0


def test_eta_from_time_per_step():
    engine = FakeEngine(step_seconds=0.05)
    q = JobQueue(engine)
    q.start()
    try:
        submitted = time.monotonic()
        job = q.submit(params("slow", steps=12))
        deadline = submitted + 5
        while job.progress().step < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        p = job.progress()
        read = time.monotonic()
        assert p.step > 1 and p.eta_seconds is not None, p
        # Each step sleeps >= 0.05 s, so the ETA is at least half of that per remaining step; and it can be
        # no more than the remaining steps at the slowest per-step time this test could have seen (bounds
        # that hold on a loaded machine too: no guess at how long a step took).
        slowest_per_step = (read - submitted) / (p.step - 1)
        assert (p.total - p.step) * 0.05 * 0.5 < p.eta_seconds <= (p.total - p.step) * slowest_per_step
        job.wait(5)
    finally:
        q.stop()


def test_interrupt_running_job_stops_within_one_step_and_next_job_runs(queue, engine):
    engine.hold_at = 5
    job = queue.submit(params("long", steps=150))
    after = queue.submit(params("after"))
    assert engine.held.wait(5)
    assert job.progress().step == 5
    job.interrupt()
    engine.gate.set()  # the step under way finishes, then the engine sees the interrupt
    result = job.wait(5)
    assert result.interrupted and job.state is JobState.INTERRUPTED
    assert engine.stopped_at["long"] == 6 and job.progress().textinfo == "Interrupted at step 6/150"
    assert after.wait(5).interrupted is False and after.state is JobState.DONE


def test_interrupted_queued_job_never_runs(queue, engine):
    engine.gate.clear()
    running = queue.submit(params("running"))
    waiting = queue.submit(params("waiting"))
    waiting.interrupt()
    engine.gate.set()
    running.wait(5)
    assert waiting.wait(5).interrupted and waiting.state is JobState.INTERRUPTED
    assert "waiting" not in engine.ran


def test_skip_acts_on_the_current_job(queue, engine):
    job = queue.submit(params("skipme", steps=150))
    assert engine.step_reached.wait(5)
    job.skip()
    assert job.wait(5).interrupted and job.skipped


def test_failure_is_reraised_and_worker_survives(queue, engine):
    bad = queue.submit(params("fail now"))
    good = queue.submit(params("fine", seed=7))
    with pytest.raises(RuntimeError, match="engine exploded on fail now"):
        bad.wait(5)
    assert bad.state is JobState.FAILED and "exploded" in bad.progress().textinfo
    assert good.wait(5).seeds == [7]


def test_invalid_params_refused_at_submit(queue, engine):
    with pytest.raises(ValueError, match="steps must be between 1 and 150; got 0"):
        queue.submit(params("x", steps=0))
    with pytest.raises(ValueError, match="sampler"):
        queue.submit(params("x", sampler="Nope"))
    assert queue.queued() == [] and engine.ran == []


def test_wait_timeout(engine):
    q = JobQueue(engine)
    job = q.submit(params("never started"))
    with pytest.raises(TimeoutError, match=job.id):
        job.wait(0.05)


def test_saves_through_writer(engine, tmp_path):
    writer = DirWriter(tmp_path)
    q = JobQueue(engine, writer)
    q.start()
    try:
        job = q.submit(params("saved", seed=42, batch_size=2))
        job.wait(5)
        assert [p.name for p in job.saved_paths] == ["42.png", "43.png"]
        assert all(p.is_file() for p in job.saved_paths)
        unsaved = q.submit(params("memory only"), save=False)
        unsaved.wait(5)
        assert unsaved.saved_paths == [] and writer.calls == 1
    finally:
        q.stop()


def test_save_error_recorded_result_still_returned(engine, tmp_path):
    q = JobQueue(engine, DirWriter(tmp_path, fail=True))
    q.start()
    try:
        job = q.submit(params("disk full"))
        result = job.wait(5)
        assert len(result.images) == 1 and job.state is JobState.DONE
        assert "No space left on device" in job.save_error and job.saved_paths == []
    finally:
        q.stop()


def test_history_is_bounded_and_get_finds_jobs(engine):
    q = JobQueue(engine, history_size=3)
    q.start()
    try:
        jobs = [q.submit(params(f"h{i}", steps=1)) for i in range(5)]
        for j in jobs:
            j.wait(5)
        # A job is filed in the history just after it finishes: poll for it rather than sleep a fixed time.
        deadline = time.monotonic() + 5
        while q.history()[-1:] != [jobs[-1]] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [j.id for j in q.history()] == [j.id for j in jobs[-3:]]
        assert q.get(jobs[-1].id) is jobs[-1] and q.get(jobs[0].id) is None
    finally:
        q.stop()


def test_stop_interrupts_queued_jobs(engine):
    engine.gate.clear()
    q = JobQueue(engine)
    q.start()
    running = q.submit(params("r"))
    waiting = q.submit(params("w"))
    deadline = time.monotonic() + 5
    while running.state is not JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.state is JobState.RUNNING  # "r" is under way when stop() comes, "w" still queued
    engine.gate.set()
    q.stop()
    assert running.done and waiting.wait(1).interrupted
    assert "w" not in engine.ran
    with pytest.raises(RuntimeError, match="stopped"):
        q.submit(params("late"))


def test_owner_filter(queue, engine):
    engine.gate.clear()
    a = queue.submit(params("a"), owner="alice")
    b = queue.submit(params("b"), owner="bob")
    assert queue.active("bob") == [b] and queue.active("alice") == [a]
    engine.gate.set()
    b.wait(5)
