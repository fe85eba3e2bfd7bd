"""Every call into a Hugging Face model goes through here, so a library rename touches one file."""
from __future__ import annotations

from typing import Any

import torch


PLAIN_HEAD_MODELS = {"llama", "qwen2", "qwen3", "mistral"}


class ModelAdapter:
    """A causal LM seen as: tokens + positions + 4D mask + cache -> logits + cache."""

    def __init__(self, model: Any):
        from tempo.engine.attention import NAME

        # SDPA on every layer, plus attention probabilities on demand for pruning (engine/attention.py).
        model.set_attn_implementation(NAME)
        self.model = model
        self.num_layers = model.config.get_text_config().num_hidden_layers
        self.dtype = next(model.parameters()).dtype
        self.device = next(model.parameters()).device
        self.forward_calls = 0
        config = model.config.get_text_config()
        self.vocab_size = config.vocab_size
        # Heads known to be logits = lm_head(hidden) with nothing after (no soft-capping, no scale).
        self.plain_head = config.model_type in PLAIN_HEAD_MODELS and not getattr(config, "final_logit_softcapping", None)

    @torch.inference_mode()
    def forward(
        self,
        input_ids: torch.Tensor,  # [B, Q]
        position_ids: torch.Tensor,  # [B, Q]
        mask: torch.Tensor | None,  # [B, 1, Q, T + Q] additive float; None: plain causal
        cache: Any | None,
        last_only: bool = False,
        needed: torch.Tensor | None = None,  # [B, Q] bool: slots whose logits the caller reads
    ) -> tuple[torch.Tensor, Any]:
        """Logits ``[B, Q, V]`` (``[B, 1, V]`` with ``last_only``) as float32, and the grown cache.

        With ``needed`` (and a model whose head is a plain projection) only those slots get logits;
        the others are 0. A batch pads every row to the largest set, so this skips the output
        projection — the costliest matrix of a small model — for filler slots.
        """
        self.forward_calls += 1
        if needed is not None and self.plain_head and not bool(needed.all()):
            out = self.model.base_model(input_ids=input_ids, position_ids=position_ids, attention_mask=mask,
                                        past_key_values=cache, use_cache=True)
            hidden = out.last_hidden_state  # [B, Q, H]
            logits = hidden.new_zeros(*hidden.shape[:2], self.vocab_size, dtype=torch.float32)
            logits[needed] = self.model.get_output_embeddings()(hidden[needed]).float()
            return logits, out.past_key_values
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
    def concat_rows(first: Any, first_pad: int, second: Any, second_pad: int) -> Any:
        """One cache holding the rows of ``first`` then ``second``, each left-padded along the
        sequence with ``*_pad`` zero slots (which the callers' masks never let anyone attend)."""
        for a, b in zip(first.layers, second.layers):
            a.keys = torch.cat([_left_pad_seq(a.keys, first_pad), _left_pad_seq(b.keys, second_pad)])
            a.values = torch.cat([_left_pad_seq(a.values, first_pad), _left_pad_seq(b.values, second_pad)])
        return first

    @staticmethod
    def repeat_rows(cache: Any, times: int) -> None:
        """Repeat every row ``times`` times (in place)."""
        if times > 1:
            cache.batch_repeat_interleave(times)

    @staticmethod
    def truncate(cache: Any, length: int) -> None:
        """Keep the first ``length`` positions of the cache (transformers 5: crop takes a negative count)."""
        extra = cache.get_seq_length() - length
        if extra > 0:
            cache.crop(-extra)

    @staticmethod
    def select_rows(cache: Any, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the cache's batch (in place)."""
        cache.batch_select_indices(rows)


def _left_pad_seq(states: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, H, T, D]`` -> ``[B, H, pad + T, D]`` with zeros on the left."""
    if pad == 0:
        return states
    zeros = states.new_zeros(states.shape[0], states.shape[1], pad, states.shape[3])
    return torch.cat([zeros, states], dim=2)
