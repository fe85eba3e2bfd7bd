"""The layer view and forks behind the server: the ``gradio_client`` functions ``/lens`` and ``/forks`` (wired in
``endpoints.py``) and the REST routes ``POST /lens`` and ``POST /forks`` (added by ``rest.py``).

Forks' rollouts go through the scheduler like any request: all of them are submitted at once and the scheduler
batches them (``app.max_batch_size`` rows at a time, beside other users' requests). The layer view is one
forward on the caller's thread (read-only weights; the worker's attention state is its thread's own).
"""

import asyncio
import logging
import math
import threading
import time
from typing import Any, Iterator, Optional

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, create_model

from tempo.engine.forks import ForksPlan, plan_rollouts, report
from tempo.errors import RequestError, TempoError
from tempo.forks_request import FORKS_FIELDS, build_forks
from tempo.request import FIELDS, build_request
from tempo.result import GenerationResult
from tempo.serve.jobs import Job, JobQueue

log = logging.getLogger(__name__)


# --- shared by both interfaces ----------------------------------------------------------------------------------

def parse_result(data: Any) -> GenerationResult:
    """A result JSON (or an object holding one under ``result``) as a ``GenerationResult``."""
    if isinstance(data, dict) and "steps" not in data and isinstance(data.get("result"), dict):
        data = data["result"]
    try:
        return GenerationResult.from_dict(data)
    except (TypeError, KeyError, AttributeError) as exc:
        raise RequestError("result", f"not a result JSON (TEMPO_SPEC section 8): {exc}") from None


def forks_target(scheduler: JobQueue, settings: Any, prompt: str | None, overrides: dict | None,
                 result: Any) -> GenerationResult | Job:
    """The result to analyse, or the job generating it (a bad request raises ``RequestError``)."""
    if result is not None:
        return parse_result(result)
    if not prompt:
        raise RequestError("prompt", "give a prompt (with request fields) or a result")
    return scheduler.submit(build_request(prompt, settings, **(overrides or {})))


def run_rollouts(scheduler: JobQueue, plan: ForksPlan, timeout: float | None,
                 every: float = 0.25) -> Iterator[tuple[int, list[GenerationResult] | None]]:
    """Submit every rollout at once; yield ``(rollouts done, None)`` at most every ``every`` seconds, then
    ``(total, results)``. ``timeout`` is per ``max_batch_size`` rollouts (TimeoutError past it); the jobs left
    are cancelled when the caller stops early."""
    jobs = scheduler.submit_many(plan.requests)
    chunks = max(1, math.ceil(len(jobs) / scheduler.max_batch_size))
    deadline = None if timeout is None else time.monotonic() + timeout * chunks
    poll = max(every, 0.05)  # a stream interval of 0 must not make this a busy loop
    reported = 0
    try:
        yield 0, None
        for job in jobs:
            while not job.done:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"request_timeout: the rollouts did not end within {timeout * chunks:g} s")
                try:
                    job.wait_for("done", poll)  # every end state counts as "done" here
                except TimeoutError:
                    pass
                done = sum(j.done for j in jobs)
                if done != reported:  # only news is sent
                    reported = done
                    yield done, None
        yield len(jobs), [job.wait(0) for job in jobs]
    finally:
        for job in jobs:
            job.cancel()


def forks_stream(scheduler: JobQueue, settings: Any, prompt: str | None, overrides: dict | None,
                 options: dict | None, result: Any, timeout: float | None,
                 every: float = 0.25) -> Iterator[dict[str, Any]]:
    """Progress ``{"stop_reason": "running", "stage", "rollouts_done", "rollouts_total"}``, then the analysis
    ``{"result", "forks", "options"}``. Raises ``RequestError`` naming a bad field."""
    if options is not None and not isinstance(options, dict):
        raise RequestError("options", f"must be an object of forks parameters, got {type(options).__name__}")
    forks = build_forks(settings, **(options or {}))
    target = forks_target(scheduler, settings, prompt, overrides, result)
    if isinstance(target, Job):
        yield {"stop_reason": "running", "stage": "generating", "rollouts_done": 0, "rollouts_total": None}
        target = target.wait(timeout)
    plan = plan_rollouts(target, forks, settings)
    total = len(plan.requests)
    for done, drawn in run_rollouts(scheduler, plan, timeout, every):
        if drawn is None:
            yield {"stop_reason": "running", "stage": "rollouts", "rollouts_done": done, "rollouts_total": total}
        else:
            yield report(plan, drawn).to_dict()


def lens_view(engine: Any, prompt: str | None, result: Any, step: Any, top_k: Any) -> dict[str, Any]:
    """``Tempo.lens`` over JSON values (a result as a dict)."""
    parsed = parse_result(result) if result is not None else None
    if parsed is None and not prompt:
        raise RequestError("prompt", "give a prompt or a result")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        raise RequestError("step", f"must be an integer, got {step!r}")
    return engine.lens(prompt, parsed, step, 5 if top_k is None else top_k).to_dict()


# --- REST -------------------------------------------------------------------------------------------------------

def lens_body():
    return create_model("LensBody", __config__=ConfigDict(extra="forbid"), prompt=(Optional[str], None),
                        result=(Optional[dict], None), step=(Optional[int], None), top_k=(Optional[int], None))


def forks_body():
    """The request fields (the prompt optional when a result is given), every forks parameter, and ``result``."""
    body: dict[str, Any] = {spec.name: (Optional[spec.type], None) for spec in FIELDS.values()}
    body.update({spec.name: (Optional[spec.type], None) for spec in FORKS_FIELDS.values()})
    body["result"] = (Optional[dict], None)
    return create_model("ForksBody", __config__=ConfigDict(extra="forbid"), **body)


def refused(exc: TempoError) -> JSONResponse:
    field = exc.field if isinstance(exc, RequestError) else "model"
    return JSONResponse({"detail": str(exc), "field": field}, status_code=422)


def add_explore_routes(app: FastAPI, settings: Any, scheduler: JobQueue, config: Any, limiter: Any,
                       slots: threading.BoundedSemaphore) -> None:
    """``POST /lens`` and ``POST /forks`` (bad input: 422 naming the field; ``max_concurrent_requests`` and
    ``request_timeout`` as for ``/generate``). The lens reads the model the scheduler serves now (a switch
    swaps it, ``POST /model``)."""
    LensBody, ForksBody = lens_body(), forks_body()

    @app.post("/lens", dependencies=[Depends(limiter)])
    async def lens(body: LensBody) -> JSONResponse:  # type: ignore[valid-type]
        """The layer view: ``{"prompt"}`` or ``{"result", "step"}``, ``top_k`` -> ``{"layers", "exit_layer",
        "step", "candidates"}`` (TEMPO_SPEC section 12)."""
        values = body.model_dump()
        try:
            view = await asyncio.to_thread(lens_view, scheduler.engine, values["prompt"], values["result"], values["step"],
                                           values["top_k"])
        except TempoError as exc:
            return refused(exc)
        return JSONResponse(view)

    @app.post("/forks", dependencies=[Depends(limiter)])
    async def forks(body: ForksBody, request: Request) -> JSONResponse:  # type: ignore[valid-type]
        """Request fields (or ``result``) and forks parameters -> ``{"result", "forks", "options"}``."""
        values = body.model_dump(exclude_none=True)
        result = values.pop("result", None)
        options = {name: values.pop(name) for name in list(values) if name in FORKS_FIELDS}
        prompt = values.pop("prompt", None)
        if not slots.acquire(blocking=False):
            raise HTTPException(503, f"max_concurrent_requests: {config.max_concurrent_requests} generations "
                                     "are running; retry later", headers={"Retry-After": "1"})
        try:
            return await asyncio.to_thread(_forks_answer, scheduler, settings, prompt, values, options, result,
                                           config.request_timeout)
        finally:
            slots.release()


def _forks_answer(scheduler, settings, prompt, overrides, options, result, timeout) -> JSONResponse:
    try:
        final = None
        for final in forks_stream(scheduler, settings, prompt, overrides, options, result, timeout, every=0.5):
            pass
    except TempoError as exc:
        return refused(exc)
    except TimeoutError as exc:
        raise HTTPException(504, str(exc)) from None
    return JSONResponse(final)
