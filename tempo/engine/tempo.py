"""The batched TEMPO loop: layout -> mask + positions -> forward -> distributions -> selection -> append.

A ``Batch`` holds B rows (requests) over one KV cache, left-padded. Each step
every row appends K = the largest set size of the batch; a row with a smaller
set fills the rest with filler slots nobody attends to. Rows leave the batch
(``index_select`` on the cache) as soon as they finish. A single request is a
batch of one. Default mode is a row whose set is always one token.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from tempo.engine import layout, sampling
from tempo.engine.adapter import ModelAdapter
from tempo.engine.output import bracketed_text, clean_ids, token_text
from tempo.engine.prompting import encode_prompt
from tempo.engine.schedules import threshold_at
from tempo.request import GenerationRequest
from tempo.result import Candidate, GenerationResult, ModelInfo, Step, Timing

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One request's bookkeeping while it is in a batch."""

    index: int
    request: GenerationRequest
    prompt_ids: list[int]
    token_sets: list[list[int]] = field(default_factory=list)
    prob_sets: list[list[float]] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    generator: torch.Generator | None = None
    stop_reason: str | None = None
    finished_at: float = 0.0

    @property
    def single(self) -> bool:
        """Rows whose set is always one token: greedy, or default mode."""
        return self.request.mode == "default" or self.request.temperature == 0

    def selection_threshold(self, step: int) -> float:
        r = self.request
        return threshold_at(r.selection_schedule, step, r.max_tokens, r.selection_threshold,
                            r.selection_final_threshold, r.bezier_p1, r.bezier_p2, r.relu_activation_point)


StepCallback = Callable[[Row], None]


class Batch:
    """Rows generating together. ``run()`` drives it to the end."""

    def __init__(self, adapter: ModelAdapter, tokenizer: Any, requests: list[GenerationRequest],
                 eos_ids: Iterable[int], pad_id: int, on_step: StepCallback | None = None):
        self.adapter = adapter
        self.tokenizer = tokenizer
        self.eos_ids = sorted(set(eos_ids))
        self.pad_id = pad_id
        self.on_step = on_step
        self.rows = [Row(i, r, encode_prompt(tokenizer, r)) for i, r in enumerate(requests)]
        for row in self.rows:
            if row.request.mode == "default" and row.request.temperature > 0:
                row.generator = torch.Generator().manual_seed(row.request.seed)
        self.finished: list[Row] = []
        self.prefill_s = 0.0
        self.cache: Any = None

    # --- per-row settings as tensors, rebuilt when rows leave -------------------------------
    def _settings(self) -> None:
        dev = self.adapter.device
        req = [row.request for row in self.rows]
        self.temperature = torch.tensor([r.temperature for r in req], device=dev)
        self.top_k = torch.tensor([r.top_k for r in req], device=dev)
        self.top_p = torch.tensor([r.top_p for r in req], device=dev)
        self.penalty = torch.tensor([r.repetition_penalty for r in req], device=dev)
        self.max_parallel = torch.tensor([r.max_parallel_tokens for r in req], device=dev)
        self.single = torch.tensor([row.single for row in self.rows], device=dev)
        self.intraset = torch.tensor([r.allow_intraset_token_visibility for r in req], device=dev)
        self.min_steps = torch.tensor([r.min_steps for r in req], device=dev)
        self.modes = [r.next_logits_mode for r in req]
        self.repetition = any(r.repetition_penalty != 1.0 for r in req)

    def prefill(self) -> None:
        start = time.perf_counter()
        dev = self.adapter.device
        input_ids, visible, positions = layout.left_pad([r.prompt_ids for r in self.rows], self.pad_id, dev)
        mask = layout.prefill_mask(visible, self.adapter.dtype)
        logits, self.cache = self.adapter.forward(input_ids, positions, mask, None, last_only=True)
        self.logits = logits  # [B, 1, V]
        self.set_probs = torch.ones(len(self.rows), 1, device=dev)  # [B, K]
        self.kept = torch.ones(len(self.rows), 1, dtype=torch.bool, device=dev)  # [B, K]
        self.visible = visible  # [B, T]
        self.prompt_len = visible.sum(-1)  # [B]
        vocab = logits.shape[-1]
        self.seen = torch.zeros(len(self.rows), vocab, dtype=torch.bool, device=dev)  # [B, V]
        for b, row in enumerate(self.rows):
            self.seen[b, torch.tensor(row.prompt_ids, device=dev).clamp(max=vocab - 1)] = True
        self._settings()
        self.prefill_s = time.perf_counter() - start
        self.decode_start = time.perf_counter()

    def next_sets(self) -> tuple[list[list[int]], list[list[float]]]:
        """The next step's set of every row (token ids and probabilities, highest first)."""
        steps = torch.tensor([len(row.token_sets) for row in self.rows], device=self.adapter.device)
        logits = sampling.suppress_tokens(self.logits, steps < self.min_steps, self.eos_ids)
        if self.repetition:
            logits = sampling.repetition_penalty(logits, self.seen, self.penalty)
        rows = sampling.temperature_softmax(logits, self.temperature)  # [B, K, V]
        weights = sampling.mode_weights(self.set_probs, self.kept, self.modes)
        p = sampling.combine(rows, weights)  # [B, V]
        sorted_p, sorted_ids = sampling.top_k_top_p(p, self.top_k, self.top_p, self.max_parallel)
        thresholds = [row.selection_threshold(len(row.token_sets)) for row in self.rows]
        threshold = torch.tensor(thresholds, device=p.device)
        sizes = sampling.set_sizes(sorted_p, threshold, self.max_parallel, self.single)
        width = int(sizes.max())
        ids, probs, sizes = sorted_ids[:, :width].tolist(), sorted_p[:, :width].tolist(), sizes.tolist()
        sets_ids, sets_probs = [], []
        for b, row in enumerate(self.rows):
            row.thresholds.append(thresholds[b])
            if row.generator is not None:  # default mode, sampled: one draw from the filtered p
                pick = int(torch.multinomial(sorted_p[b].cpu(), 1, generator=row.generator))
                sets_ids.append([int(sorted_ids[b, pick])])
                sets_probs.append([float(sorted_p[b, pick])])
            else:
                sets_ids.append(ids[b][: sizes[b]])
                sets_probs.append(probs[b][: sizes[b]])
        return sets_ids, sets_probs

    def _leave(self, staying: list[int]) -> None:
        """Drop every row not in ``staying`` from the batch and its cache."""
        index = torch.tensor(staying, device=self.adapter.device)
        self.adapter.select_rows(self.cache, index)
        self.rows = [self.rows[i] for i in staying]
        for name in ("visible", "prompt_len", "seen", "logits", "set_probs", "kept"):
            setattr(self, name, getattr(self, name).index_select(0, index))
        self._settings()

    def step(self) -> None:
        """One logical step for every row: select each set, drop finished rows, run the forward."""
        sets_ids, sets_probs = self.next_sets()
        staying = []
        now = time.perf_counter()
        for b, row in enumerate(self.rows):
            ids, probs = sets_ids[b], sets_probs[b]
            if ids[0] in self.eos_ids:
                row.stop_reason, row.finished_at = "eos", now
                row.thresholds.pop()
                continue
            keep = [i for i, t in enumerate(ids) if t not in self.eos_ids]
            row.token_sets.append([ids[i] for i in keep])
            row.prob_sets.append([probs[i] for i in keep])
            if self.on_step is not None:
                self.on_step(row)
            if len(row.token_sets) >= row.request.max_tokens:
                row.stop_reason, row.finished_at = "max_tokens", now
                continue
            staying.append(b)
        self.finished.extend(row for row in self.rows if row.stop_reason)
        if len(staying) < len(self.rows):
            if not staying:
                self.rows = []
                return
            self._leave(staying)
        self._forward()

    def _forward(self) -> None:
        """Append every row's newest set at position ``P + s`` and run the model over it."""
        dev = self.adapter.device
        k = max(len(row.token_sets[-1]) for row in self.rows)
        input_ids = torch.full((len(self.rows), k), self.pad_id, dtype=torch.long)
        probs = torch.zeros(len(self.rows), k)
        real = torch.zeros(len(self.rows), k, dtype=torch.bool)
        for b, row in enumerate(self.rows):
            n = len(row.token_sets[-1])
            input_ids[b, :n] = torch.tensor(row.token_sets[-1])
            probs[b, :n] = torch.tensor(row.prob_sets[-1])
            real[b, :n] = True
        input_ids, probs, real = input_ids.to(dev), probs.to(dev), real.to(dev)
        steps = torch.tensor([len(row.token_sets) - 1 for row in self.rows], device=dev)
        positions = layout.step_positions(self.prompt_len, steps, k)  # [B, K]
        mask = layout.step_mask(self.visible, real, self.intraset, self.adapter.dtype)  # [B, 1, K, T+K]
        self.logits, self.cache = self.adapter.forward(input_ids, positions, mask, self.cache)  # [B, K, V]
        self.visible = torch.cat([self.visible, real], dim=-1)
        self.set_probs, self.kept = probs, real
        if self.repetition:
            # scatter_add, not scatter: filler slots repeat the pad id and must not unset it.
            added = torch.zeros_like(self.seen, dtype=torch.long).scatter_add_(1, input_ids, real.long())
            self.seen |= added > 0

    def run(self) -> list[Row]:
        self.prefill()
        while self.rows:
            self.step()
        return sorted(self.finished, key=lambda row: row.index)


def build_result(row: Row, tokenizer: Any, model_info: dict[str, Any], prefill_s: float,
                 decode_start: float) -> GenerationResult:
    """Turn a finished row into the result of TEMPO_SPEC section 8."""
    context = list(row.prompt_ids)
    steps = []
    for s, (ids, probs) in enumerate(zip(row.token_sets, row.prob_sets)):
        candidates = [Candidate(token_id=t, text=token_text(tokenizer, context, t), probability=p)
                      for t, p in zip(ids, probs)]
        steps.append(Step(step=s, position=len(row.prompt_ids) + s, selection_threshold=row.thresholds[s],
                          candidates=candidates))
        context.append(ids[0])
    decode_s = max(0.0, row.finished_at - decode_start)
    total = prefill_s + decode_s
    timing = Timing(prefill_s=prefill_s, decode_s=decode_s, total_s=total,
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
