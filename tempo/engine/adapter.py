"""Every call into a Hugging Face model goes through here, so a library rename touches one file."""
from __future__ import annotations

from typing import Any

import torch


class ModelAdapter:
    """A causal LM seen as: tokens + positions + 4D mask + cache -> logits + cache."""

    def __init__(self, model: Any):
        self.model = model
        self.dtype = next(model.parameters()).dtype
        self.device = next(model.parameters()).device
        self.forward_calls = 0

    @torch.inference_mode()
    def forward(
        self,
        input_ids: torch.Tensor,  # [B, Q]
        position_ids: torch.Tensor,  # [B, Q]
        mask: torch.Tensor,  # [B, 1, Q, T + Q] additive float
        cache: Any | None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, Any]:
        """Logits ``[B, Q, V]`` (``[B, 1, V]`` with ``last_only``) as float32, and the grown cache."""
        self.forward_calls += 1
        out = self.model(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=mask,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1 if last_only else 0,
        )
        return out.logits.float(), out.past_key_values

    @staticmethod
    def select_rows(cache: Any, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the cache's batch (in place)."""
        cache.batch_select_indices(rows)
