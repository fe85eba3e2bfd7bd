"""Hugging Face ZeroGPU Spaces: the GPU exists only inside a ``spaces.GPU`` call made from a request's
own thread, so there the scheduler's worker thread cannot generate. ``make_scheduler`` returns the
usual ``Scheduler`` everywhere else, and a ``DirectScheduler`` (each submit generates at once, in the
caller's thread, inside ``spaces.GPU``) when the ``spaces`` package is present on a ZeroGPU Space.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from typing import Callable

from tempo.engine.row import Row
from tempo.engine.runner import Tempo
from tempo.errors import RequestCancelled
from tempo.request import GenerationRequest
from tempo.serve.jobs import Job, JobQueue
from tempo.serve.scheduler import Scheduler

log = logging.getLogger(__name__)


def gpu_decorator() -> Callable[[Callable], Callable] | None:
    """``spaces.GPU`` when the package is installed and this is a ZeroGPU Space; else None."""
    if importlib.util.find_spec("spaces") is None or not os.environ.get("SPACES_ZERO_GPU"):
        return None
    import spaces

    return spaces.GPU


class DirectScheduler(JobQueue):
    """No queue and no worker: ``submit_many`` runs its requests as one batch through ``Tempo.run``
    inside the GPU decorator and returns finished jobs (their stream is the final update).

    A model switch (``swap``) waits for the runs in flight (new submits wait for the switch); past its timeout
    the runs still going stop at their next step with ``RequestCancelled``."""

    def __init__(self, engine: Tempo, gpu: Callable[[Callable], Callable], max_batch_size: int = 16):
        super().__init__(engine, max_batch_size)
        self._run = gpu(self.run)
        self._cond = threading.Condition()
        self._active = 0
        self._switching = False
        self._abort: RequestCancelled | None = None

    def run(self, requests: list[GenerationRequest]) -> list:
        """The engine's run of ``requests`` (in the GPU decorator); ``engine`` changes only while none runs."""
        return self.engine.run(requests, on_step=self._check_abort)

    def _check_abort(self, row: Row) -> None:
        if self._abort is not None:
            raise self._abort

    def submit_many(self, requests: list[GenerationRequest]) -> list[Job]:
        jobs = self.new_jobs(requests)
        with self._cond:
            self._cond.wait_for(lambda: not self._switching)
            self._active += 1
        try:
            results = self._run(requests)
        except Exception as exc:  # delivered to each caller, who raises it
            for job in jobs:
                job.finish(error=exc)
            if isinstance(exc, RequestCancelled):
                self.counters.requests_cancelled += len(jobs)
            else:
                self.counters.requests_failed += len(jobs)
            return jobs
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
        c = self.counters
        c.batches_run += 1
        c.requests_done += len(jobs)
        c.steps_run += max((len(r.steps) for r in results), default=0)
        c.rows_stepped += sum(len(r.steps) for r in results)
        for step in range(max((len(r.steps) for r in results), default=0)):  # the rows still in at each step
            c.batch_sizes[sum(len(r.steps) > step for r in results)] += 1
        for job, result in zip(jobs, results):
            job.stepped(result.steps)
            job.finish(result)
        return jobs

    def cancel(self, job: Job) -> None:
        """Nothing to cancel: a job is finished when ``submit`` returns."""

    def queue_position(self, job: Job) -> int | None:
        return None

    @property
    def queue_depth(self) -> int:
        return 0

    @property
    def running(self) -> int:
        return 0

    @property
    def switching(self) -> bool:
        return self._switching

    def close(self, timeout: float = 5.0) -> None:
        """No worker to stop."""

    def swap(self, engine: Tempo, timeout: float, reason: str) -> int:
        """Serve ``engine`` once the runs in flight end (see ``JobQueue.swap``)."""
        with self._cond:
            if self._switching:
                raise RuntimeError("a model switch is already pending")
            self._switching = True
            cancelled = 0
            if not self._cond.wait_for(lambda: self._active == 0, timeout):
                cancelled = self._active
                log.warning("model switch: %d runs still going after %g s are cancelled", cancelled, timeout)
                self._abort = RequestCancelled(f"cancelled: {reason}; the request was still running "
                                               f"app.model_switch_timeout = {timeout:g} s after the switch began")
                self._cond.wait_for(lambda: self._active == 0)
            self.engine = engine
            self._abort = None
            self._switching = False
            self._cond.notify_all()
        return cancelled


def make_scheduler(engine: Tempo, max_batch_size: int = 16) -> JobQueue:
    """The batch queue, or on a ZeroGPU Space the direct runs; both offer ``JobQueue``'s surface."""
    gpu = gpu_decorator()
    if gpu is None:
        return Scheduler(engine, max_batch_size=max_batch_size)
    return DirectScheduler(engine, gpu, max_batch_size=max_batch_size)
