"""A full-recompute reference of TEMPO generation without pruning (TEMPO_SPEC sections 2-4, 11 and 12's given
sets), written from the spec with plain Hugging Face calls: every step one uncached forward over the prompt and
every set so far, with the section 2 mask written slot by slot (``hand_mask``), and Hugging Face's own logits
processors for the repetition penalty, top-k and top-p. Slow and obvious on purpose: the engine is checked
against it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper,
)


def hand_mask(n_prompt: int, sets: list[list[int]], intraset: bool):
    """TEMPO_SPEC section 2 written out slot by slot: ``[1, 1, N, N]`` additive mask and ``[1, N]`` positions."""
    step_of = [-1] * n_prompt + [s for s, members in enumerate(sets) for _ in members]
    n = len(step_of)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(n):
            prompt_key = step_of[k] == -1 and (step_of[q] >= 0 or k <= q)  # the prompt itself is causal
            earlier = 0 <= step_of[k] < step_of[q]
            same_set = step_of[k] == step_of[q] >= 0
            allowed[q, k] = prompt_key or earlier or k == q or (intraset and same_set)
    mask = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)
    positions = list(range(n_prompt)) + [n_prompt + s for s, members in enumerate(sets) for _ in members]
    return mask[None, None], torch.tensor([positions])


@dataclass
class ReferenceStep:
    tokens: list[int]
    probs: list[float]
    entropy: float
    varentropy: float


@dataclass
class Reference:
    steps: list[ReferenceStep] = field(default_factory=list)
    stop_reason: str = "max_tokens"

    @property
    def token_sets(self) -> list[list[int]]:
        return [s.tokens for s in self.steps]


def rows_after(model, prompt_ids: list[int], sets: list[list[int]], intraset: bool) -> torch.Tensor:
    """The logit rows ``[K, V]`` after the newest set (after the prompt's last token when there is none)."""
    ids = prompt_ids + [t for members in sets for t in members]
    mask, positions = hand_mask(len(prompt_ids), sets, intraset)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), attention_mask=mask, position_ids=positions).logits[0].float()
    return logits[-len(sets[-1]):] if sets else logits[-1:]


def entropy_of(p: torch.Tensor) -> tuple[float, float]:
    """Entropy and varentropy (nats) of ``p [V]``, computed in float64 from the definitions."""
    p = p.double()
    logs = torch.where(p > 0, p.log(), torch.zeros_like(p))
    h = -(p * logs).sum()
    return float(h), float((p * (logs + h) ** 2).sum())


def generate(engine, prompt_ids: list[int], request) -> Reference:
    """``request`` (mode tempo, no pruning, next_logits_mode mixture or top) recomputed from scratch."""
    model, eos = engine.loaded.model, engine.eos_ids
    r = request
    out = Reference()
    sets: list[list[int]] = []
    weights = torch.ones(1)
    for s in range(r.max_tokens):
        rows = rows_after(model, prompt_ids, sets, r.allow_intraset_token_visibility)  # [K, V]
        if s < r.min_steps:
            rows[:, eos] = -math.inf
        seen = torch.tensor([prompt_ids + [t for members in sets for t in members]])
        rows = torch.cat([RepetitionPenaltyLogitsProcessor(r.repetition_penalty)(seen, row[None]) for row in rows])
        w = weights if weights.sum() > 0 else torch.ones_like(weights)
        if r.next_logits_mode == "top":
            w = torch.zeros_like(w).index_fill_(0, w.argmax(), 1.0)
        w = w / w.sum()
        unit = (w[:, None] * torch.softmax(rows, -1)).sum(0)  # temperature 1: the entropy's distribution
        h, v = entropy_of(unit)
        t = r.temperature if r.temperature > 0 else 1.0
        p = (w[:, None] * torch.softmax(rows / t, -1)).sum(0)  # [V]
        scores = p.log()[None]
        if r.top_k > 0:
            scores = TopKLogitsWarper(r.top_k)(None, scores)
        if r.top_p < 1.0:
            scores = TopPLogitsWarper(r.top_p)(None, scores)
        p = torch.softmax(scores[0], -1)
        if s < len(r.forced_sets):
            ids = list(r.forced_sets[s])
        else:
            order = p.argsort(descending=True)
            passing = [int(i) for i in order[: r.max_parallel_tokens] if p[i] >= _threshold(r, s) and p[i] > 0]
            ids = passing or [int(order[0])]
            if r.temperature == 0:
                ids = ids[:1]
        if ids[0] in eos:
            out.stop_reason = "eos"
            break
        ids = [i for i in ids if i not in eos]
        probs = [float(p[i]) for i in ids]
        out.steps.append(ReferenceStep(ids, probs, h, v))
        sets.append(ids)
        weights = torch.tensor(probs)
    return out


def _threshold(request, step: int) -> float:
    assert request.selection_schedule == "constant", "the reference covers the constant schedule"
    return request.selection_threshold
