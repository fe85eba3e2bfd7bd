"""Branch through the scheduler (TEMPO_SPEC section 12): REST ``POST /branch`` and the ``gradio_client`` endpoint
``/branch``; the app's Explore tab uses the same :func:`run_branch`.

A branch is an ordinary request (the parent's sets given in ``forced_sets``), so it joins the running batch with
other users' requests and takes its prompt from the prompt cache. The parent is a result (its JSON), or the
request that made it — then the parent is generated first, through the scheduler too.

    POST /branch  {"parent": <result JSON>, "step": 3, "token_id": 17, "overrides": {"max_tokens": 40}}
    POST /branch  {"request": {"prompt": "the cat", "selection_threshold": 0.1}, "step": 0, "token_id": 5}
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import gradio as gr
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tempo.engine.branch import parent_result, with_parent
from tempo.errors import RequestError
from tempo.fields import shown
from tempo.request import build_request
from tempo.result import GenerationResult
from tempo.serve.jobs import JobQueue
from tempo.settings.schema import ApiSettings, Settings

log = logging.getLogger(__name__)


class BranchBody(BaseModel):
    """The body of POST /branch: the parent (a result) or its request, the step, the token, overrides."""

    model_config = ConfigDict(extra="forbid")
    parent: Optional[dict] = Field(None, description="the parent result (TEMPO_SPEC section 8 JSON)")
    request: Optional[dict] = Field(None, description="or the parent's request (prompt + fields): generated first")
    step: int = Field(description="the step to branch at (0 = the first)")
    token_id: int = Field(description="the token alone at that step (any id of the vocabulary)")
    overrides: dict = Field(default_factory=dict, description="request fields that differ from the parent's")


def parent_request(parent: Any, request: Any, settings: Settings):
    """Which parent a call names: ``(result, None)`` or ``(None, the parent's request)``; RequestError else."""
    if (parent is None) == (request is None):
        raise RequestError("parent", "give the parent result or its request (one of them)")
    if parent is not None:
        return parent_result(parent), None
    if not isinstance(request, dict) or not isinstance(request.get("prompt"), str):
        raise RequestError("request", f"must be a request: an object with a prompt, got {shown(request)}")
    fields = {k: v for k, v in request.items() if k != "prompt"}
    return None, build_request(request["prompt"], settings, **fields)


def _overrides(overrides: Any) -> dict:
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise RequestError("overrides", f"must be an object of request fields, got {shown(overrides)}")
    return overrides


def run_branch(scheduler: JobQueue, settings: Settings, parent: Any, step: Any, token_id: Any,
               overrides: Any = None, timeout: float | None = None, request: Any = None) -> GenerationResult:
    """The branch's result, its request run by ``scheduler`` (and the parent's first when only ``request`` is
    given). Raises ``RequestError`` naming the field; ``TimeoutError`` past ``timeout``."""
    if request is None and isinstance(parent, dict) and "steps" not in parent and "prompt" in parent:
        parent, request = None, parent  # the gradio endpoint's one argument: a result or a request
    result, first = parent_request(parent, request, settings)
    fields = _overrides(overrides)
    if first is not None:
        result = _finished(scheduler.submit(first), timeout)
    branch, record = scheduler.engine.branch_request(result, step, token_id, **fields)
    return with_parent(_finished(scheduler.submit(branch), timeout), record)


def _finished(job, timeout: float | None) -> GenerationResult:
    try:
        return job.wait(timeout)
    finally:
        job.cancel()  # no effect once done; a caller that went away frees the batch row


# --- gradio_client: /branch ----------------------------------------------------------------------------------

def register(api: Any) -> None:
    """The ``/branch`` endpoint (call inside ``with gr.Blocks()``; ``api``: ``endpoints.Endpoints``)."""
    def branch(parent: dict, step: int, token_id: int, settings: dict | None = None) -> dict:
        """A branch of ``parent`` (a result JSON, or the request that makes it) at ``step`` with ``token_id``
        alone there, then generated on by the rules with the parent's settings (``settings``: overrides).
        Returns the branch's result JSON with ``parent`` recorded."""
        try:
            return run_branch(api.scheduler, api.settings, parent, _int(step), _int(token_id), settings,
                              api.timeout).to_dict()
        except (RequestError, TimeoutError) as exc:
            raise gr.Error(str(exc)) from None

    gr.api(branch, api_name="branch")


def _int(value: Any) -> Any:
    """Gradio hands numbers over JSON: 3.0 is the step 3."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# --- REST: POST /branch ----------------------------------------------------------------------------------------

def add_route(app: FastAPI, settings: Settings, scheduler: JobQueue, config: ApiSettings,
              slots: threading.BoundedSemaphore, limiter: Any) -> None:
    """POST /branch on ``app``, under the same rate limit, slots and timeout as POST /generate."""

    @app.post("/branch", dependencies=[Depends(limiter)])
    async def branch(body: BranchBody, request: Request) -> JSONResponse:
        """A branch (TEMPO_SPEC section 12): ``parent`` (a result) or ``request`` (the parent's request, generated
        first), ``step``, ``token_id``, ``overrides`` -> the branch's result JSON with ``parent``; 422 naming
        the field on bad input."""
        return await answer_branch(body, request, settings, scheduler, config, slots)


async def answer_branch(body: BranchBody, request: Request, settings: Settings, scheduler: JobQueue,
                        config: ApiSettings, slots: threading.BoundedSemaphore) -> JSONResponse:
    from tempo.serve.rest import client_address, wait_for_job

    client = client_address(request, config.trust_proxy_headers)
    try:
        result, first = parent_request(body.parent, body.request, settings)
        overrides = _overrides(body.overrides)
        if result is not None:  # a bad step or token answers before anything runs
            branch, record = scheduler.engine.branch_request(result, body.step, body.token_id, **overrides)
    except RequestError as exc:
        log.debug("POST /branch from %s: 422 %s", client, exc)
        return _refused(exc)
    if not slots.acquire(blocking=False):
        raise HTTPException(503, f"max_concurrent_requests: {config.max_concurrent_requests} generations "
                                 "are running; retry later", headers={"Retry-After": "1"})
    try:
        if first is not None:
            job = scheduler.submit(first)
            await wait_for_job(job, request, config.request_timeout)
            if job.error is not None:
                return _job_error(job.error)
            try:
                branch, record = scheduler.engine.branch_request(job.result, body.step, body.token_id, **overrides)
            except RequestError as exc:
                return _refused(exc)
        job = scheduler.submit(branch)
        await wait_for_job(job, request, config.request_timeout)
        if job.error is not None:
            return _job_error(job.error)
        log.debug("POST /branch from %s: 200, step %d token %d, %d steps", client, body.step, body.token_id,
                  len(job.result.steps))
        return JSONResponse(with_parent(job.result, record).to_dict())
    finally:
        slots.release()


def _refused(exc: RequestError) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)


def _job_error(error: BaseException) -> JSONResponse:
    if isinstance(error, RequestError):  # found by the engine (a rule of this model)
        return _refused(error)
    raise error
