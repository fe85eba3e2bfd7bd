"""Every call into a Hugging Face model goes through here, so a library rename touches one file."""
from __future__ import annotations

import logging
from typing import Any

import torch

from tempo.engine.layout import additive
from tempo.models.placement import execution_device
from tempo.errors import ModelLoadError

log = logging.getLogger(__name__)


PLAIN_HEAD_MODELS = {"llama", "qwen2", "qwen3", "mistral", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2",
                     "deepseek_v3"}
"""Families whose ``ForCausalLM.forward`` is ``lm_head(hidden)`` and nothing after (read in transformers 5.23)."""


class ModelAdapter:
    """A causal LM seen as: tokens + positions + 4D mask + cache -> logits + cache."""

    def __init__(self, model: Any):
        from tempo.engine.attention import NAME
        from tempo.models.info import sliding_windows, tempo_support

        # One decision for `info` and the engine: state-space layers and the like are refused here.
        self.support = tempo_support(model.config)
        if not self.support["supported"]:
            raise ModelLoadError(f"TEMPO cannot run this model: {self.support['reason']}")
        # SDPA on every layer, plus attention probabilities on demand for pruning (engine/attention.py).
        try:
            model.set_attn_implementation(NAME)
        except (ValueError, AttributeError, NotImplementedError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"TEMPO cannot run this model: its attention does not go through transformers' "
                                 f"attention interface ({reason})") from None
        self.model = model
        self.num_layers = model.config.get_text_config().num_hidden_layers
        # Sliding-window layers: the window is applied by logical position in TEMPO's own mask
        # (engine/attention.py), over a cache that keeps every slot.
        windows = sliding_windows(model.config)
        self.windows = {layer: w for layer, w in enumerate(windows) if w is not None}
        self.dtype = next(model.parameters()).dtype
        self.device = execution_device(model, torch.device("cpu"))  # a placed model: its input device
        self.forward_calls = 0
        self.tensor_parallel = any(type(p).__name__ == "DTensor" for p in model.parameters())
        """Sharded over processes (``model.tp_plan``): each process holds some heads of every layer."""
        config = model.config.get_text_config()
        self.vocab_size = config.vocab_size
        self.context: int | None = getattr(config, "max_position_embeddings", None)
        """Positions the model was made for (its ``max_position_embeddings``); None: it states none."""
        self.heads = getattr(config, "num_attention_heads", 1) or 1
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
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
        if log.isEnabledFor(logging.DEBUG):
            log.debug("forward %d: %d rows x %d slots over a cache of %d, %s mask%s", self.forward_calls,
                      input_ids.shape[0], input_ids.shape[1], 0 if cache is None else cache.get_seq_length(),
                      "explicit" if mask is not None else "causal", ", last logits only" if last_only else "")
        if self.windows:
            return self._windowed(input_ids, position_ids, mask, cache, last_only, needed)
        return self._forward(input_ids, position_ids, mask, cache, last_only, needed)

    def _forward(self, input_ids, position_ids, mask, cache, last_only, needed):
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

    def _windowed(self, input_ids, position_ids, mask, cache, last_only, needed):
        """A model with sliding-window layers: the window becomes part of the mask of those layers.

        A key is in the window of a query when their *position ids* differ by less than the window, so
        a step's parallel candidates count as one position (for one token a step this is exactly the
        library's sliding mask). The cache keeps every slot (a plain ``DynamicCache``) and the position
        id of each, ``cache.tempo_positions [B, T]``, kept in step by every cache operation here.
        """
        from transformers import DynamicCache

        from tempo.engine.attention import layer_masks

        batch, q = input_ids.shape
        if cache is None:
            cache = DynamicCache()
            cache.tempo_positions = position_ids.new_zeros(batch, 0)
        past = cache.tempo_positions
        if past.shape[1] != cache.get_seq_length():
            raise RuntimeError(f"cache positions out of step: {past.shape[1]} positions for "
                               f"{cache.get_seq_length()} cached slots")
        if mask is None:  # one new token per row that may see everything: causal over the new slots
            allowed = torch.ones(q, past.shape[1] + q, dtype=torch.bool, device=input_ids.device).tril(past.shape[1])
            mask = additive(allowed, self.dtype)[None, None].expand(batch, 1, -1, -1)
        keys = torch.cat([past, position_ids], dim=1)  # [B, T + Q]
        distance = position_ids[:, None, :, None] - keys[:, None, None, :]  # [B, 1, Q, T + Q]
        forbidden = torch.finfo(mask.dtype).min
        masks = {w: torch.where(distance < w, mask, torch.tensor(forbidden, dtype=mask.dtype, device=mask.device))
                 for w in set(self.windows.values())}
        with layer_masks({layer: masks[w] for layer, w in self.windows.items()}):
            logits, cache = self._forward(input_ids, position_ids, mask, cache, last_only, needed)
        cache.tempo_positions = keys
        return logits, cache

    @staticmethod
    def concat_rows(first: Any, first_pad: int, second: Any, second_pad: int) -> Any:
        """One cache holding the rows of ``first`` then ``second``, each left-padded along the
        sequence with ``*_pad`` zero slots (which the callers' masks never let anyone attend)."""
        for a, b in zip(first.layers, second.layers):
            a.keys = torch.cat([left_pad_seq(a.keys, first_pad), left_pad_seq(b.keys, second_pad)])
            a.values = torch.cat([left_pad_seq(a.values, first_pad), left_pad_seq(b.values, second_pad)])
        if hasattr(first, "tempo_positions"):
            first.tempo_positions = torch.cat([_left_pad_positions(first.tempo_positions, first_pad),
                                               _left_pad_positions(second.tempo_positions, second_pad)])
        return first

    @staticmethod
    def repeat_rows(cache: Any, times: int) -> None:
        """Repeat every row ``times`` times (in place)."""
        if times > 1:
            cache.batch_repeat_interleave(times)
            if hasattr(cache, "tempo_positions"):
                cache.tempo_positions = cache.tempo_positions.repeat_interleave(times, dim=0)

    @staticmethod
    def truncate(cache: Any, length: int) -> None:
        """Keep the first ``length`` positions of the cache (transformers 5: crop takes a negative count)."""
        extra = cache.get_seq_length() - length
        if extra > 0:
            cache.crop(-extra)
            if hasattr(cache, "tempo_positions"):
                cache.tempo_positions = cache.tempo_positions[:, :length]

    @staticmethod
    def trim_left(cache: Any, count: int) -> None:
        """Drop the first ``count`` slots of every row (in place): slots no row may attend any more."""
        if count > 0:
            for layer in cache.layers:
                layer.keys = layer.keys[:, :, count:].contiguous()
                layer.values = layer.values[:, :, count:].contiguous()
            if hasattr(cache, "tempo_positions"):
                cache.tempo_positions = cache.tempo_positions[:, count:].contiguous()

    @staticmethod
    def select_rows(cache: Any, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the cache's batch (in place)."""
        cache.batch_select_indices(rows)
        if hasattr(cache, "tempo_positions"):
            cache.tempo_positions = cache.tempo_positions[rows]


def _left_pad_positions(positions: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, T]`` -> ``[B, pad + T]`` (the padding slots are masked; their position is 0)."""
    return torch.cat([positions.new_zeros(positions.shape[0], pad), positions], dim=1) if pad else positions


def left_pad_seq(states: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, H, T, D]`` -> ``[B, H, pad + T, D]`` with zeros on the left."""
    if pad == 0:
        return states
    zeros = states.new_zeros(states.shape[0], states.shape[1], pad, states.shape[3])
    return torch.cat([zeros, states], dim=2)
