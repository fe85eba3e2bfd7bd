"""The prompt as token ids: plain, or through the tokenizer's chat template for thinking mode."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tempo.engine.row import Row
from tempo.errors import RequestError
from tempo.request import GenerationRequest

log = logging.getLogger(__name__)

THINKING_SYSTEM_MESSAGE = "Enable deep thinking subroutine."


def system_message(request: GenerationRequest) -> str | None:
    """``system_content`` when given, else the thinking message when thinking is on, else none."""
    if request.system_content:
        return request.system_content
    if request.enable_thinking:
        return THINKING_SYSTEM_MESSAGE
    return None


def encode_prompt(tokenizer: Any, request: GenerationRequest) -> list[int]:
    """Token ids of the prompt. A system message goes through the chat template when the
    tokenizer has one; without a template the prompt is used plain (and a warning logged)."""
    system = system_message(request)
    if system is not None and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": request.prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if system is not None:
        log.warning("the tokenizer has no chat template: the system message is ignored, the prompt is used plain")
    return list(tokenizer(request.prompt)["input_ids"])


@dataclass(frozen=True)
class PromptLimits:
    """How long a prompt may be on one model (TEMPO_SPEC section 13, docs/limits.md).

    ``max_prompt_tokens``: prompt tokens at most (``generation.max_prompt_tokens``); ``context``: the positions
    a request may use, the model's ``max_position_embeddings`` or the smaller ``generation.max_context``
    (``None``: the model states none and no setting bounds it)."""

    max_prompt_tokens: int
    context: int | None

    @classmethod
    def of(cls, model_context: int | None, settings: Any | None = None) -> "PromptLimits":
        """The limits of a model with ``model_context`` positions under the typed ``settings`` (their declared
        defaults when None)."""
        if settings is None:
            from tempo.settings.schema import Settings
            settings = Settings.defaults()
        generation = settings.generation
        bounds = [b for b in (model_context, generation.max_context or None) if b]
        return cls(generation.max_prompt_tokens, min(bounds) if bounds else None)


def positions_needed(request: GenerationRequest) -> int:
    """Positions a request uses after its prompt: ``max_tokens`` steps; a tree search may also reach
    ``mcts_simulations`` tree tokens and ``mcts_depth`` rollout tokens beyond its last step."""
    if request.mode == "mcts":
        return request.max_tokens + request.mcts_simulations + request.mcts_depth
    return request.max_tokens


def fit_prompt(ids: list[int], request: GenerationRequest, limits: PromptLimits,
               bos_id: int | None = None) -> tuple[list[int], int]:
    """The prompt ids that fit ``limits`` and how many were dropped from the left; ``RequestError`` naming
    ``prompt`` or ``max_tokens`` (with the counts and the context) when they cannot fit.

    With ``truncate_prompt = "left"`` the oldest tokens go, but a leading ``bos_id`` stays: models are
    trained with it at position 0."""
    if len(ids) > limits.max_prompt_tokens:
        raise RequestError("prompt", f"has {len(ids)} tokens, more than the {limits.max_prompt_tokens} allowed "
                                     f"(generation.max_prompt_tokens)")
    after = positions_needed(request)
    context = limits.context
    if context is None or len(ids) + after <= context:
        return ids, 0
    what = "max_tokens" if request.mode != "mcts" else "max_tokens + mcts_simulations + mcts_depth"
    counts = (f"{len(ids)} prompt tokens + {after} ({what}) = {len(ids) + after} positions exceed the model's "
              f"context of {context}")
    head = ids[:1] if ids and ids[0] == bos_id else []
    keep = context - after - len(head)  # tokens after the kept BOS
    if keep < 1:
        most = context - len(head) - 1 - (after - request.max_tokens)
        raise RequestError("max_tokens", f"{counts}: no prompt can fit; max_tokens must be at most {most} "
                                         f"on this model")
    if request.truncate_prompt != "left":
        raise RequestError("prompt", f"{counts}; shorten the prompt to at most {context - after} tokens, lower "
                                     f"max_tokens, or set truncate_prompt to \"left\"")
    dropped = len(ids) - len(head) - keep
    log.debug("prompt of %d tokens truncated on the left by %d to fit a context of %d", len(ids), dropped, context)
    return head + ids[len(ids) - keep:], dropped


def prompt_row(key: Any, request: GenerationRequest, tokenizer: Any, limits: PromptLimits) -> Row:
    """A row with the request's prompt ids, fitted to ``limits`` (``RequestError`` naming ``prompt`` or
    ``max_tokens`` when they do not fit; truncated on the left when the request asks)."""
    ids, dropped = fit_prompt(encode_prompt(tokenizer, request), request, limits,
                              getattr(tokenizer, "bos_token_id", None))
    return Row(key, request, ids, prompt_truncated=dropped)

