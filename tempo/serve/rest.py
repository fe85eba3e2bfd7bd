"""The server: REST routes beside the Gradio app, on one FastAPI application.

    GET  /health     model loaded (and any fallback), device, queue depth, batches run, mean batch size
    POST /model      switch the model at run time (tempo/serve/model_route.py)
    POST /generate   the request JSON (``prompt`` + any request field) -> the result JSON;
                     422 naming the field on bad input
    POST /branch     a result (or its request), step, token_id, overrides -> the branch (serve/branch_api.py)
    GET  /docs       OpenAPI docs, when ``api.enable_docs``
    /v1/...          the OpenAI-compatible API (``tempo/serve/openai_api.py``), under the same limits
    GET  /metrics    Prometheus metrics, when ``api.enable_metrics`` (``tempo/serve/metrics.py``)
    /                the Gradio app (its own API under /gradio_api/)

The ``api`` settings section is enforced here: ``host``/``port`` (``serve``),
``cors_origins``, ``rate_limit`` (REST requests per client per minute, 429 past
it; 0 = off; the client is the first ``X-Forwarded-For`` address when
``trust_proxy_headers``), ``max_concurrent_requests`` (REST generations in flight, 503 past
it), ``request_timeout`` (seconds; 504 and the request leaves the batch), ``max_body_bytes``
(413 past it, before the body is parsed: ``tempo/serve/body_limit.py``).
"""
import asyncio
import logging
import math
import os
import socket
import threading
import time
from collections import defaultdict, deque
from typing import Any, Mapping, Optional

import gradio as gr
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from tempo.errors import RequestCancelled, RequestError
from tempo.engine.runner import Tempo
from tempo.request import FIELDS, FieldSpec, build_request
from tempo.serve.body_limit import BodyLimit
from tempo.serve.jobs import Job, JobQueue
from tempo.serve.model_route import add_model_route
from tempo.serve.switch import ModelSwitcher
from tempo.serve.zerogpu import make_scheduler
from tempo.settings.schema import ApiSettings, Settings

log = logging.getLogger(__name__)

ApiConfig = ApiSettings
"""The typed ``api`` settings section (``settings.api``); build one to serve with other limits."""


def request_model(fields: Mapping[str, FieldSpec] = FIELDS):
    """The pydantic body of POST /generate, from the request fields' declaration (all but the prompt optional):
    the OpenAPI docs list every field and its aliases (``threshold``; ``build_request`` resolves them), and an
    unknown one is a 422 naming it."""
    body: dict[str, Any] = {"prompt": (str, ...)}
    for spec in fields.values():
        if spec.name != "prompt":
            body[spec.name] = (Optional[spec.type], None)
            for alias in spec.aliases:
                body[alias] = (Optional[spec.type], Field(None, description=f"another name of {spec.name}"))
    return create_model("GenerateBody", __config__=ConfigDict(extra="forbid"), **body)


def client_address(request: Request, trust_proxy_headers: bool = False) -> str:
    """Who sent ``request``: the first address of ``X-Forwarded-For`` when ``trust_proxy_headers`` (behind a
    proxy, a Space's, every connection comes from the proxy), else the connection's peer. Never trusted by
    default: a client that reaches the server directly could name any address."""
    if trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """A sliding window per client (:func:`client_address`): at most ``limit`` requests in any ``window``
    seconds."""

    def __init__(self, limit: int, window: float = 60.0, trust_proxy_headers: bool = False):
        self.limit, self.window, self.trust_proxy_headers = limit, window, trust_proxy_headers
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> None:
        if self.limit <= 0:
            return
        client = client_address(request, self.trust_proxy_headers)
        now = time.monotonic()
        with self.lock:
            hits = self.hits[client]
            while hits and now - hits[0] >= self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                retry = max(1, int(self.window - (now - hits[0])) + 1)
                raise HTTPException(429, f"rate_limit: at most {self.limit} requests per {self.window:g} s "
                                         f"per client", headers={"Retry-After": str(retry)})
            hits.append(now)


def create_app(engine: Tempo, settings: Settings | None = None, scheduler: JobQueue | None = None,
               config: ApiSettings | None = None, fallback: dict[str, str] | None = None) -> FastAPI:
    """The FastAPI app: REST routes, then the Gradio app mounted at ``/``. ``app.state`` holds the
    scheduler (one per engine: share it between apps with ``scheduler=``) and the model switcher; ``fallback``
    says the engine serves ``model.fallback_model_id`` (tempo/models/fallback.py)."""
    from tempo.ui.app import CSS, THEME, create_demo

    settings = settings if settings is not None else engine.settings
    config = config or settings.api
    owns_scheduler = scheduler is None
    scheduler = scheduler or make_scheduler(engine, max_batch_size=settings.app.max_batch_size)
    switcher = ModelSwitcher(scheduler, settings, fallback)
    app = rest_app(engine, settings, scheduler, config, switcher)
    app.state.owns_scheduler = owns_scheduler
    demo = create_demo(scheduler, settings, switcher)
    demo.queue(max_size=settings.app.queue_max_size, default_concurrency_limit=settings.app.concurrency_limit)
    app.state.demo = demo
    return gr.mount_gradio_app(app, demo, path="/", theme=THEME, css=CSS, footer_links=["api", "gradio"])


def rest_app(engine: Tempo, settings: Settings, scheduler: JobQueue, config: ApiSettings,
             switcher: ModelSwitcher | None = None) -> FastAPI:
    """The REST half: CORS, the rate limit on every route, ``/health``, ``/generate`` and ``/model`` (the handlers
    are thin: :func:`health_report`, :func:`answer_generate`, tempo/serve/model_route.py)."""
    docs = config.enable_docs
    app = FastAPI(title="TEMPO", description="See where a language model hesitates.",
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    app.state.scheduler = scheduler
    app.state.config = config
    app.state.switcher = switcher = switcher or ModelSwitcher(scheduler, settings)
    app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["*"],
                       allow_headers=["*"])
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(StarletteHTTPException, unparsable_body)  # FastAPI raises Starlette's for a bad body
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)  # 413 before any body is parsed
    limiter = RateLimiter(config.rate_limit, config.rate_limit_window, config.trust_proxy_headers)
    slots = threading.BoundedSemaphore(config.max_concurrent_requests)
    Body = request_model()

    @app.get("/health", dependencies=[Depends(limiter)])
    def health() -> dict:
        """Model loaded (and any fallback), device, queue depth, batches run, mean batch size."""
        return health_report(scheduler.engine, scheduler, switcher.fallback)

    @app.post("/generate", dependencies=[Depends(limiter)])
    async def generate(body: Body, request: Request) -> JSONResponse:  # type: ignore[valid-type]
        """The request JSON of TEMPO_SPEC (``prompt`` + any request field) -> the result JSON."""
        return await answer_generate(body.model_dump(exclude_none=True), request, settings, scheduler, config, slots)

    add_model_route(app, switcher, limiter)
    from tempo.serve import branch_api; branch_api.add_route(app, settings, scheduler, config, slots, limiter)  # noqa: E702

    from tempo.serve.explore_api import add_explore_routes  # issue 13: /lens and /forks
    add_explore_routes(app, settings, scheduler, config, limiter, slots)
    from tempo.serve import metrics, openai_api  # issue 14: /v1 (OpenAI's API) and /metrics
    openai_api.install(app, settings, scheduler, config, limiter, slots)
    if config.enable_metrics:
        metrics.install(app, scheduler, config)
    return app


async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body pydantic rejects (an unknown field, a wrong JSON type): 422 naming the first field."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    # Not JSON at all: FastAPI's loc holds the character offset of the error (("body", 0)), not a field; an
    # unknown key that is the empty string names nothing either: the body is what was wrong.
    field = loc[0] if loc and loc[0] and first.get("type") != "json_invalid" else "body"
    return JSONResponse({"detail": f"{field}: {first.get('msg', 'invalid')}", "field": field,
                         "errors": jsonable(exc.errors())}, status_code=422)


PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's 400 for a body it cannot even decode (bytes that are no text, before any JSON parsing)."""


async def unparsable_body(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A body FastAPI cannot decode: 422 naming ``body``, like one that is not JSON; other HTTP errors as FastAPI
    answers them."""
    if exc.status_code == 400 and exc.detail == PARSE_ERROR:
        return JSONResponse({"detail": "body: not JSON text (its bytes cannot be decoded)", "field": "body"},
                            status_code=422)
    return await http_exception_handler(request, exc)


def health_report(engine: Tempo, scheduler: JobQueue, fallback: dict[str, str] | None = None) -> dict:
    """``fallback``: ``{"wanted", "serving", "reason"}`` while the app serves model.fallback_model_id, else null."""
    info = engine.loaded.info()
    return {"status": "ok", "model_loaded": True, "model": info["id"], "device": info["device"],
            "dtype": info["dtype"], "weights": engine.loaded.weights(), "fallback": fallback, **scheduler.stats()}


async def answer_generate(values: dict[str, Any], request: Request, settings: Settings, scheduler: JobQueue,
                          config: ApiSettings, slots: threading.BoundedSemaphore) -> JSONResponse:
    """POST /generate: validate (422 naming the field), take a slot (503 past ``max_concurrent_requests``),
    wait for the scheduler's result (504 past ``request_timeout``), answer the result JSON."""
    client = client_address(request, config.trust_proxy_headers)
    log.debug("POST /generate from %s: %d prompt characters, fields %s", client, len(values.get("prompt", "")),
              sorted(k for k in values if k != "prompt"))
    try:
        generation = build_request(values.pop("prompt"), settings, **values)
    except RequestError as exc:
        log.debug("POST /generate from %s: 422 %s", client, exc)
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)
    if not slots.acquire(blocking=False):
        raise HTTPException(503, f"max_concurrent_requests: {config.max_concurrent_requests} generations "
                                 "are running; retry later", headers={"Retry-After": "1"})
    try:
        job = scheduler.submit(generation)
        await wait_for_job(job, request, config.request_timeout)
        if isinstance(job.error, RequestError):  # found by the engine (num_layers_to_use of this model)
            return JSONResponse({"detail": str(job.error), "field": job.error.field}, status_code=422)
        if isinstance(job.error, RequestCancelled):  # the model was switched under it: the message says so
            return JSONResponse({"detail": str(job.error)}, status_code=503)
        if job.error is not None:
            raise job.error
        log.debug("POST /generate from %s: 200, %d steps in %.3f s (%s)", client, len(job.result.steps),
                  job.result.timing.total_s, job.result.stop_reason)
        return JSONResponse(job.result.to_dict())
    finally:
        slots.release()


async def wait_for_job(job: Job, request: Request, timeout: float) -> None:
    """Until the job is done; cancel it (it leaves the batch) on timeout (504) or when the client goes (499)."""
    deadline = time.monotonic() + timeout
    while not job.done:
        await asyncio.sleep(0.01)
        if time.monotonic() > deadline:
            job.cancel()
            raise HTTPException(504, f"request_timeout: no result within {timeout:g} s")
        if await request.is_disconnected():
            job.cancel()
            raise HTTPException(499, "client disconnected")


def jsonable(value: Any) -> Any:
    """Pydantic error details with their exceptions made strings (and nan / infinities: JSON has none)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a background thread: ``Server(app, host, port).start()``, then ``.url``, ``.close()``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        self.app, self.host, self.port = app, host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                    ws="none", timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, name="tempo-server", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> "Server":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.host}:{self.port}")
            time.sleep(0.05)
        return self

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        if self.app.state.owns_scheduler:
            self.app.state.scheduler.close()


def bind_address(config: ApiSettings) -> tuple[str, int]:
    """Host and port: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` win over the settings; on a Hugging
    Face Space (``SPACE_ID`` set) the default is 0.0.0.0:7860, where the Space's proxy looks."""
    on_space = bool(os.environ.get("SPACE_ID"))
    host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_space else config.host)
    port = int(os.environ.get("GRADIO_SERVER_PORT") or (7860 if on_space else config.port))
    return host, port
