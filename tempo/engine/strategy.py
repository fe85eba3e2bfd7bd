"""Strategy pruning (TEMPO_SPEC section 10, the seeds' ``--use-pruning``): each new set refined right after its
forward pass, before the next step is selected, from that forward's own outputs — no extra forward.

- ``coherence``: a candidate's coherence is the top probability of its own processed next-token row ``q_i``
  (section 3: EOS rule, repetition penalty, temperature; before the rows are combined). Candidates below
  ``coherence_threshold`` are dropped; when all would be, the most coherent stays.
- ``diversity``: candidates whose final hidden states (the output head's input) have cosine similarity at
  least ``diversity_similarity`` are one pathway; the highest-probability member of each pathway stays.
- ``hybrid``: diversity for the first ``diversity_steps`` steps, then coherence.

The math is in pure functions (``strategy_at``, ``processed_rows``, ``coherence_keep``, ``pathways``,
``first_of_each``); ``refine`` applies them to a batch's newest sets and drops candidates exactly as retroactive
pruning does: status ``pruned`` (here at the set's own step), invisible to every later query, out of the mixture,
and out of the repetition penalty's tokens.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from tempo.engine import sampling
from tempo.result import PRUNED

if TYPE_CHECKING:
    from tempo.engine.batch import Batch
    from tempo.engine.row import Row

log = logging.getLogger(__name__)

COHERENCE, DIVERSITY = "coherence", "diversity"


def strategy_at(request: Any, step: int) -> str | None:
    """The strategy that refines ``request``'s set of ``step``: ``coherence``, ``diversity`` or None (off, or a
    mode without parallel sets: default mode's sets are one token; mode mcts is refused by the request)."""
    if not request.use_pruning or request.mode != "tempo":
        return None
    if request.pruning_strategy == "hybrid":
        return DIVERSITY if step < request.diversity_steps else COHERENCE
    return request.pruning_strategy


def processed_rows(logits: torch.Tensor, early: list[bool], eos_ids: list[int], seen: torch.Tensor | None,
                   penalty: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Each candidate's own next-token distribution ``q_i [R, K, V]`` from its logits ``[R, K, V]``: the chain of
    ``sampling.distribution`` before the rows are combined (EOS suppressed in the ``early`` rows, repetition
    penalty over ``seen [R, V]`` when given, temperature ``[R]`` and softmax)."""
    logits = sampling.suppress_tokens(logits, early, eos_ids)
    if seen is not None:
        logits = sampling.repetition_penalty(logits, seen, penalty)
    return sampling.temperature_softmax(logits, temperature)


def coherence_keep(scores: list[float], threshold: float) -> list[int]:
    """Indices of the candidates that stay: coherence ``>= threshold``; when none passes, the most coherent
    alone (on a tie the earlier, more probable one)."""
    keep = [i for i, score in enumerate(scores) if score >= threshold]
    return keep or [max(range(len(scores)), key=lambda i: scores[i])]


def pathways(hidden: torch.Tensor, similarity: float, max_pathways: int) -> list[int]:
    """The pathway of each candidate (``hidden [n, H]``, in set order: highest probability first).

    Going through the set in order, a candidate joins the first pathway whose first member it is at least
    ``similarity`` similar to (cosine), else starts a new one; once there are ``max_pathways``, it joins the
    pathway whose first member it is most similar to. A zero vector has cosine 0 with every vector."""
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)
    cosine = (unit @ unit.T).tolist()  # [n, n]
    firsts: list[int] = []  # the first member of each pathway
    assigned = []
    for i, row in enumerate(cosine):
        joined = next((p for p, first in enumerate(firsts) if row[first] >= similarity), None)
        if joined is None and len(firsts) < max_pathways:
            firsts.append(i)
            joined = len(firsts) - 1
        elif joined is None:
            joined = max(range(len(firsts)), key=lambda p: row[firsts[p]])
        assigned.append(joined)
    return assigned


def first_of_each(assigned: list[int]) -> list[int]:
    """Indices of each pathway's first member: its highest-probability candidate, the one that stays."""
    return [i for i, p in enumerate(assigned) if p not in assigned[:i]]


def _planned(rows: list["Row"]) -> list[tuple[int, str]]:
    """``(batch row, strategy)`` of every row whose newest set a strategy refines now: generating rows only (a
    finished row here for retroactive pruning's last judgement has no logits and no next step)."""
    plan = []
    for b, row in enumerate(rows):
        kind = strategy_at(row.request, len(row.sets) - 1) if row.stop_reason is None and row.sets else None
        if kind is not None:
            plan.append((b, kind))
    return plan


def needs_hidden(rows: list["Row"]) -> bool:
    """Whether the next forward must also return final hidden states: some set of two or more candidates is
    refined by diversity."""
    return any(kind == DIVERSITY and len(rows[b].sets[-1].tokens) > 1 for b, kind in _planned(rows))


def refine(batch: "Batch", hidden: torch.Tensor | None) -> None:
    """Refine every strategy-pruning row's newest set after the batch's forward over it.

    Reads ``batch.rows``, ``logits [B, K, V]``, ``seen``, ``sampling``, ``eos_ids`` and ``hidden [B, K, H]``
    (present when ``needs_hidden``); a dropped candidate's slot leaves ``batch.visible`` and ``batch.kept``."""
    plan = _planned(batch.rows)
    if not plan:
        return
    start = time.perf_counter()
    scores = _coherence(batch, [b for b, kind in plan if kind == COHERENCE])
    for b, kind in plan:
        row = batch.rows[b]
        record, r = row.sets[-1], row.request
        n = len(record.tokens)
        record.strategy = kind
        if kind == COHERENCE:
            record.coherence = scores[b][:n]
            keep = coherence_keep(record.coherence, r.coherence_threshold)
        elif n > 1:
            keep = first_of_each(pathways(hidden[b, :n], r.diversity_similarity, r.diversity_clusters))
        else:
            keep = [0]
        dropped = [i for i in range(n) if i not in keep]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("step %d, %s: tokens %s%s -> dropped %s", len(row.sets) - 1, kind, record.tokens,
                      f", coherence {[round(c, 4) for c in record.coherence]}" if kind == COHERENCE else "",
                      [record.tokens[i] for i in dropped])
        if dropped:
            _drop(batch, b, row, dropped)
    elapsed = time.perf_counter() - start
    for b, _ in plan:
        batch.rows[b].pruning_s += elapsed


def _coherence(batch: "Batch", rows: list[int]) -> dict[int, list[float]]:
    """Coherence of every candidate slot ``[K]`` of the batch rows ``rows``: the top of each processed row."""
    if not rows:
        return {}
    index = torch.tensor(rows, device=batch.logits.device)
    early = [len(batch.rows[b].sets) < batch.rows[b].request.min_steps for b in rows]
    settings = batch.sampling
    seen = batch.seen.index_select(0, index) if settings.repetition else None
    q = processed_rows(batch.logits.index_select(0, index), early, batch.eos_ids, seen,
                       settings.penalty.index_select(0, index), settings.temperature.index_select(0, index))
    return dict(zip(rows, q.max(dim=-1).values.tolist()))  # [R, K]


def _drop(batch: "Batch", b: int, row: "Row", dropped: list[int]) -> None:
    """Candidates ``dropped`` of row ``b``'s newest set: pruned at their own step, hidden from every later
    query, out of the mixture, and (with a repetition penalty) out of the penalised tokens."""
    record, step = row.sets[-1], len(row.sets) - 1
    for i in dropped:
        record.status[i], record.pruned_at[i] = PRUNED, step
    batch.visible[b, [record.slots[i] for i in dropped]] = False
    batch.kept[b, dropped] = False
    if row.request.repetition_penalty != 1.0:
        batch._recount_seen(b, row)
