"""``Tempo.lens`` and ``Tempo.forks``: the layer view and the forks analysis of TEMPO_SPEC section 12, driven
over one engine. The math lives in ``lens.py`` and ``forks.py``; this module only wires them to the model and
runs the rollouts batched (``Tempo.run`` in chunks of ``app.max_batch_size`` rows, never one by one)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from tempo.engine.forks import ForksResult, plan_rollouts, report, request_of
from tempo.engine.lens import LensResult, check_top_k, contexts, layer_view
from tempo.engine.prompting import prompt_row
from tempo.errors import RequestError
from tempo.forks_request import ForksRequest, build_forks
from tempo.request import GenerationRequest
from tempo.result import GenerationResult

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""``progress(rollouts done, rollouts in all)``."""


def lens(engine: Any, prompt: str | None = None, result: GenerationResult | dict | None = None,
         step: int | None = None, top_k: int = 5) -> LensResult:
    """The layer view of ``prompt``'s end, or of step ``step`` of ``result`` (its prompt and settings: the chat
    template decides the prompt's tokens)."""
    check_top_k(top_k)
    if isinstance(result, dict):
        result = GenerationResult.from_dict(result)
    if result is not None:
        request = request_of(result, engine.settings)
    else:
        request = engine.request(prompt)
    if step is not None and result is None:
        raise RequestError("step", "needs a result (--from RESULT.json): a step is a step of a result")
    row = prompt_row(None, request, engine.loaded.tokenizer, engine.limits)
    positions = contexts(row.prompt_ids, result, step)
    return layer_view(engine.loaded.model, engine.loaded.tokenizer, positions, top_k, step, engine.adapter.device)


def forks_options(engine: Any, options: ForksRequest | None = None, **values: Any) -> ForksRequest:
    """``options`` as given, else the validated parameters ``values`` (None = the default)."""
    return options if options is not None else build_forks(engine.settings, **values)


def forks(engine: Any, request_or_result: GenerationRequest | GenerationResult | dict, options: ForksRequest,
          progress: Progress | None = None) -> ForksResult:
    """Generate the request (a result is taken as it is), then draw every rollout of the analysis, batched in
    chunks of ``app.max_batch_size``, and report each step's fork score."""
    result = request_or_result
    if isinstance(result, dict):
        result = GenerationResult.from_dict(result)
    if isinstance(result, GenerationRequest):
        result = engine.run([result])[0]
    plan = plan_rollouts(result, options, engine.settings)
    size = engine.settings.app.max_batch_size
    drawn: list[GenerationResult] = []
    if progress is not None:
        progress(0, len(plan.requests))
    for start in range(0, len(plan.requests), size):
        drawn.extend(engine.run(plan.requests[start:start + size]))
        if progress is not None:
            progress(len(drawn), len(plan.requests))
    log.debug("forks: %d rollouts in %d batches of at most %d", len(drawn), -(-len(drawn) // size), size)
    return report(plan, drawn)
