"""Physical layout -> position ids and 4D additive attention masks. Pure tensor code.

The physical sequence of one row is: left padding, the prompt, step 0's set,
step 1's set, ... Each slot has a *visibility* flag: may later steps attend to
it? Prompt tokens and kept candidates are visible; padding, pad slots of short
sets and pruned or removed candidates are not (TEMPO_SPEC section 2).

Masks are float and additive (0 allowed, the dtype's minimum forbidden):
transformers' eager attention silently mishandles a boolean 4D mask.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool ``allowed`` -> float mask: 0 where allowed, the dtype's minimum elsewhere."""
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    forbidden = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, forbidden)


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device | str = "cpu"):
    """Left-pad token lists.

    Returns ``input_ids [B, P]``, ``visible [B, P]`` (False on padding) and
    ``position_ids [B, P]`` (0, 1, ... from each row's first real token).
    """
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    visible = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        visible[row, width - len(ids):] = True
    position_ids = (visible.long().cumsum(-1) - 1).clamp(min=0)
    log.debug("prefill of %d rows, left-padded to %d: positions 0..P-1 for prompt lengths %s", len(prompts),
              width, [len(p) for p in prompts])
    return input_ids.to(device), visible.to(device), position_ids.to(device)


def prefill_mask(visible: torch.Tensor, dtype: torch.dtype, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Causal mask over the prompt with padding keys hidden, for the queries ``start:stop``: ``[B, 1, Q, stop]``
    (the whole prompt by default: ``[B, 1, P, P]``).

    Query ``q`` sees the visible keys up to itself, and always itself, so a padding query's row is never
    all-forbidden. A chunk of queries needs only its own rows: the prefill of a long prompt builds it chunk
    by chunk (engine/prefill.py), never the whole ``[P, P]``.
    """
    stop = visible.shape[-1] if stop is None else stop
    queries = torch.arange(start, stop, device=visible.device)[:, None]  # [Q, 1]
    keys = torch.arange(stop, device=visible.device)[None, :]  # [1, stop]
    allowed = (keys <= queries)[None] & visible[:, None, :stop]  # [B, Q, stop]
    allowed |= (keys == queries)[None]
    return additive(allowed, dtype)[:, None]


def step_mask(
    visible: torch.Tensor, real: torch.Tensor, intraset: torch.Tensor, dtype: torch.dtype,
    key_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mask for one step's set of K new tokens over T cached ones: ``[B, 1, K, T + K]``.

    ``visible [B, T]``: which cached slots later queries may attend.
    ``real [B, K]``: which of the K new slots hold a candidate (False: filler).
    ``intraset [B]``: rows whose candidates see each other; otherwise a
    candidate sees the context and itself only (isolated).
    ``key_bias [B, T]``: added to every new query's logit for each cached key
    (soft pruning's ``log sigma``); forbidden keys stay forbidden.
    """
    batch, k = real.shape
    past = visible[:, None, :].expand(batch, k, visible.shape[-1])  # [B, K, T]
    eye = torch.eye(k, dtype=torch.bool, device=real.device)[None]  # [1, K, K]
    both_real = real[:, :, None] & real[:, None, :]  # [B, K, K]
    within = eye | (both_real & intraset[:, None, None])  # [B, K, K]
    mask = additive(torch.cat([past, within], dim=-1), dtype)  # [B, K, T + K]
    if key_bias is not None:
        bias = torch.cat([key_bias, torch.zeros(batch, k, dtype=key_bias.dtype, device=key_bias.device)], dim=-1)
        mask = torch.maximum(mask + bias[:, None, :].to(dtype), torch.tensor(torch.finfo(dtype).min, dtype=dtype))
    return mask[:, None]


def step_positions(prompt_lengths: torch.Tensor, steps: torch.Tensor, k: int) -> torch.Tensor:
    """Every token of step ``s`` of a row with ``P`` prompt tokens sits at ``P + s``: ``[B, K]``."""
    positions = (prompt_lengths + steps)[:, None].expand(-1, k)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("step positions: the %d slots of each row's set share position %s (steps %s)", k,
                  positions[:, 0].tolist(), steps.tolist())
    return positions


def paths_mask(past: int, real: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows appending right-padded token paths after ``past`` shared visible tokens: ``[W, 1, L, past + L]``.

    ``real [W, L]``: which new slots hold a token; a query sees the past, the real
    tokens of its own row up to itself, and itself.
    """
    width, length = real.shape
    causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()[None]  # [1, L, L]
    eye = torch.eye(length, dtype=torch.bool, device=real.device)[None]
    within = (causal & real[:, None, :]) | eye  # [W, L, L]
    past_part = torch.ones(width, length, past, dtype=torch.bool, device=real.device)
    return additive(torch.cat([past_part, within], dim=-1), dtype)[:, None]
