"""Hugging Face ZeroGPU Spaces: the GPU exists only inside a ``spaces.GPU`` call made from a request's
own thread, so there the scheduler's worker thread cannot generate. ``make_scheduler`` returns the
usual ``Scheduler`` everywhere else, and a ``DirectScheduler`` (each submit generates at once, in the
caller's thread, inside ``spaces.GPU``) when the ``spaces`` package is present on a ZeroGPU Space.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable

from tempo.engine.runner import Tempo
from tempo.request import GenerationRequest
from tempo.serve.jobs import Job, JobQueue
from tempo.serve.scheduler import Scheduler


def gpu_decorator() -> Callable[[Callable], Callable] | None:
    """``spaces.GPU`` when the package is installed and this is a ZeroGPU Space; else None."""
    if importlib.util.find_spec("spaces") is None or not os.environ.get("SPACES_ZERO_GPU"):
        return None
    import spaces

    return spaces.GPU


class DirectScheduler(JobQueue):
    """No queue and no worker: ``submit_many`` runs its requests as one batch through ``Tempo.run``
    inside the GPU decorator and returns finished jobs (their stream is the final update)."""

    def __init__(self, engine: Tempo, gpu: Callable[[Callable], Callable], max_batch_size: int = 16):
        super().__init__(engine, max_batch_size)
        self._run = gpu(engine.run)

    def submit_many(self, requests: list[GenerationRequest]) -> list[Job]:
        jobs = self.new_jobs(requests)
        try:
            results = self._run(requests)
        except Exception as exc:  # delivered to each caller, who raises it
            for job in jobs:
                job.finish(error=exc)
            self.counters.requests_failed += len(jobs)
            return jobs
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

    def close(self, timeout: float = 5.0) -> None:
        """No worker to stop."""


def make_scheduler(engine: Tempo, max_batch_size: int = 16) -> JobQueue:
    """The batch queue, or on a ZeroGPU Space the direct runs; both offer ``JobQueue``'s surface."""
    gpu = gpu_decorator()
    if gpu is None:
        return Scheduler(engine, max_batch_size=max_batch_size)
    return DirectScheduler(engine, gpu, max_batch_size=max_batch_size)
