"""Prometheus metrics (``api.enable_metrics``): ``GET /metrics`` in Prometheus' text format, or on a port of its
own (``api.metrics_port`` > 0; then the app's port does not serve them).

    tempo_http_requests_total{route, method, status}        requests answered, by route template
    tempo_http_request_duration_seconds{route, method}      until the last byte of the answer (a stream's too)
    tempo_queue_depth, tempo_batch_rows                     requests waiting to join the batch; rows in it now
    tempo_batch_size                                        histogram: the batch's rows at each step
    tempo_steps_total, tempo_row_steps_total                batch steps; steps summed over the rows (rate() of
                                                            this one: steps generated per second)
    tempo_generations_total{outcome}                        done, cancelled, failed
    tempo_prompt_cache_hits_total, ..._misses_total         prefills reused / computed (0 with the cache off)
    tempo_model_load_seconds{model}, tempo_model_info{...}  the served model's load time; id, device, dtype

The registry belongs to one app (tests build many); the scheduler's figures are read when scraped, so the
worker's loop pays nothing for them but counting batch sizes.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterator

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import start_http_server
from starlette.routing import Match, Mount

from tempo.serve.jobs import JobQueue
from tempo.settings.schema import ApiSettings

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OTHER_ROUTE = "other"
"""The route label of paths no REST route matches: the Gradio app's pages, assets and its own API."""


def batch_histogram(sizes: dict[int, int], buckets: tuple[int, ...] = BATCH_BUCKETS) -> list[tuple[str, int]]:
    """Cumulative ``(le, count)`` buckets of a histogram from ``{batch size: steps run at that size}``."""
    out = [(str(float(b)), sum(n for size, n in sizes.items() if size <= b)) for b in buckets]
    return out + [("+Inf", sum(sizes.values()))]


class SchedulerCollector:
    """The scheduler's and the engine's figures, read at each scrape (``scheduler.engine`` may change when the
    model is switched)."""

    def __init__(self, scheduler: JobQueue):
        self.scheduler = scheduler

    def collect(self) -> Iterator[Any]:
        s, c = self.scheduler, self.scheduler.counters
        yield GaugeMetricFamily("tempo_queue_depth", "Requests waiting to join the batch", value=s.queue_depth)
        yield GaugeMetricFamily("tempo_batch_rows", "Rows in the running batch now", value=s.running)
        yield HistogramMetricFamily("tempo_batch_size", "Rows in the batch at each step",
                                    buckets=batch_histogram(dict(c.batch_sizes)), sum_value=c.rows_stepped)
        yield CounterMetricFamily("tempo_steps", "Batch steps run", value=c.steps_run)
        yield CounterMetricFamily("tempo_row_steps", "Steps generated, summed over the batch's rows",
                                  value=c.rows_stepped)
        outcomes = CounterMetricFamily("tempo_generations", "Requests the scheduler ended", labels=["outcome"])
        for outcome, value in (("done", c.requests_done), ("cancelled", c.requests_cancelled),
                               ("failed", c.requests_failed)):
            outcomes.add_metric([outcome], value)
        yield outcomes
        engine = s.engine
        cache = engine.prompt_cache
        yield CounterMetricFamily("tempo_prompt_cache_hits", "Prompt prefills taken from the prompt cache",
                                  value=cache.hits if cache is not None else 0)
        yield CounterMetricFamily("tempo_prompt_cache_misses", "Prompt prefills computed (not in the prompt cache)",
                                  value=cache.misses if cache is not None else 0)
        info = engine.loaded.info()
        load = GaugeMetricFamily("tempo_model_load_seconds", "Seconds the served model took to load",
                                 labels=["model"])
        load.add_metric([info["id"]], getattr(engine.loaded, "load_s", 0.0))
        yield load
        model = GaugeMetricFamily("tempo_model_info", "The served model", labels=["model", "device", "dtype"])
        model.add_metric([info["id"], info["device"], info["dtype"]], 1)
        yield model


class Metrics:
    """One app's registry: the HTTP counters and histograms, and the scheduler's figures."""

    def __init__(self, scheduler: JobQueue):
        self.registry = CollectorRegistry()
        self.requests = Counter("tempo_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("tempo_http_request_duration_seconds", "Seconds until the answer's last byte",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(SchedulerCollector(scheduler))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def route_of(app: FastAPI, scope: dict) -> str:
    """The path template of the REST route ``scope`` goes to (``/v1/models/{model:path}``), else ``other``: a
    label per route, not per path."""
    for route in app.router.routes:
        if not isinstance(route, Mount) and route.matches(scope)[0] != Match.NONE:
            return route.path
    return OTHER_ROUTE


class RequestMetrics:
    """ASGI middleware: count each HTTP request by route, method and status, and time it to its last byte."""

    def __init__(self, app: Callable, metrics: Metrics, router_app: FastAPI):
        self.app, self.metrics, self.router_app = app, metrics, router_app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status, route = time.perf_counter(), [500], route_of(self.router_app, scope)

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(route, scope["method"], status[0], time.perf_counter() - started)


def install(app: FastAPI, scheduler: JobQueue, config: ApiSettings) -> Metrics:
    """Count ``app``'s requests and serve the metrics: ``GET /metrics``, or a server of their own on
    ``config.metrics_port`` (started and stopped with the app)."""
    metrics = Metrics(scheduler)
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics, router_app=app)
    if config.metrics_port > 0:
        serve_on_port(app, metrics, config.host, config.metrics_port)
    else:
        @app.get("/metrics", tags=["Metrics"])
        def prometheus_metrics() -> Response:
            """The metrics in Prometheus' text format."""
            return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)
    return metrics


def serve_on_port(app: FastAPI, metrics: Metrics, host: str, port: int) -> None:
    """Serve ``metrics`` on ``host:port`` while ``app`` runs (its lifespan starts and stops the server)."""
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(running: Any):
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
        log.info("metrics at http://%s:%d/metrics", host, port)
        try:
            async with outer(running) as state:
                yield state
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    app.router.lifespan_context = lifespan
