"""A request's life in the batch queue: ``Job`` (its updates, result, cancel), ``Update``, ``Counters``."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from tempo.request import GenerationRequest
from tempo.result import GenerationResult, Step

if TYPE_CHECKING:
    from tempo.serve.scheduler import Scheduler

ENDS = ("done", "cancelled", "error")


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

    def __init__(self, key: int, request: GenerationRequest, scheduler: "Scheduler"):
        self.key = key
        self.request = request
        self.steps: list[Step] = []
        """The steps streamed so far (built by ``stream``)."""
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.submitted_at = time.perf_counter()
        self._scheduler = scheduler
        self._updates: queue.Queue[Update] = queue.Queue()
        self._done = threading.Event()
        self._context: list[int] = []  # the worker's decoding context: prompt + top token of each step
        self._texts: list[list[str]] = []  # the worker's decoded candidate texts, one list per step

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

    def wait(self, timeout: float | None = None) -> GenerationResult:
        """Block until the result; re-raise the worker's error; TimeoutError cancels the job."""
        if not self._done.wait(timeout):
            self.cancel()
            raise TimeoutError(f"request_timeout: no result within {timeout:g} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    # --- called by the worker ------------------------------------------------------------
    def _push(self, update: Update) -> None:
        self._updates.put(update)

    def _finish(self, result: GenerationResult | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        state = "error" if error is not None else ("cancelled" if self.cancelled else "done")
        self._done.set()
        self._push(Update(state, result=result, error=error))


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
    started_at: float = field(default_factory=time.time)

    @property
    def mean_batch_size(self) -> float:
        return self.rows_stepped / self.steps_run if self.steps_run else 0.0
