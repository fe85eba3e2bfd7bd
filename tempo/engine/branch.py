"""Branch a result at a step (TEMPO_SPEC section 12): the request that gives the parent's first ``s`` sets as
they were selected (every candidate, same order), the token ``c`` alone at step ``s``, and continues by the rules.

A branch is an ordinary request (``forced_sets``), so it runs wherever a request runs — batched with other users
by the scheduler, its prompt taken from the prompt cache — and its result records ``parent``. No torch here:
the interfaces (Python, CLI, REST, ``gradio_client``, the app) share these functions and let ``Tempo`` run the
request.
"""
from __future__ import annotations

import logging
from typing import Any

from tempo.errors import RequestError
from tempo.fields import shown
from tempo.request import FIELDS, GenerationRequest, build_request
from tempo.result import GenerationResult

log = logging.getLogger(__name__)

FIXED = ("prompt", "forced_sets")
"""What a branch takes from its parent and its step and token, never from overrides."""


def parent_result(parent: GenerationResult | dict[str, Any]) -> GenerationResult:
    """The parent as a result: a ``GenerationResult``, or its JSON as a dict; ``RequestError("parent", ...)``
    for anything else."""
    if isinstance(parent, GenerationResult):
        return parent
    if not isinstance(parent, dict) or not isinstance(parent.get("steps"), list):
        raise RequestError("parent", f"must be a result (the JSON of a generation, with its steps), got {shown(parent)}")
    try:
        return GenerationResult.from_dict(parent)
    except (TypeError, KeyError, AttributeError) as exc:
        raise RequestError("parent", f"is not a result of this TEMPO version: {exc}") from None


def given_sets(parent: GenerationResult, step: int, token_id: int) -> list[list[int]]:
    """The parent's sets before ``step``, every candidate in order (pruned ones too: they were selected), then
    ``[token_id]``."""
    return [[c.token_id for c in s.candidates] for s in parent.steps[:step]] + [[token_id]]


def branch_request(parent: GenerationResult | dict[str, Any], step: Any, token_id: Any, settings: Any = None,
                   vocab_size: int | None = None, **overrides: Any) -> tuple[GenerationRequest, dict[str, Any]]:
    """The branch's request and the ``parent`` record its result keeps: ``{"prompt", "step", "token_id"}``.

    The parent's settings (its result's ``settings``), then ``overrides`` (any request field but the prompt and
    ``forced_sets``; ``None`` means "keep the parent's"), then the given sets. ``step`` may be any step of the
    parent, or the one after its last (where it stopped at EOS), below ``max_tokens``; ``token_id`` any id of
    the vocabulary (``vocab_size``, when known), not only a candidate."""
    parent = parent_result(parent)
    _whole("step", step)
    _whole("token_id", token_id)
    fixed = sorted(name for name in FIXED if overrides.get(name) is not None)
    if fixed:
        raise RequestError(fixed[0], "a branch takes it from its parent, its step and its token; it cannot be set")
    if vocab_size is not None and token_id >= vocab_size:
        raise RequestError("token_id", f"must be a token id in [0, {vocab_size - 1}] for this model, got {token_id}")
    inherited = {k: v for k, v in parent.settings.items() if k in FIELDS and k not in FIXED}
    given = {k: v for k, v in overrides.items() if v is not None}
    last = len(parent.steps)
    if step > last:  # before the request is built: the given sets must come from the parent's steps
        raise RequestError("step", f"must be in [0, {last}] (a step of the parent, or the one after its last), "
                                   f"got {step}")
    request = build_request(parent.prompt, settings, **{**inherited, **given,
                                                        "forced_sets": given_sets(parent, step, token_id)})
    if step >= request.max_tokens:
        raise RequestError("step", f"must be below max_tokens ({request.max_tokens}) to generate step {step}; "
                                   "raise max_tokens or branch earlier")
    log.debug("branch of a %d-step result at step %d with token %d (overrides: %s)", last, step, token_id,
              sorted(given))
    return request, {"prompt": parent.prompt, "step": step, "token_id": token_id}


def _whole(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RequestError(name, f"must be an integer >= 0, got {shown(value)}")


def with_parent(result: GenerationResult, parent: dict[str, Any]) -> GenerationResult:
    """``result`` with its ``parent`` recorded (TEMPO_SPEC section 12)."""
    result.parent = dict(parent)
    return result
