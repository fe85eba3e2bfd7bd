"""One request's state while it generates, and its result (TEMPO_SPEC section 8)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from tempo.engine.output import CONTEXT_WINDOW, bracketed_text, clean_text, token_text
from tempo.engine.schedules import threshold_at
from tempo.settings.logs import TIMING
from tempo.request import GenerationRequest
from tempo.result import KEPT, Candidate, GenerationResult, ModelInfo, Step, Timing

log = logging.getLogger(__name__)
timing_log = logging.getLogger(TIMING)


@dataclass
class SetRecord:
    """One step's set as it lives in the batch: candidates, their physical slots and fates."""

    tokens: list[int]
    probs: list[float]
    selection_threshold: float
    slots: list[int] = field(default_factory=list)
    """Column of each candidate in the batch's cache (shifted when the cache is left-padded)."""
    status: list[str] = field(default_factory=list)
    pruned_at: list[int | None] = field(default_factory=list)
    attention: list[float | None] = field(default_factory=list)
    attention_threshold: float | None = None
    unattended: bool = False
    visits: list[int | None] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    coherence: list[float | None] = field(default_factory=list)
    strategy: str | None = None
    """The strategy that refined this set (TEMPO_SPEC section 10): what dropped its candidates pruned at its own
    step. None when none ran."""

    def __post_init__(self) -> None:
        n = len(self.tokens)
        self.status = self.status or [KEPT] * n
        self.pruned_at = self.pruned_at or [None] * n
        self.attention = self.attention or [None] * n
        self.visits = self.visits or [None] * n
        self.values = self.values or [None] * n
        self.coherence = self.coherence or [None] * n
        if log.isEnabledFor(logging.DEBUG):
            log.debug("set recorded: tokens %s, probabilities %s, selection threshold %.4f", self.tokens,
                      [round(p, 4) for p in self.probs], self.selection_threshold)

    @property
    def kept(self) -> list[int]:
        """Indices of the candidates still kept."""
        return [i for i, s in enumerate(self.status) if s == KEPT]


@dataclass
class Row:
    """One request's bookkeeping while it is in a batch."""

    key: Any
    """The caller's handle for this request (its index for ``Tempo.run``)."""
    request: GenerationRequest
    prompt_ids: list[int]
    sets: list[SetRecord] = field(default_factory=list)
    prompt_truncated: int = 0
    """Prompt tokens dropped from the left to fit the context (``truncate_prompt = "left"``)."""
    generator: torch.Generator | None = None
    stop_reason: str | None = None
    prefill_s: float = 0.0
    decode_start: float = 0.0
    pruning_s: float = 0.0
    finished_at: float = 0.0
    decoded: dict[tuple[tuple[int, ...], int], str] = field(default_factory=dict, repr=False)
    """Token texts by (left context, token id): each is decoded once, however often the steps are built."""

    @property
    def token_sets(self) -> list[list[int]]:
        return [s.tokens for s in self.sets]

    @property
    def prob_sets(self) -> list[list[float]]:
        return [s.probs for s in self.sets]

    @property
    def single(self) -> bool:
        """Rows whose set is always one token: greedy, or default mode."""
        return self.request.mode == "default" or self.request.temperature == 0

    def selection_threshold(self, step: int) -> float:
        r = self.request
        return threshold_at(r.selection_schedule, step, r.max_tokens, r.selection_threshold,
                            r.selection_final_threshold, r.bezier_p1, r.bezier_p2, r.relu_activation_point)

    def attention_threshold(self, step: int) -> float:
        """The pruning threshold of ``step``: constant, or Bezier / ReLU with ``dynamic_threshold``."""
        r = self.request
        kind = ("relu" if r.use_relu else "bezier") if r.dynamic_threshold else "constant"
        return threshold_at(kind, step, r.max_tokens, r.attention_threshold, r.final_threshold,
                            r.bezier_p1, r.bezier_p2, r.relu_activation_point)


def record_step(s: int, record: SetRecord, texts: list[str], prompt_len: int) -> Step:
    """The ``Step`` of the result shape for step ``s``'s set (new objects: the record keeps changing
    while pruning may still judge it). ``texts`` are its tokens' texts in their context."""
    candidates = [
        Candidate(token_id=t, text=text, probability=p, status=status, pruned_at_step=pruned_at,
                  attention=attention, visits=visits, value=value, coherence=coherence)
        for t, text, p, status, pruned_at, attention, visits, value, coherence in zip(
            record.tokens, texts, record.probs, record.status, record.pruned_at, record.attention, record.visits,
            record.values, record.coherence)
    ]
    return Step(step=s, position=prompt_len + s, selection_threshold=record.selection_threshold,
                attention_threshold=record.attention_threshold, unattended=record.unattended, candidates=candidates,
                strategy=record.strategy)


def row_steps(row: Row, tokenizer: Any, first: int = 0) -> list[Step]:
    """The steps of ``row`` from step ``first`` on, in the result's shape: the one builder of streamed
    steps and of results. A token's text is decoded after the context the result reads: the prompt,
    then the first kept candidate of each earlier step (for MCTS the appended, most visited child), as
    the candidates stand now (pruning may change them)."""
    context = list(row.prompt_ids[-CONTEXT_WINDOW:])
    steps = []
    for s, record in enumerate(row.sets):
        if s >= first:
            texts = [_text(row, tokenizer, context, t) for t in record.tokens]
            steps.append(record_step(s, record, texts, len(row.prompt_ids)))
        if record.kept:
            context = (context + [record.tokens[record.kept[0]]])[-CONTEXT_WINDOW:]
    return steps


def stream_steps(row: Row, tokenizer: Any) -> list[Step]:
    """What a stream sends after the row's newest set: that step, or every step when retroactive pruning
    may have changed earlier ones; with strategy pruning also the step before, refined after its forward
    (which runs after that step was first sent)."""
    if row.request.use_retroactive_pruning:
        return row_steps(row, tokenizer)
    return row_steps(row, tokenizer, max(0, len(row.sets) - (2 if row.request.use_pruning else 1)))


def _text(row: Row, tokenizer: Any, context: list[int], token: int) -> str:
    key = (tuple(context), token)
    if key not in row.decoded:
        row.decoded[key] = token_text(tokenizer, context, token)
    return row.decoded[key]


def build_result(row: Row, tokenizer: Any, model_info: dict[str, Any]) -> GenerationResult:
    """Turn a row (finished or in progress) into the result of TEMPO_SPEC section 8."""
    steps = row_steps(row, tokenizer)
    decode_s = max(0.0, (row.finished_at or row.decode_start) - row.decode_start)
    total = row.prefill_s + decode_s
    timing = Timing(prefill_s=row.prefill_s, decode_s=decode_s, pruning_s=row.pruning_s, total_s=total,
                    tokens_per_s=len(steps) / total if total > 0 else 0.0)
    log.debug("request %s (%s): %d prompt tokens, %d steps, %d tokens kept, stopped by %s", row.key,
              row.request.mode, len(row.prompt_ids), len(steps), sum(1 for step in steps if step.kept),
              row.stop_reason or "max_tokens")
    timing_log.debug("request %s (%s): prefill %.4f s, decode %.4f s, pruning %.4f s, total %.4f s, %.1f steps/s",
                     row.key, row.request.mode, timing.prefill_s, timing.decode_s, timing.pruning_s, timing.total_s,
                     timing.tokens_per_s)
    return GenerationResult(
        prompt=row.request.prompt,
        mode=row.request.mode,
        text=bracketed_text(steps),
        clean_text=clean_text(steps),
        steps=steps,
        settings=row.request.to_dict() | {"prompt_tokens": len(row.prompt_ids)},
        timing=timing,
        model=ModelInfo(**model_info),
        stop_reason=row.stop_reason or "max_tokens",
        prompt_truncated=row.prompt_truncated,
    )
