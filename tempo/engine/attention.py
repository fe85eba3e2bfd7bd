"""Attention that can hand its probabilities back, for the layers pruning reads, and SDPA elsewhere.

Inside ``layer_masks({layer: mask})`` the listed layers use their own mask
instead of the one the model passes (the sliding window of those layers, built
by ``ModelAdapter`` from position ids).

Registered with transformers' ``AttentionInterface`` under the name ``tempo``
(the library's extension point; nothing is patched). While no capture is
active, every layer runs the library's own SDPA function, so generation without
pruning pays nothing for attention weights. Inside ``capture(layers)``, the
listed layers compute attention explicitly (softmax(QK^T * scale + mask) V)
and record the probabilities averaged over heads, ``[B, Q, T]``.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "tempo"
_state = threading.local()
log = logging.getLogger(__name__)


def tempo_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    layers = getattr(_state, "layers", None)
    layer = getattr(module, "layer_idx", None)
    masks = getattr(_state, "masks", None)
    if masks and layer in masks:  # this layer's own mask (a sliding window), see ModelAdapter
        attention_mask = masks[layer]
    if not layers or layer not in layers:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    groups = query.shape[1] // key.shape[1]  # grouped-query attention: repeat keys and values
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale  # [B, H, Q, T]
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    probs = torch.softmax(scores.float(), dim=-1)
    _state.weights[layer] = probs.mean(dim=1)  # [B, Q, T]
    if log.isEnabledFor(logging.DEBUG):
        log.debug("layer %d: attention probabilities recorded, %s queries x keys per row (%d heads, %s mask)",
                  layer, list(probs.shape[2:]), probs.shape[1], "no" if attention_mask is None else "4D")
    output = torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous()
    return output, None


AttentionInterface.register(NAME, tempo_attention)
# The masks transformers builds itself (a plain forward or generate() on the model, sliding windows, 2D padding)
# are those of SDPA: without this the library passes no mask at all to an attention name it does not know.
AttentionMaskInterface.register(NAME, sdpa_mask)


@contextmanager
def capture(layers: set[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Record the head-averaged attention probabilities of ``layers`` during the forwards inside."""
    weights: dict[int, torch.Tensor] = {}
    if layers:
        log.debug("capturing the attention of layers %s (the others stay on SDPA)", sorted(layers))
    _state.layers, _state.weights = set(layers), weights
    try:
        yield weights
    finally:
        _state.layers, _state.weights = None, None


@contextmanager
def layer_masks(masks: dict[int, torch.Tensor]) -> Iterator[None]:
    """Inside, the listed layers attend with their own 4D mask instead of the model's (sliding windows)."""
    _state.masks = masks
    try:
        yield
    finally:
        _state.masks = None
