"""The batch queue: one worker thread owns the model; requests join the running batch at step boundaries.

    scheduler = Scheduler(engine)
    job = scheduler.submit(engine.request("the cat", max_tokens=20))
    for update in job.stream():          # one Update per step (and while queued)
        print(update.step, update.queue_position)
    result = job.result                  # the GenerationResult

Every interface (Gradio events, ``gradio_client``, REST) submits here, so
requests from many users share one batch (``Tempo.new_batch``): each step the
worker takes the newly queued requests (``Batch.add``, up to ``max_batch_size``
rows), applies the cancels, advances every row one step (``Batch.step``) and
pushes each row's new step to its own job (``Tempo.stream_steps``, built as the
result is built). A cancelled job (Stop button, client gone, timeout) leaves
the batch at the next boundary; the other rows' results do not change.

A model switch (``swap``, tempo/serve/switch.py) happens between batches: while one is pending no queued
request joins, the rows running finish on the old engine (or, past the switch's timeout, end with
``RequestCancelled`` saying why), then the worker takes the new engine and the queued requests join its batch.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from tempo.engine.batch import Batch
from tempo.engine.row import Row
from tempo.engine.runner import Tempo
from tempo.errors import RequestCancelled, RequestError
from tempo.request import GenerationRequest
from tempo.serve.jobs import ENDS, Counters, Job, JobQueue, Update  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

BATCH_MODES = ("tempo", "default")
"""Modes the batched loop runs; any other mode (MCTS, a tree search) runs through ``Tempo.run`` on the
worker, which steps the batch between the search's steps (``_run_alone``)."""


class _Cancelled(Exception):
    """Raised from a solo search's step callback to stop it."""


@dataclass
class _Swap:
    """A model switch the worker is asked to make between batches."""

    engine: Tempo
    deadline: float
    """``time.monotonic()`` past which the rows still running are cancelled."""
    timeout: float
    reason: str
    cancelled: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def error(self) -> RequestCancelled:
        return RequestCancelled(f"cancelled: {self.reason}; the request was still running "
                                f"app.model_switch_timeout = {self.timeout:g} s after the switch began")


class Scheduler(JobQueue):
    """A request queue in front of one ``Batch`` driven by one worker thread."""

    def __init__(self, engine: Tempo, max_batch_size: int = 16):
        super().__init__(engine, max_batch_size)
        self._cond = threading.Condition()
        self._pending: list[Job] = []
        self._jobs: dict[int, Job] = {}
        self._cancels: set[int] = set()
        self._closed = False
        self._swap: _Swap | None = None
        self._batch = self._new_batch()
        self._thread = threading.Thread(target=self._work, name="tempo-scheduler", daemon=True)
        self._thread.start()

    def _new_batch(self) -> Batch:
        return self.engine.new_batch(on_step=self._on_step)

    # --- the callers' side ----------------------------------------------------------------
    def submit_many(self, requests: list[GenerationRequest]) -> list[Job]:
        """Queue requests together: they join the batch at the same step boundary."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            jobs = self.new_jobs(requests)
            for job in jobs:
                self._jobs[job.key] = job
                self._pending.append(job)
                job.queued(len(self._pending) - 1)
            self._cond.notify()
        return jobs

    def cancel(self, job: Job) -> None:
        with self._cond:
            if job.done or job.cancelled:
                return
            job.cancelled = True
            if job in self._pending:  # never joined: it ends here
                self._pending.remove(job)
                self._jobs.pop(job.key, None)
                self.counters.requests_cancelled += 1
                job.finish()
                return
            self._cancels.add(job.key)
            self._cond.notify()

    def queue_position(self, job: Job) -> int | None:
        with self._cond:
            try:
                return self._pending.index(job)
            except ValueError:
                return None

    @property
    def queue_depth(self) -> int:
        """Requests waiting to join the batch."""
        with self._cond:
            return len(self._pending)

    @property
    def running(self) -> int:
        """Rows in the batch now."""
        return len(self._batch.rows)

    @property
    def switching(self) -> bool:
        """A model switch waits for the running rows (queued requests wait for it)."""
        return self._swap is not None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; jobs still queued or running end cancelled."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def swap(self, engine: Tempo, timeout: float, reason: str) -> int:
        """Serve ``engine`` from the next batch on (see ``JobQueue.swap``); blocks until the worker has."""
        swap = _Swap(engine, time.monotonic() + timeout, timeout, reason)
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            if self._swap is not None:
                raise RuntimeError("a model switch is already pending")
            self._swap = swap
            self._cond.notify()
        swap.done.wait()
        return swap.cancelled

    # --- the worker's side ----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while (not self._closed and not self._pending and not self._batch.rows and not self._cancels
                       and self._swap is None):
                    self._cond.wait()
                if self._closed:
                    break
                swap = self._swap
            if swap is not None and self._take(swap):
                continue
            solo = self._tick(take_solo=True)
            if solo is not None:
                self._run_alone(solo)
        for job in list(self._jobs.values()):
            job.cancelled = True
            job.finish()
        if self._swap is not None:
            self._swap.done.set()

    def _take(self, swap: _Swap) -> bool:
        """Make the pending switch once the batch is empty, or past its deadline after cancelling the rows
        still running (each job ends with the switch's ``RequestCancelled``). False: not yet."""
        if self._batch.rows and time.monotonic() < swap.deadline:
            return False
        jobs = [self._jobs.pop(row.key) for row in self._batch.rows if row.key in self._jobs]
        if jobs:
            log.warning("model switch: %d requests still running after %g s are cancelled", len(jobs), swap.timeout)
        for job in jobs:
            self.counters.requests_cancelled += 1
            job.finish(error=swap.error())
        swap.cancelled += len(jobs)
        self.engine = swap.engine
        self._batch = self._new_batch()
        with self._cond:
            self._swap = None
            self._cancels = {key for key in self._cancels if key in self._jobs}
        swap.done.set()
        return True

    def _tick(self, take_solo: bool) -> Job | None:
        """One step boundary: queued requests join (up to ``max_batch_size`` rows), cancels apply, every
        row advances one step. Returns a queued solo job (MCTS) for the caller to run, when asked."""
        with self._cond:
            switching = self._swap is not None  # nobody joins the old model's batch
            room = 0 if switching else max(0, self.max_batch_size - len(self._batch.rows))
            joining, waiting, solo = [], [], None
            for job in self._pending:
                if job.request.mode in BATCH_MODES and len(joining) < room:
                    joining.append(job)
                elif job.request.mode not in BATCH_MODES and take_solo and solo is None and not switching:
                    solo = job
                else:
                    waiting.append(job)
            self._pending = waiting
            cancels, self._cancels = self._cancels, set()
            for position, job in enumerate(waiting):
                job.queued(position)
        self._join(joining)
        for key in cancels:
            self._batch.cancel(key)
        self._step()
        return solo

    def _join(self, jobs: list[Job]) -> None:
        """Prefill ``jobs`` together; when that fails, one by one, so a bad request fails only itself."""
        if not jobs:
            return
        was_empty = not self._batch.rows
        try:
            rows = self._batch.add([j.request for j in jobs], keys=[j.key for j in jobs])
        except Exception as exc:  # a bad request (RequestError), too long a prompt, out of memory: the jobs' error
            if len(jobs) > 1:
                for job in jobs:
                    self._join([job])
                return
            if not isinstance(exc, RequestError):
                log.exception("prefill failed")
            self._fail(jobs, exc)
            return
        self.counters.batches_run += was_empty
        log.debug("requests %s joined the batch (%d rows now; prompt tokens %s)", [j.key for j in jobs],
                  len(self._batch.rows), [len(row.prompt_ids) for row in rows])
        for job in jobs:
            job.started()

    def _run_alone(self, job: Job) -> None:
        """A tree search (MCTS) on the worker: after each of its steps the batch runs for as long as that
        step took, so neither waits for the other; a cancel stops the search at its next step."""
        searched = [time.perf_counter()]

        engine = self.engine

        def on_step(row: Row) -> None:  # equal time: the batch steps as long as the search's last step took
            job.stepped(engine.stream_steps(row))
            if job.cancelled or (self._swap is not None and time.monotonic() > self._swap.deadline):
                raise _Cancelled
            deadline = 2 * time.perf_counter() - searched[0]
            self._tick(take_solo=False)
            while self._batch.rows and time.perf_counter() < deadline:
                self._tick(take_solo=False)
            searched[0] = time.perf_counter()

        job.started()
        log.debug("request %s (%s) runs alone, between the batch's steps", job.key, job.request.mode)
        try:
            result = engine.run([job.request], on_step=on_step)[0]
        except _Cancelled:
            self._jobs.pop(job.key, None)
            self.counters.requests_cancelled += 1
            if job.cancelled:
                job.finish()
            else:  # the pending switch's deadline passed
                self._swap.cancelled += 1
                job.finish(error=self._swap.error())
            return
        except Exception as exc:  # delivered to the caller, who raises it
            if not isinstance(exc, RequestError):
                log.exception("generation failed")
            self._fail([job], exc)
            return
        self._jobs.pop(job.key, None)
        self.counters.requests_done += 1
        job.finish(result)

    def _step(self) -> None:
        rows = len(self._batch.rows)
        if rows == 0:
            return
        try:
            self._batch.step()
        except Exception as exc:  # the batch is lost: every job in it fails with the error
            log.exception("step failed")
            self._fail([self._jobs[row.key] for row in self._batch.rows if row.key in self._jobs], exc)
            self._batch = self._new_batch()
            return
        c = self.counters
        c.steps_run += 1
        c.rows_stepped += rows
        c.max_batch_seen = max(c.max_batch_seen, rows)
        c.batch_sizes[rows] += 1
        for row in self._batch.finished:
            job = self._jobs.pop(row.key, None)
            if job is None:
                continue
            if row.stop_reason == "cancelled":
                c.requests_cancelled += 1
            else:
                c.requests_done += 1
            log.debug("request %s left the batch after %d steps (%s); %d rows stay", row.key, len(row.sets),
                      row.stop_reason, len(self._batch.rows))
            job.finish(self.engine.result(row))
        self._batch.finished.clear()

    def _on_step(self, row: Row) -> None:
        """Called by ``Batch.step`` after a row's new set."""
        job = self._jobs.get(row.key)
        if job is not None:
            job.stepped(self.engine.stream_steps(row))

    def _fail(self, jobs: list[Job], exc: BaseException) -> None:
        for job in jobs:
            self._jobs.pop(job.key, None)
            self.counters.requests_failed += 1
            job.finish(error=exc)
