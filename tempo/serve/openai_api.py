"""The OpenAI-compatible routes (TEMPO_SPEC section 14), beside ``/generate`` on the same FastAPI app:

    POST /v1/completions        a prompt -> its completion (``stream``: server-sent events)
    POST /v1/chat/completions   messages through the model's chat template -> the assistant's message
    GET  /v1/models             the model being served (and ``/v1/models/{id}``)

Requests go where ``/generate``'s go: the same scheduler (they share the batch with the app's users), the same
rate limit, the same ``max_concurrent_requests`` slots, ``request_timeout`` and body limit. TEMPO's request
fields ride along as extra body fields (``extra_body`` of the ``openai`` client), generated from
``tempo.request.FIELDS``; the answer's ``tempo`` object is the result (bracketed text, steps, sets).
Errors are OpenAI's shape, status 400 for a bad field, ``param`` naming it. The mapping itself is pure
(``tempo/serve/openai_map.py``).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict
from typing import Any, AsyncIterator, Callable, Mapping, Optional, Union

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ConfigDict, create_model
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tempo.errors import RequestError
from tempo.request import FIELDS, FieldSpec, build_request
from tempo.serve import openai_map as om
from tempo.serve.jobs import ENDS, Job, JobQueue, Update
from tempo.settings.schema import ApiSettings, Settings

log = logging.getLogger(__name__)

PREFIX = "/v1/"
Number = Optional[float]
COMMON = {  # OpenAI's fields of both routes (max_tokens, temperature, top_p, seed: TEMPO's own too)
    "model": (Optional[str], None), "stream": (Optional[bool], None), "stream_options": (Optional[dict], None),
    "stop": (Optional[Union[str, list[str]]], None), "n": (Optional[int], None), "user": (Optional[str], None),
    "logit_bias": (Optional[dict], None), "presence_penalty": (Number, None), "frequency_penalty": (Number, None),
    "store": (Optional[bool], None), "metadata": (Optional[dict], None), "service_tier": (Optional[str], None),
}
COMPLETION = {"prompt": (Union[str, list[str]], ...), "logprobs": (Optional[int], None),
              "echo": (Optional[bool], None), "best_of": (Optional[int], None), "suffix": (Optional[str], None)}
CHAT = {"messages": (list[dict[str, Any]], ...), "logprobs": (Optional[bool], None),
        "top_logprobs": (Optional[int], None), "max_completion_tokens": (Optional[int], None),
        "tools": (Optional[list], None), "tool_choice": (Optional[Union[str, dict]], None),
        "functions": (Optional[list], None), "function_call": (Optional[Union[str, dict]], None),
        "response_format": (Optional[dict], None), "parallel_tool_calls": (Optional[bool], None)}


def body_model(name: str, own: dict[str, Any], fields: Mapping[str, FieldSpec] = FIELDS):
    """A route's pydantic body: OpenAI's fields, then every TEMPO request field (but the prompt) as an optional
    extra field, from its declaration; an unknown field is refused naming it."""
    body = {**COMMON, **own}
    for spec in fields.values():
        if spec.name != "prompt" and spec.name not in body:
            body[spec.name] = (Optional[spec.type], None)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **body)


CompletionBody = body_model("CompletionBody", COMPLETION)
ChatBody = body_model("ChatCompletionBody", CHAT)
TEMPO_NAMES = tuple(name for name in FIELDS if name != "prompt")


def openai_error(message: str, param: str | None, status: int = 400, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(om.error_body(message, param, status), status_code=status, headers=headers)


def install(app: FastAPI, settings: Settings, scheduler: JobQueue, config: ApiSettings, limiter: Callable,
            slots: threading.BoundedSemaphore) -> None:
    """Add the ``/v1`` routes to ``app`` and answer their errors (bad JSON, bad fields, 429, 503 ...) in OpenAI's
    shape; the app's other routes keep their own."""
    started = int(time.time())

    def model_id() -> str:
        return scheduler.engine.loaded.model_id

    @app.get("/v1/models", dependencies=[Depends(limiter)], tags=["OpenAI"])
    def list_models() -> dict:
        """The model being served, as OpenAI lists models."""
        return om.models_list(model_id(), started)

    @app.get("/v1/models/{model:path}", dependencies=[Depends(limiter)], tags=["OpenAI"])
    def get_model(model: str) -> JSONResponse:
        if model != model_id():
            return openai_error(f"model: {model!r} is not served here; this server serves {model_id()!r}",
                                "model", 404)
        return JSONResponse(om.model_card(model, started))

    @app.post("/v1/completions", dependencies=[Depends(limiter)], tags=["OpenAI"])
    async def completions(body: CompletionBody, request: Request):  # type: ignore[valid-type]
        """OpenAI's completions: the prompt's continuation (the result's ``clean_text``), TEMPO's result in
        ``tempo``."""
        values = body.model_dump(exclude_none=True)
        return await answer(values, request, chat=False)

    @app.post("/v1/chat/completions", dependencies=[Depends(limiter)], tags=["OpenAI"])
    async def chat_completions(body: ChatBody, request: Request):  # type: ignore[valid-type]
        """OpenAI's chat completions: the messages through the model's chat template; the assistant's message
        is the result's ``clean_text``, TEMPO's result in ``tempo``."""
        values = body.model_dump(exclude_none=True)
        return await answer(values, request, chat=True)

    async def answer(values: dict[str, Any], request: Request, chat: bool):
        try:
            generation, reply = build(values, chat, settings, scheduler)
            if values.get("stream"):  # the model's rules (the prompt's length) before the stream's 200, not after
                scheduler.engine.check(generation)
        except RequestError as exc:
            return openai_error(str(exc), chat_param(exc.field, chat))
        if not slots.acquire(blocking=False):
            raise HTTPException(503, f"max_concurrent_requests: {config.max_concurrent_requests} generations "
                                     "are running; retry later", headers={"Retry-After": "1"})
        try:
            job = scheduler.submit(generation)
        except BaseException:
            slots.release()
            raise
        if values.get("stream"):
            usage = bool((values.get("stream_options") or {}).get("include_usage"))
            return JobStream(stream(job, reply, config.request_timeout, usage), job, slots)
        try:
            return await respond(job, reply, request, config.request_timeout, chat)
        finally:
            slots.release()

    wrap_error_handlers(app)


def chat_param(field: str, chat: bool) -> str:
    """The field to name: in chat the prompt is the messages."""
    return "messages" if chat and field == "prompt" else field


def build(values: dict[str, Any], chat: bool, settings: Settings, scheduler: JobQueue):
    """The validated ``GenerationRequest`` and the ``Reply`` of an OpenAI body (``RequestError`` naming the
    field)."""
    om.check_unsupported(values)
    served = scheduler.engine.loaded.model_id
    if values.get("model") not in (None, served):
        raise om.refuse("model", f"{values['model']!r} is not served here; this server serves {served!r} "
                                 f"(GET /v1/models)")
    stops = om.stop_strings(values.get("stop"))
    if chat:
        for name in om.CHAT_ONLY_SYSTEM:
            if name in values:
                raise om.refuse(name, "in chat, send the system message as a message with role \"system\"")
        if values.get("top_logprobs") and not values.get("logprobs"):
            raise om.refuse("top_logprobs", "needs logprobs = true")
        top = values.get("top_logprobs", 0) if values.get("logprobs") else None
        top_field = "top_logprobs"
        prompt = om.chat_prompt(scheduler.engine.loaded.tokenizer, served, values["messages"])
    else:
        top, top_field = values.get("logprobs"), "logprobs"
        prompt = om.completion_prompt(values["prompt"])
    if top is not None and not 0 <= top <= om.MAX_LOGPROBS:
        raise om.refuse(top_field, f"must be an integer in [0, {om.MAX_LOGPROBS}], got {top}")
    fields = om.tempo_fields(values, TEMPO_NAMES, "max_completion_tokens" if chat else "max_tokens")
    generation = build_request(prompt, settings, **fields)
    return generation, om.Reply.new(chat, served, top, stops)


async def respond(job: Job, reply: om.Reply, request: Request, timeout: float, chat: bool) -> JSONResponse:
    """Wait for the job (cancelling it early at a stop string), then the whole answer."""
    from tempo.serve.rest import wait_for_job  # the same wait as /generate (504 on timeout, 499 when the client goes)

    if reply.stops:
        try:
            async for _ in follow(job, reply, timeout):
                pass
        except TimeoutError as exc:
            raise HTTPException(504, str(exc)) from None
    else:
        await wait_for_job(job, request, timeout)
    if isinstance(job.error, RequestError):  # found by the engine (a prompt over the model's context)
        return openai_error(str(job.error), chat_param(job.error.field, chat))
    if job.error is not None:
        raise job.error
    return JSONResponse(reply.response(job.result))


async def follow(job: Job, reply: om.Reply, timeout: float) -> AsyncIterator[tuple[Update, list, bool]]:
    """Each step update of the job with the clean tokens to show then, ``(update, tokens, stopped)``; a stop
    string cancels the job (it leaves the batch at the next step boundary)."""
    async for update in iterate_in_threadpool(job.stream(poll_s=0.05, timeout=timeout)):
        if update.state in ("queued", "running"):
            continue
        final = update.state in ENDS
        shown, stopped = om.shown_tokens(om.clean_tokens(job.steps), reply.stops, final)
        if stopped and not job.done:
            job.cancel()
        yield update, shown, stopped
        if final:
            return


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class JobStream(StreamingResponse):
    """A stream of server-sent events that, however it ends (done, an error, the client gone, even before its
    first event), cancels its job (it leaves the batch) and frees its ``max_concurrent_requests`` slot."""

    def __init__(self, events: AsyncIterator[bytes], job: Job, slots: threading.BoundedSemaphore):
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.job, self.slots = job, slots

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()
            self.slots.release()


async def stream(job: Job, reply: om.Reply, timeout: float, include_usage: bool) -> AsyncIterator[bytes]:
    """Server-sent events: a chunk per step with the new text (its logprobs when asked; ``tempo.steps``: the
    steps the update brought), the last chunk with the finish reason and the whole result in ``tempo``, then
    ``data: [DONE]``. An error after the stream began is one ``data: {"error": ...}`` event. The job leaves the
    batch when the client goes (``JobStream``)."""
    sent, offset = 0, 0
    if reply.chat:
        yield sse(reply.chunk([], first=True))
    try:
        async for update, shown, _ in follow(job, reply, timeout):
            if update.state in ENDS:
                break
            new = shown[sent:]
            if new:
                yield sse(reply.chunk(new, offset, tempo={"steps": [asdict(s) for s in update.steps]}))
                sent, offset = len(shown), offset + sum(len(t.text) for t in new)
    except TimeoutError as exc:
        yield sse(om.error_body(str(exc), None, 504))
        return
    if job.error is not None:
        field = job.error.field if isinstance(job.error, RequestError) else None
        yield sse(om.error_body(str(job.error), field and chat_param(field, reply.chat), 400 if field else 500))
        return
    result = job.result
    shown, stopped = om.shown_tokens(om.clean_tokens(result.steps), reply.stops, final=True)
    yield sse(reply.chunk(shown[sent:], offset, finish=om.finish_reason(result, stopped), tempo=result.to_dict()))
    if include_usage:
        yield sse(reply.usage_chunk(result, len(shown)))
    yield b"data: [DONE]\n\n"


def wrap_error_handlers(app: FastAPI) -> None:
    """The app's handlers of bad bodies and HTTP errors, answering in OpenAI's shape under ``/v1/``."""
    validation = app.exception_handlers.get(RequestValidationError)
    http = app.exception_handlers.get(StarletteHTTPException)

    async def on_validation(request: Request, exc: RequestValidationError):
        if not request.url.path.startswith(PREFIX):
            return await validation(request, exc)
        return openai_error(*validation_message(exc.errors()))

    async def on_http(request: Request, exc: StarletteHTTPException):
        if not request.url.path.startswith(PREFIX):
            return await http(request, exc)
        detail = str(exc.detail)
        if exc.status_code == 400:  # FastAPI's: a body it cannot decode
            return openai_error("body: not JSON text (its bytes cannot be decoded)", None)
        field = detail.split(":", 1)[0] if ":" in detail and " " not in detail.split(":", 1)[0] else None
        if exc.status_code == 404 and field is None:  # no route matched: the path is what was wrong
            detail = f"path: no route {request.url.path!r} ({detail}); the routes are under {PREFIX}models, " \
                     f"{PREFIX}completions and {PREFIX}chat/completions"
        return openai_error(detail, field, exc.status_code, getattr(exc, "headers", None))

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """OpenAI's message and ``param`` of the first pydantic error: the field, or none when the body is not JSON."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid" or not loc:
        return f"body: not valid JSON ({first.get('msg', 'invalid')})", None
    field = loc[0]
    message = "unknown field" if first.get("type") == "extra_forbidden" else first.get("msg", "invalid")
    if first.get("type") == "missing":
        message = "is required"
    return f"{field}: {message}", field

