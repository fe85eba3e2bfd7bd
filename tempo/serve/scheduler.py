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
"""
from __future__ import annotations

import logging
import threading
import time

from tempo.engine.batch import Batch
from tempo.engine.row import Row
from tempo.engine.runner import Tempo
from tempo.errors import RequestError
from tempo.request import GenerationRequest
from tempo.serve.jobs import ENDS, Counters, Job, JobQueue, Update  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

BATCH_MODES = ("tempo", "default")
"""Modes the batched loop runs; any other mode (MCTS, a tree search) runs through ``Tempo.run`` on the
worker, which steps the batch between the search's steps (``_run_alone``)."""


class _Cancelled(Exception):
    """Raised from a solo search's step callback to stop it."""


class Scheduler(JobQueue):
    """A request queue in front of one ``Batch`` driven by one worker thread."""

    def __init__(self, engine: Tempo, max_batch_size: int = 16):
        super().__init__(engine, max_batch_size)
        self._cond = threading.Condition()
        self._pending: list[Job] = []
        self._jobs: dict[int, Job] = {}
        self._cancels: set[int] = set()
        self._closed = False
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

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; jobs still queued or running end cancelled."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # --- the worker's side ----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._pending and not self._batch.rows and not self._cancels:
                    self._cond.wait()
                if self._closed:
                    break
            solo = self._tick(take_solo=True)
            if solo is not None:
                self._run_alone(solo)
        for job in list(self._jobs.values()):
            job.cancelled = True
            job.finish()

    def _tick(self, take_solo: bool) -> Job | None:
        """One step boundary: queued requests join (up to ``max_batch_size`` rows), cancels apply, every
        row advances one step. Returns a queued solo job (MCTS) for the caller to run, when asked."""
        with self._cond:
            room = max(0, self.max_batch_size - len(self._batch.rows))
            joining, waiting, solo = [], [], None
            for job in self._pending:
                if job.request.mode in BATCH_MODES and len(joining) < room:
                    joining.append(job)
                elif job.request.mode not in BATCH_MODES and take_solo and solo is None:
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

        def on_step(row: Row) -> None:  # equal time: the batch steps as long as the search's last step took
            job.stepped(self.engine.stream_steps(row))
            if job.cancelled:
                raise _Cancelled
            deadline = 2 * time.perf_counter() - searched[0]
            self._tick(take_solo=False)
            while self._batch.rows and time.perf_counter() < deadline:
                self._tick(take_solo=False)
            searched[0] = time.perf_counter()

        job.started()
        log.debug("request %s (%s) runs alone, between the batch's steps", job.key, job.request.mode)
        try:
            result = self.engine.run([job.request], on_step=on_step)[0]
        except _Cancelled:
            self._jobs.pop(job.key, None)
            self.counters.requests_cancelled += 1
            job.finish()
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
