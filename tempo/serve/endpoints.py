"""Named API endpoints for ``gradio_client``: /generate (streams), /generate_batch, /compare, /model_info.

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    result = client.predict("the cat", {"selection_threshold": 0.1, "max_tokens": 20}, api_name="/generate")

Inputs are the prompt and a dict of request fields (any ``GenerationRequest``
field, or its alias: ``threshold``; missing ones take the settings' defaults); outputs are result JSON
(TEMPO_SPEC section 8). A bad field raises ``gr.Error`` whose message starts with
the field's name, e.g. ``selection_threshold: must be in [0.0, 1.0], got 2.0``.
"""
from __future__ import annotations

from typing import Any, Iterator

import gradio as gr

from tempo.request import MODES
from tempo.engine.runner import COMPARE_MODES, compare_requests
from tempo.errors import RequestError, TempoError
from tempo.ui.render import partial_result
from tempo.request import GenerationRequest, build_request
from tempo.result import GenerationResult
from tempo.settings.schema import Settings
from tempo.serve.jobs import ENDS, Job, JobQueue


def compare_variants() -> dict[str, dict[str, Any]]:
    """Variant name -> the fields that make it (the rest is shared): ``Tempo.compare``'s modes."""
    return {name: dict(fields) for name, fields in COMPARE_MODES.items()}


def wait(job: Job, timeout: float | None) -> GenerationResult:
    """The job's result; a user-facing ``gr.Error`` for a bad request, a timeout or a request a model switch
    cancelled."""
    try:
        return job.wait(timeout)
    except (TempoError, TimeoutError) as exc:
        raise gr.Error(str(exc)) from None


class Endpoints:
    """Request building and the API functions over one scheduler (shared by the UI's handlers)."""

    def __init__(self, scheduler: JobQueue, settings: Settings):
        self.scheduler = scheduler
        self.settings = settings
        self.timeout = settings.api.request_timeout or None
        self.max_tokens_limit = settings.generation.max_tokens_limit
        self.stream_interval = settings.app.stream_interval

    def build(self, prompt: str, overrides: dict[str, Any] | None) -> GenerationRequest:
        """A validated request, or ``gr.Error`` naming the bad field."""
        if overrides is not None and not isinstance(overrides, dict):
            raise gr.Error(f"settings: must be an object of request fields, got {type(overrides).__name__}")
        try:
            return build_request(prompt, self.settings, **(overrides or {}))
        except RequestError as exc:
            raise gr.Error(str(exc)) from None

    def defaults(self) -> dict[str, Any]:
        """The effective default of every request field (settings, then code)."""
        return build_request("-", self.settings).to_dict()

    def model_info(self) -> dict:
        """Model id, device, dtype, parameter count; the queue's counters; ``inspection``: layer types,
        TEMPO support and memory estimates (``python -m tempo info``, docs/model_info.md)."""
        loaded = self.scheduler.engine.loaded
        return {**loaded.info(), "parameters": loaded.parameters, "modes": list(MODES),
                "max_tokens_limit": self.max_tokens_limit, "queue": self.scheduler.stats(),
                "inspection": self.inspection()}

    def inspection(self) -> dict:
        """``model_info.describe`` of the loaded model (computed once per model: a switch changes it)."""
        loaded = self.scheduler.engine.loaded
        if getattr(self, "_inspected", None) is not loaded:
            from tempo.models.info import ModelInspectionError, describe_loaded

            self._inspected = loaded
            try:
                self._inspection = describe_loaded(loaded.model, loaded.dtype,
                                                   self.settings.generation.max_parallel_tokens)
            except ModelInspectionError as exc:
                self._inspection = {"error": str(exc)}
        return self._inspection

    def generate(self, prompt: str, settings: dict | None = None) -> Iterator[dict]:
        """Stream progress as the steps come (at most one per ``app.stream_interval`` seconds):
        ``{prompt, mode, text, clean_text, steps_done, max_tokens, stop_reason: "running"}``;
        the last value is the whole result."""
        job = self.scheduler.submit(self.build(prompt, settings))
        try:
            for update in job.stream(timeout=self.timeout, every=self.stream_interval):
                if update.steps and update.state not in ENDS:
                    yield partial_result(job.request, job.steps)
            yield wait(job, self.timeout).to_dict()
        except TimeoutError as exc:
            raise gr.Error(str(exc)) from None
        finally:
            job.cancel()  # no effect once done; a client that went away leaves the batch

    def generate_batch(self, prompts: list[str], settings: list[dict | None]) -> tuple[list[dict]]:
        """Gradio batches concurrent calls: every prompt joins the scheduler's batch at once. A bad item
        answers ``{"error": ..., "field": ...}`` without failing the others."""
        out: list[dict | None] = [None] * len(prompts)
        accepted = []
        for i, (prompt, overrides) in enumerate(zip(prompts, settings)):
            try:
                accepted.append((i, build_request(prompt, self.settings, **(overrides or {}))))
            except RequestError as exc:
                out[i] = {"error": str(exc), "field": exc.field}
        jobs = self.scheduler.submit_many([r for _, r in accepted])
        try:
            for (i, _), job in zip(accepted, jobs):
                out[i] = wait(job, self.timeout).to_dict()
        finally:
            for job in jobs:
                job.cancel()
        return (out,)

    def compare_requests(self, prompt: str, settings: dict | None) -> dict[str, GenerationRequest]:
        """The side-by-side variants (as ``Tempo.compare``): TEMPO, TEMPO with pruning, MCTS, default greedy;
        each only when the request has its fields / the engine its mode."""
        base = {k: v for k, v in (settings or {}).items() if k not in ("mode", "use_retroactive_pruning")}
        try:
            return compare_requests(prompt, self.settings, **base)
        except RequestError as exc:
            raise gr.Error(str(exc)) from None

    def compare(self, prompt: str, settings: dict | None = None) -> dict:
        """Every variant on the same prompt and settings, generated together: ``{variant: result}``
        (variants: tempo, tempo_pruning, mcts, default)."""
        requests = self.compare_requests(prompt, settings)
        jobs = self.scheduler.submit_many(list(requests.values()))
        try:
            return {name: wait(job, self.timeout).to_dict() for name, job in zip(requests, jobs)}
        finally:
            for job in jobs:
                job.cancel()

    def lens(self, prompt: str | None, result: dict | None = None, step: int | None = None, top_k: int = 5) -> dict:
        """The layer view (TEMPO_SPEC section 12) of the prompt's end, or of step ``step`` of ``result`` (per kept
        candidate of the step before): ``{"layers": [{"layer", "top": [...]}], "exit_layer", "step", "candidates"}``."""
        from tempo.serve.explore_api import lens_view

        try:
            return lens_view(self.scheduler.engine, prompt, result, step, top_k)
        except TempoError as exc:
            raise gr.Error(str(exc)) from None

    def forks(self, prompt: str | None, settings: dict | None = None, options: dict | None = None,
              result: dict | None = None) -> Iterator[dict]:
        """Forks of the prompt's result (or of ``result``): progress ``{"stop_reason": "running", "stage",
        "rollouts_done", "rollouts_total"}`` while the rollouts run (all through the scheduler's batch), then
        ``{"result", "forks": [{"step", "score", "fork", "candidates"}], "options"}``. ``options``: samples,
        horizon, rollout_temperature, outcome_pattern, fork_threshold."""
        from tempo.serve.explore_api import forks_stream

        try:
            yield from forks_stream(self.scheduler, self.settings, prompt, settings, options, result, self.timeout,
                                    self.stream_interval)
        except (TempoError, TimeoutError) as exc:
            raise gr.Error(str(exc)) from None


def register(api: Endpoints, max_batch_size: int = 8) -> None:
    """Add the named endpoints to the Blocks being built (call inside ``with gr.Blocks()``)."""
    def generate(prompt: str, settings: dict | None = None) -> dict:
        yield from api.generate(prompt, settings)

    def generate_batch(prompt: list[str], settings: list[dict | None]) -> tuple[list[dict]]:
        return api.generate_batch(prompt, settings)

    def compare(prompt: str, settings: dict | None = None) -> dict:
        return api.compare(prompt, settings)

    def model_info() -> dict:
        return api.model_info()

    generate.__doc__, compare.__doc__, model_info.__doc__ = (api.generate.__doc__, api.compare.__doc__,
                                                             api.model_info.__doc__)
    generate_batch.__doc__ = api.generate_batch.__doc__
    gr.api(generate, api_name="generate")
    gr.api(generate_batch, api_name="generate_batch", batch=True, max_batch_size=max_batch_size)
    gr.api(compare, api_name="compare")
    gr.api(model_info, api_name="model_info")
    from tempo.serve import branch_api; branch_api.register(api)  # noqa: E702 -- /branch (issue 13)
    register_explore(api)


def register_explore(api: Endpoints) -> None:
    """``/lens`` and ``/forks`` (issue 13)."""
    def lens(prompt: str | None, result: dict | None = None, step: int | None = None, top_k: int = 5) -> dict:
        return api.lens(prompt, result, step, top_k)

    def forks(prompt: str | None, settings: dict | None = None, options: dict | None = None,
              result: dict | None = None) -> dict:
        yield from api.forks(prompt, settings, options, result)

    lens.__doc__, forks.__doc__ = api.lens.__doc__, api.forks.__doc__
    gr.api(lens, api_name="lens")
    gr.api(forks, api_name="forks")
