"""Retroactive pruning from attention (TEMPO_SPEC section 6).

After the forward pass of step ``s``, the attention that step ``s``'s kept
candidates pay to earlier tokens decides which alternatives of earlier sets
stay. The math is in pure functions (``layer_plan``, ``attention_signal``,
``judge``); ``prune_sets`` applies the decisions to one row's set records and
says which cache slots later queries must no longer see.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch

from tempo.request import GenerationRequest
from tempo.result import KEPT, PRUNED, REMOVED

log = logging.getLogger(__name__)


def layer_plan(n_layers: int, num_layers_to_use: int, multi_scale: bool) -> tuple[list[int], torch.Tensor]:
    """Which layers to read and their weights (summing to 1).

    Multi-scale: the last L layers (``num_layers_to_use``; 0 = all) weighted
    ``linspace(0.2, 1.0, L)`` normalised; otherwise the plain mean of the last 3.
    """
    if multi_scale:
        count = n_layers if num_layers_to_use == 0 else num_layers_to_use
        weights = torch.linspace(0.2, 1.0, count)
    else:
        count = min(3, n_layers)
        weights = torch.ones(count)
    layers, weights = list(range(n_layers - count, n_layers)), weights / weights.sum()
    log.debug("attention read from layers %s with weights %s (%s)", layers, [round(w, 3) for w in weights.tolist()],
              "multi-scale" if multi_scale else "plain mean")
    return layers, weights


def attention_signal(per_layer: torch.Tensor, layer_weights: torch.Tensor, query_weights: torch.Tensor) -> torch.Tensor:
    """``a_j`` for every key: layers combined by ``layer_weights``, queries by ``query_weights``.

    ``per_layer [L, K, T]`` (head-averaged probabilities of the K queries),
    ``layer_weights [L]``, ``query_weights [K]`` (0 for filler slots). Returns ``[T]``.
    """
    combined = torch.einsum("l,lkt->kt", layer_weights.to(per_layer), per_layer)
    w = query_weights.to(per_layer) / query_weights.sum()
    return torch.einsum("k,kt->t", w, combined)


def judge(attention: torch.Tensor, threshold: float, use_sigmoid: bool, steepness: float,
          use_relative: bool, relative_threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decisions for one judged set: ``(absolute_pass, relative_pass, sigma)``, each ``[n]``.

    ``sigma = 1 / (1 + exp(-steepness (a - threshold)))`` (or the hard step
    ``a >= threshold`` without the sigmoid); the absolute test is ``sigma >= 0.5``;
    the relative test is ``a >= relative_threshold * max(a)``.
    """
    if use_sigmoid:
        sigma = torch.sigmoid(steepness * (attention - threshold))
    else:
        sigma = (attention >= threshold).to(attention.dtype)
    absolute = sigma >= 0.5
    if use_relative:
        relative = attention >= relative_threshold * attention.max()
    else:
        relative = torch.ones_like(absolute)
    return absolute, relative, sigma


@dataclass
class Pruned:
    """What one row's pruning changed: slots to hide from later queries, soft biases per slot."""

    hidden: list[int] = field(default_factory=list)
    biases: dict[int, float] = field(default_factory=dict)


def prune_sets(sets: list, signal: torch.Tensor, step: int, threshold: float, request: GenerationRequest) -> Pruned:
    """Judge every earlier set of one row against ``signal [T]`` (indexed by cache slot).

    ``sets`` are the row's ``SetRecord``s; the last one is step ``step``'s set,
    whose candidates were the queries. Statuses only move away from ``kept``.
    """
    change = Pruned()
    debug = log.isEnabledFor(logging.DEBUG)
    for record in sets[:-1]:
        kept = record.kept
        if not kept or (len(kept) < 2 and request.preserve_isolated_tokens):
            continue
        values = signal[[record.slots[i] for i in kept]]
        absolute, relative, sigma = judge(values, threshold, request.sigmoid_threshold, request.sigmoid_steepness,
                                          request.relative_attention, request.relative_threshold)
        for n, i in enumerate(kept):
            record.attention[i] = float(values[n])
        if request.soft_pruning:  # fade instead of cutting: only the relative test removes
            passing = relative
            for n, i in enumerate(kept):
                change.biases[record.slots[i]] = math.log(max(float(sigma[n]), 1e-30))
        else:
            passing = absolute & relative
        if bool(passing.any()):
            failed = [i for n, i in enumerate(kept) if not bool(passing[n])]
            _mark(record, failed, PRUNED, step, change)
        elif request.complete_pruning_mode == "remove_position":
            _mark(record, kept, REMOVED, step, change)
        else:  # keep_token / keep_unattended: the most probable token survives
            best = max(kept, key=lambda i: record.probs[i])
            _mark(record, [i for i in kept if i != best], PRUNED, step, change)
            record.unattended = record.unattended or request.complete_pruning_mode == "keep_unattended"
        if debug:
            log.debug("step %d judges tokens %s: attention %s, threshold %.4f -> %s%s", step,
                      [record.tokens[i] for i in kept], [round(float(v), 4) for v in values], threshold,
                      [record.status[i] for i in kept], " (unattended)" if record.unattended else "")
    return change


def _mark(record, indices: list[int], status: str, step: int, change: Pruned) -> None:
    for i in indices:
        if record.status[i] == KEPT:
            record.status[i], record.pruned_at[i] = status, step
            change.hidden.append(record.slots[i])
            change.biases.pop(record.slots[i], None)
