"""A request's life in the batch queue: ``Job`` (its updates, result, cancel), ``Update``, ``Counters``,
and ``JobQueue``, what every scheduler offers (the batch queue, ZeroGPU's direct runs)."""
from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from tempo.request import GenerationRequest
from tempo.result import GenerationResult, Step

if TYPE_CHECKING:
    from tempo.engine.runner import Tempo

ENDS = ("done", "cancelled", "error")
ORDER = {"queued": 0, "running": 1, "step": 2, **{end: 3 for end in ENDS}}
"""How far along a job is: ``wait_for`` returns once the job is at a state or past it."""


@dataclass
class Update:
    """What a job's consumer sees: the queue position while waiting, then one new step at a time."""

    state: str
    """``queued``, ``running``, ``step``, ``done``, ``cancelled`` or ``error``."""
    queue_position: int | None = None
    """Jobs ahead of this one in the queue (0 = next to join); None once it runs."""
    steps: list[Step] = field(default_factory=list)
    """New steps, and earlier steps whose candidates changed (pruned), by ``step`` index."""
    result: GenerationResult | None = None
    error: BaseException | None = None


class Job:
    """One submitted request: its updates, its result, and a ``cancel`` that makes it leave the batch."""

    def __init__(self, key: int, request: GenerationRequest, scheduler: "JobQueue"):
        self.key = key
        self.request = request
        self.steps: list[Step] = []
        """The steps streamed so far (built by ``stream``)."""
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.submitted_at = time.perf_counter()
        self.state = "queued"
        """How far the worker has taken the job: ``queued``, ``running``, ``step`` (a step was pushed), or an end."""
        self._scheduler = scheduler
        self._updates: queue.Queue[Update] = queue.Queue()
        self._done = threading.Event()
        self._moved = threading.Condition()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def queue_position(self) -> int | None:
        return self._scheduler.queue_position(self)

    def cancel(self) -> None:
        """Leave the queue or the batch (at the next step boundary). No effect once done."""
        if not self.done:
            self._scheduler.cancel(self)

    def stream(self, poll_s: float = 0.25, timeout: float | None = None, every: float = 0.0) -> Iterator[Update]:
        """Updates until the job ends; while waiting, the queue position every ``poll_s``.

        ``every`` > 0 merges the steps that arrive within ``every`` seconds into one update: the
        consumer wakes a few times a second instead of at every step (fewer thread switches for the
        worker). Raises TimeoutError (after cancelling the job) when ``timeout`` seconds pass."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while True:
            if deadline is not None and time.perf_counter() > deadline:
                self.cancel()
                raise TimeoutError(f"request_timeout: no result within {timeout:g} s")
            try:
                update = self._updates.get(timeout=poll_s)
            except queue.Empty:
                if self.done and self._updates.empty():
                    return
                yield Update("queued" if self.queue_position is not None else "running",
                             queue_position=self.queue_position)
                continue
            if every > 0 and update.state not in ENDS:
                self._done.wait(every)  # returns early when the job ends
                update = self._merge([update] + self._drain())
            for step in update.steps:
                if step.step < len(self.steps):
                    self.steps[step.step] = step
                else:
                    self.steps.append(step)
            yield update
            if update.state in ENDS:
                return

    def _drain(self) -> list[Update]:
        updates = []
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                return updates

    @staticmethod
    def _merge(updates: list[Update]) -> Update:
        """One update: the last one's state, every update's steps (a later copy of a step wins)."""
        steps = {step.step: step for u in updates for step in u.steps}
        last = updates[-1]
        return Update(last.state, queue_position=last.queue_position, steps=[steps[k] for k in sorted(steps)],
                      result=last.result, error=last.error)

    def wait_for(self, state: str, timeout: float | None = None) -> str:
        """Block until the job is at ``state`` or past it (``queued`` < ``running`` < ``step`` < an end;
        every end state counts as past the others, so ``wait_for("running")`` returns for a job that
        failed while queued). Returns the job's state then. Raises TimeoutError when ``timeout`` seconds
        pass first; unlike ``wait``, the job goes on."""
        if state not in ORDER:
            raise ValueError(f"state: must be one of {', '.join(ORDER)}, got {state!r}")
        with self._moved:
            if not self._moved.wait_for(lambda: ORDER[self.state] >= ORDER[state], timeout):
                raise TimeoutError(f"job {self.key} did not reach {state!r} within {timeout:g} s "
                                   f"(it is {self.state!r})")
            return self.state

    def wait(self, timeout: float | None = None) -> GenerationResult:
        """Block until the result; re-raise the worker's error; TimeoutError cancels the job."""
        if not self._done.wait(timeout):
            self.cancel()
            raise TimeoutError(f"request_timeout: no result within {timeout:g} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    # --- the worker's side: called by a scheduler --------------------------------------------
    def queued(self, position: int) -> None:
        """The job waits with ``position`` jobs ahead of it."""
        self._push(Update("queued", queue_position=position))

    def started(self) -> None:
        """The job joined the batch (or its search began)."""
        self._push(Update("running"))

    def stepped(self, steps: list[Step]) -> None:
        """New steps, and earlier ones whose candidates changed, in the result's shape."""
        self._push(Update("step", steps=steps))

    def finish(self, result: GenerationResult | None = None, error: BaseException | None = None) -> None:
        """The end: a result (its ``stop_reason`` may be "cancelled"), an error, or neither (cancelled
        before it ran). The end update carries the result's steps, so a stream ends on them even when
        pruning changed a step after the last one streamed (a row that ends by EOS)."""
        self.result, self.error = result, error
        state = "error" if error is not None else ("cancelled" if self.cancelled else "done")
        self._push(Update(state, steps=list(result.steps) if result is not None else [], result=result, error=error))

    def _push(self, update: Update) -> None:
        with self._moved:
            if ORDER[update.state] > ORDER[self.state]:
                self.state = update.state
            self._updates.put(update)  # before ``done``: a stream that sees the job done finds the end update
            if update.state in ENDS:
                self._done.set()
            self._moved.notify_all()


@dataclass
class Counters:
    """The scheduler's own figures (``/health``, the Model tab, the benchmark)."""

    batches_run: int = 0
    """Busy periods: the batch went from empty to running."""
    steps_run: int = 0
    rows_stepped: int = 0
    """Sum over steps of the rows in the batch; ``/ steps_run`` is the mean batch size."""
    requests_done: int = 0
    requests_cancelled: int = 0
    requests_failed: int = 0
    max_batch_seen: int = 0
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)
    """Steps run at each batch size (rows): the metrics' batch-size histogram."""
    started_at: float = field(default_factory=time.time)

    @property
    def mean_batch_size(self) -> float:
        return self.rows_stepped / self.steps_run if self.steps_run else 0.0


class JobQueue(ABC):
    """What every scheduler offers its callers (the UI, ``gradio_client`` endpoints, REST): submit requests,
    get ``Job``s; cancel; the queue's figures. ``Scheduler`` runs a worker thread over one batch;
    ``DirectScheduler`` (ZeroGPU) runs each submit at once in the caller's thread."""

    def __init__(self, engine: "Tempo", max_batch_size: int = 16):
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.counters = Counters()
        self._keys = itertools.count()

    def new_jobs(self, requests: list[GenerationRequest]) -> list[Job]:
        """Jobs for ``requests``, each with a key of its own."""
        return [Job(next(self._keys), r, self) for r in requests]

    def submit(self, request: GenerationRequest) -> Job:
        return self.submit_many([request])[0]

    @abstractmethod
    def submit_many(self, requests: list[GenerationRequest]) -> list[Job]:
        """Queue requests together: they join the batch at the same step boundary."""

    @abstractmethod
    def cancel(self, job: Job) -> None:
        """Make ``job`` leave the queue or the batch; no effect once it is done."""

    @abstractmethod
    def queue_position(self, job: Job) -> int | None:
        """Jobs ahead of ``job`` in the queue; None once it runs."""

    @property
    @abstractmethod
    def queue_depth(self) -> int:
        """Requests waiting to join the batch."""

    @property
    @abstractmethod
    def running(self) -> int:
        """Rows in the batch now."""

    @abstractmethod
    def close(self, timeout: float = 5.0) -> None:
        """Stop taking requests; jobs still queued or running end cancelled."""

    def swap(self, engine: "Tempo", timeout: float, reason: str) -> int:
        """Serve ``engine`` from now on (a model switch): running requests finish on the old engine first --
        those still running after ``timeout`` seconds end with ``RequestCancelled(reason ...)`` -- while queued
        ones wait and then run on ``engine``. Returns the number of requests cancelled. (``Scheduler`` and
        ``DirectScheduler`` implement it; a queue without it cannot switch models.)"""
        raise NotImplementedError(f"{type(self).__name__} cannot switch models")

    @property
    def switching(self) -> bool:
        """A model switch is waiting for the running requests."""
        return False

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "queue_depth": self.queue_depth,
            "running": self.running,
            "batches_run": c.batches_run,
            "mean_batch_size": round(c.mean_batch_size, 3),
            "max_batch_size_seen": c.max_batch_seen,
            "steps_run": c.steps_run,
            "requests_done": c.requests_done,
            "requests_cancelled": c.requests_cancelled,
            "requests_failed": c.requests_failed,
            "max_batch_size": self.max_batch_size,
        }
