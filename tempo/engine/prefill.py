"""The prompt's forward (the prefill) in memory linear in the prompt's length.

A whole-prompt mask is ``[B, 1, P, P]``: 1 GB of float32 per row at 16k tokens, and SDPA's math path adds
attention scores ``[B, H, P, P]``. So only a short prompt (at most :func:`chunk_size` tokens) gets the one
explicit mask; a longer one runs

- through the library's causal path (SDPA ``is_causal``, no mask at all) when no row is padded and the model
  has no sliding-window layers: the very forward Hugging Face runs itself;
- else in chunks of queries: chunk ``[a, b)`` appends its tokens to the cache with the mask rows ``[a, b)``
  (``[B, 1, b - a, b]``), so a padded or windowed batch never holds more than one chunk's mask and scores.

Every query sees exactly the keys it sees in one pass; only the order of floating-point sums may differ
(tests/test_limits.py holds them to 1e-5). docs/limits.md has the measured peak memory.
"""
from __future__ import annotations

import logging
from typing import Any

import torch

from tempo.engine import layout

log = logging.getLogger(__name__)

SHORT = 256
"""Prompts up to this many tokens always take the one explicit mask (at most ``B * H * 256**2`` scores)."""
SCRATCH = 4
"""A chunk's attention scores ``[B, H, C, P]`` hold as many numbers as ``SCRATCH`` hidden states ``[B, P, H * d]``
(C = SCRATCH * d): a bounded share of what the model's own activations over the prompt already take."""


def chunk_size(adapter: Any) -> int:
    """Queries per chunk: ``SCRATCH`` times the head size, and never fewer than ``SHORT``."""
    return max(SHORT, SCRATCH * adapter.head_dim)


def prefill(adapter: Any, prompts: list[list[int]], pad_id: int,
            chunk: int | None = None) -> tuple[torch.Tensor, Any]:
    """One prefill of the left-padded ``prompts``: the last logits ``[B, 1, V]`` and the cache."""
    input_ids, visible, positions = layout.left_pad(prompts, pad_id, adapter.device)  # [B, P] each
    width = input_ids.shape[1]
    chunk = chunk or chunk_size(adapter)
    if width <= chunk:
        mask = layout.prefill_mask(visible, adapter.dtype)  # [B, 1, P, P], P <= chunk
        return adapter.forward(input_ids, positions, mask, None, last_only=True)
    if bool(visible.all()) and not adapter.windows:
        log.debug("prefill of %d x %d tokens on the library's causal path (no mask)", *input_ids.shape)
        return adapter.forward(input_ids, positions, None, None, last_only=True)
    log.debug("prefill of %d x %d tokens in chunks of %d queries", *input_ids.shape, chunk)
    cache = None
    for start in range(0, width, chunk):
        stop = min(width, start + chunk)
        mask = layout.prefill_mask(visible, adapter.dtype, start, stop)  # [B, 1, stop - start, stop]
        logits, cache = adapter.forward(input_ids[:, start:stop], positions[:, start:stop], mask, cache,
                                        last_only=True)
    return logits, cache
