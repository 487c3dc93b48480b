"""The one FIFO job queue in front of the device, shared by the UI and the API.

A Job carries its params, state, progress and its own interrupt; one worker thread (started by
`JobQueue.start()`, never at import) runs the jobs one at a time through the Engine (Extras jobs through
the postprocess runner with the manager's upscalers) and the OutputWriter. No Gradio, HTTP or diffusers here.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PIL import Image

from sdui.engine.postprocess import ExtrasParams, ExtrasResult, check_upscalers, run_extras
from sdui.engine.result import Progress, Result
from sdui.params import GenerationParams
from sdui.scripts.xyz import PlotParams, PlotResult, check_names, run_plot, save_plot

if TYPE_CHECKING:
    from sdui.engine.generate import Engine
    from sdui.outputs.save import OutputWriter

log = logging.getLogger(__name__)

HISTORY_SIZE = 64


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


FINISHED = (JobState.DONE, JobState.INTERRUPTED, JobState.FAILED)


@dataclass(frozen=True)
class JobProgress:
    """A snapshot of one job: steps over the whole job, ETA, latest preview, place in the queue."""

    step: int
    total: int
    eta_seconds: float | None
    preview: Image.Image | None
    state: JobState
    queue_position: int  # 0 = running or finished, 1 = next to run, ...
    textinfo: str
    batch_index: int = 0
    batch_count: int = 1

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


class Job:
    """One generation (or Extras) request in the queue; created by `JobQueue.submit`."""

    def __init__(self, params: GenerationParams | ExtrasParams, owner: str, save: bool,
                 position: Callable[[Job], int], replace: str | None = None) -> None:
        self.id: str = uuid.uuid4().hex[:12]
        self.owner = owner
        self.params = params
        self.save = save
        self.replace = replace  # the supersede key it was submitted with (see JobQueue.submit)
        self.superseded = False  # a newer job of the same owner and key took its place
        self.state = JobState.QUEUED
        self.submitted_at = time.monotonic()
        self.created = datetime.now()  # wall clock, for A1111's job_timestamp
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.saved_paths: list[Path] = []
        self.save_error: str | None = None
        self.error: BaseException | None = None
        self.result: Result | ExtrasResult | None = None
        self.skipped = False
        self._position = position
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._step = 0
        self._total = params.total_steps
        self._batch_index = 0
        self._batch_count = params.batch_count
        self._preview: Image.Image | None = None
        self._first_step_at: float | None = None

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, owner={self.owner!r}, state={self.state.value})"

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def interrupted(self) -> bool:
        return self._cancel.is_set()

    def interrupt(self) -> None:
        """Stop this job between two steps; a queued job will never run."""
        self._cancel.set()

    def skip(self) -> None:
        """A1111's Skip: sdui stops the current job like Interrupt (it keeps what is done)."""
        self.skipped = True
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> Result | ExtrasResult:
        """Block until the job ends; return its Result or re-raise the error that failed it.

        Raises TimeoutError when `timeout` passes first.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} still {self.state.value} after {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def progress(self) -> JobProgress:
        """A consistent snapshot, safe to call from any thread."""
        with self._lock:
            state, step, total = self.state, self._step, self._total
            preview, first = self._preview, self._first_step_at
            batch_index, batch_count = self._batch_index, self._batch_count
        position = self._position(self) if state is JobState.QUEUED else 0
        eta = None
        if state is JobState.RUNNING and first is not None and step > 1:
            # Time per step measured from the first step on, so model loading does not count.
            per_step = (time.monotonic() - first) / (step - 1)
            eta = max(0.0, per_step * (total - step))
        elif state in FINISHED:
            eta = 0.0
        return JobProgress(step=step, total=total, eta_seconds=eta, preview=preview, state=state,
                           queue_position=position, textinfo=_textinfo(state, step, total, position, self.error),
                           batch_index=batch_index, batch_count=batch_count)

    # The worker's side.
    def _on_progress(self, p: Progress) -> None:
        with self._lock:
            if self._first_step_at is None:
                self._first_step_at = time.monotonic()
            self._step, self._total = p.step, max(p.total, 1)
            self._batch_index, self._batch_count = p.batch_index, p.batch_count
            if p.preview is not None:
                self._preview = p.preview

    def _set_state(self, state: JobState) -> None:
        with self._lock:
            self.state = state

    def _finish(self, state: JobState, result: Result | ExtrasResult | None = None,
                error: BaseException | None = None) -> None:
        with self._lock:
            self.result, self.error, self.state = result, error, state
            self.finished_at = time.monotonic()
        self._done.set()


def _textinfo(state: JobState, step: int, total: int, position: int, error: BaseException | None) -> str:
    if state is JobState.QUEUED:
        return f"Waiting in queue: position {position}"
    if state is JobState.RUNNING:
        return f"Step {step}/{total}" if step else "Starting"
    if state is JobState.FAILED:
        return f"Failed: {error}"
    if state is JobState.INTERRUPTED:
        return f"Interrupted at step {step}/{total}"
    return "Done"


class JobQueue:
    """FIFO in front of the one device: `submit` from any thread, one worker runs the jobs."""

    def __init__(self, engine: Engine, writer: OutputWriter | None = None, history_size: int = HISTORY_SIZE) -> None:
        self.engine = engine
        self.writer = writer
        self._queue: collections.deque[Job] = collections.deque()
        self._history: collections.deque[Job] = collections.deque(maxlen=history_size)
        self._current: Job | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._counter = itertools.count(1)

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name=f"sdui-jobs-{next(self._counter)}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Interrupt the running job, fail the queued ones, and join the worker."""
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            if self._current is not None:
                self._current.interrupt()
            self._cond.notify_all()
        for job in pending:
            job.interrupt()
            job._finish(JobState.INTERRUPTED, result=_nothing_done(job.params))
            self._history.append(job)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, params: GenerationParams | ExtrasParams, owner: str = "", *, save: bool = True,
               replace: str | None = None) -> Job:
        """Validate `params` (ValueError at once) and queue a job; `save=False` keeps it in memory only.

        `replace` (e.g. live mode's key): in one step, the owner's earlier jobs with the same key are superseded:
        the running one is interrupted, a queued one is dropped and the new job takes its place in the line, so an
        owner never holds more than one running and one waiting job per key and nobody else moves back.
        """
        params.validate()
        if isinstance(params, ExtrasParams):
            check_upscalers(params, self.engine.manager.upscalers)
        if isinstance(params, PlotParams):
            check_names(params, self.engine.manager)
        job = Job(params, owner, save, self.position, replace)
        with self._cond:
            if self._stopping:
                raise RuntimeError("the job queue is stopped")
            dropped = self._supersede(owner, replace) if replace is not None else []
            self._queue.insert(dropped[0][0] if dropped else len(self._queue), job)
            self._cond.notify_all()
        for _, old in dropped:
            old._finish(JobState.INTERRUPTED, result=_nothing_done(old.params))
            with self._cond:
                self._history.append(old)
        return job

    def _supersede(self, owner: str, key: str) -> list[tuple[int, Job]]:
        """Interrupt `owner`'s running job with `key`; take its queued ones out of the line (call under the lock).

        Returns the dropped jobs with their former places.
        """
        def same(job: Job | None) -> bool:
            return job is not None and job.owner == owner and job.replace == key

        if same(self._current):
            self._current.superseded = True
            self._current.interrupt()
        dropped = [(i, job) for i, job in enumerate(self._queue) if same(job)]
        for place, job in reversed(dropped):
            del self._queue[place]
            job.superseded = True
            job.interrupt()
        return dropped

    def current(self) -> Job | None:
        with self._cond:
            return self._current

    def queued(self) -> list[Job]:
        with self._cond:
            return list(self._queue)

    def history(self) -> list[Job]:
        """Finished jobs, oldest first (bounded)."""
        with self._cond:
            return list(self._history)

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            for job in itertools.chain((self._current,) if self._current else (), self._queue, self._history):
                if job.id == job_id:
                    return job
        return None

    def active(self, owner: str | None = None) -> list[Job]:
        """The running job then the queued ones, optionally only `owner`'s."""
        with self._cond:
            jobs = ([self._current] if self._current else []) + list(self._queue)
        return [j for j in jobs if owner is None or j.owner == owner]

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after...; 0 when not waiting."""
        with self._cond:
            for i, queued in enumerate(self._queue, start=1):
                if queued is job:
                    return i
        return 0

    def _next(self) -> Job | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            job = self._queue.popleft()
            self._current = job
            return job

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            try:
                self._run(job)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything a job does
                log.exception("job %s crashed the worker loop", job.id)
                if not job.done:
                    job._finish(JobState.FAILED, error=e)
            finally:
                with self._cond:
                    self._current = None
                    self._history.append(job)

    def _run(self, job: Job) -> None:
        if job.interrupted:
            job._finish(JobState.INTERRUPTED, result=_nothing_done(job.params))
            return
        job.started_at = time.monotonic()
        job._set_state(JobState.RUNNING)
        try:
            if isinstance(job.params, ExtrasParams):
                result = run_extras(job.params, self.engine.manager.upscalers, progress=job._on_progress,
                                    cancel=job._cancel)
            elif isinstance(job.params, PlotParams):
                result = run_plot(self.engine, job.params, progress=job._on_progress, cancel=job._cancel)
            else:
                result = self.engine.run(job.params, progress=job._on_progress, cancel=job._cancel)
        except Exception as e:  # noqa: BLE001 - any failure belongs to this job, never to the worker
            log.warning("job %s failed: %s: %s", job.id, type(e).__name__, e)
            job._finish(JobState.FAILED, error=e)
            return
        if job.save and self.writer is not None and result.images:
            try:
                if isinstance(result, PlotResult):
                    saved = save_plot(self.writer, result)
                elif isinstance(result, ExtrasResult):
                    saved = self.writer.save_extras(result)
                else:
                    saved = self.writer.save(result)
                job.saved_paths = list(saved)
            except Exception as e:  # noqa: BLE001 - SaveError (an OSError) or a writer bug: keep the images
                job.save_error = str(e)
                log.warning("job %s: saving failed: %s", job.id, e)
        job._finish(JobState.INTERRUPTED if result.interrupted else JobState.DONE, result=result)


def _nothing_done(params: GenerationParams | ExtrasParams) -> Result | ExtrasResult:
    """The result of a job interrupted before it started."""
    if isinstance(params, ExtrasParams):
        return ExtrasResult(params=params, interrupted=True)
    if isinstance(params, PlotParams):
        return PlotResult(params=params.base, interrupted=True)
    return Result(params=params, interrupted=True)
