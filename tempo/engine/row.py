"""One request's state while it generates, and its result (TEMPO_SPEC section 8)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tempo.engine.output import bracketed_text, clean_ids, token_text
from tempo.engine.schedules import threshold_at
from tempo.request import GenerationRequest
from tempo.result import Candidate, GenerationResult, ModelInfo, Step, Timing


@dataclass
class Row:
    """One request's bookkeeping while it is in a batch."""

    key: Any
    """The caller's handle for this request (its index for ``Tempo.run``)."""
    request: GenerationRequest
    prompt_ids: list[int]
    token_sets: list[list[int]] = field(default_factory=list)
    prob_sets: list[list[float]] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    generator: torch.Generator | None = None
    stop_reason: str | None = None
    prefill_s: float = 0.0
    decode_start: float = 0.0
    finished_at: float = 0.0

    @property
    def single(self) -> bool:
        """Rows whose set is always one token: greedy, or default mode."""
        return self.request.mode == "default" or self.request.temperature == 0

    def selection_threshold(self, step: int) -> float:
        r = self.request
        return threshold_at(r.selection_schedule, step, r.max_tokens, r.selection_threshold,
                            r.selection_final_threshold, r.bezier_p1, r.bezier_p2, r.relu_activation_point)



def build_result(row: Row, tokenizer: Any, model_info: dict[str, Any]) -> GenerationResult:
    """Turn a finished row into the result of TEMPO_SPEC section 8."""
    context = list(row.prompt_ids)
    steps = []
    for s, (ids, probs) in enumerate(zip(row.token_sets, row.prob_sets)):
        candidates = [Candidate(token_id=t, text=token_text(tokenizer, context, t), probability=p)
                      for t, p in zip(ids, probs)]
        steps.append(Step(step=s, position=len(row.prompt_ids) + s, selection_threshold=row.thresholds[s],
                          candidates=candidates))
        context.append(ids[0])
    decode_s = max(0.0, row.finished_at - row.decode_start)
    total = row.prefill_s + decode_s
    timing = Timing(prefill_s=row.prefill_s, decode_s=decode_s, total_s=total,
                    tokens_per_s=len(steps) / total if total > 0 else 0.0)
    return GenerationResult(
        prompt=row.request.prompt,
        mode=row.request.mode,
        text=bracketed_text(steps),
        clean_text=tokenizer.decode(clean_ids(steps)),
        steps=steps,
        settings=row.request.to_dict() | {"prompt_tokens": len(row.prompt_ids)},
        timing=timing,
        model=ModelInfo(**model_info),
        stop_reason=row.stop_reason or "max_tokens",
    )
