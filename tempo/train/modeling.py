"""From a TrainConfig's model keys to a standard Hugging Face causal LM.

    use_rmsnorm + use_rope       -> LlamaForCausalLM   (SwiGLU MLP of width d_ff)
    LayerNorm   + use_rope       -> GPTNeoXForCausalLM (sequential residual, GELU MLP)
    LayerNorm   + learned pos.   -> GPT2LMHeadModel    (GELU MLP)
    RMSNorm     + learned pos.   -> refused by TrainConfig.validate (no standard architecture)

All three save with ``save_pretrained`` and load with ``AutoModelForCausalLM``.
"""
from __future__ import annotations

from typing import Any

import torch

from tempo.train.config import TrainConfig


def architecture(config: TrainConfig) -> str:
    if config.use_rope:
        return "llama" if config.use_rmsnorm else "gpt_neox"
    return "gpt2"


def hf_config(config: TrainConfig, vocab_size: int | None = None, special_ids: dict[str, int] | None = None) -> Any:
    """The transformers config object for ``config``; ``vocab_size`` overrides (the tokenizer's real size)."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

    ids = special_ids or {"pad": 0, "bos": 2, "eos": 3}
    vocab = vocab_size or config.vocab_size
    common = dict(vocab_size=vocab, tie_word_embeddings=config.tie_embeddings,
                  pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"])
    kind = architecture(config)
    if kind == "llama":
        # Llama has no hidden-state dropout; `dropout` goes to the attention probabilities.
        return LlamaConfig(hidden_size=config.d_model, intermediate_size=config.d_ff,
                           num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                           num_key_value_heads=config.n_heads, max_position_embeddings=config.max_seq_len,
                           attention_dropout=config.dropout, rms_norm_eps=1e-5, **common)
    if kind == "gpt_neox":
        return GPTNeoXConfig(hidden_size=config.d_model, intermediate_size=config.d_ff,
                             num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                             max_position_embeddings=config.max_seq_len, rotary_pct=1.0,
                             use_parallel_residual=False, hidden_dropout=config.dropout,
                             attention_dropout=config.dropout, **common)
    return GPT2Config(n_embd=config.d_model, n_layer=config.n_layers, n_head=config.n_heads, n_inner=config.d_ff,
                      n_positions=config.max_seq_len, resid_pdrop=config.dropout, embd_pdrop=config.dropout,
                      attn_pdrop=config.dropout, **common)


def build_model(config: TrainConfig, vocab_size: int | None = None, special_ids: dict[str, int] | None = None,
                device: str | torch.device = "cpu") -> torch.nn.Module:
    """A freshly initialised model; ``device="meta"`` builds the shapes without allocating memory."""
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        return AutoModelForCausalLM.from_config(hf_config(config, vocab_size, special_ids))


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())


def expected_parameters(config: TrainConfig) -> int:
    """The parameter count worked out by hand from the dimensions (checks ``build_model``)."""
    d, ff, n, v = config.d_model, config.d_ff, config.n_layers, config.vocab_size
    embed = v * d * (1 if config.tie_embeddings else 2)
    kind = architecture(config)
    if kind == "llama":  # q k v o without bias, gate up down, two RMSNorm weights; final norm
        return embed + n * (4 * d * d + 3 * d * ff + 2 * d) + d
    if kind == "gpt_neox":  # fused qkv and dense with bias, MLP with bias, two LayerNorms; final LayerNorm
        return embed + n * (4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d) + 2 * d
    # gpt2: learned positions; c_attn, c_proj, c_fc, c_proj with bias; two LayerNorms; final LayerNorm
    return embed + config.max_seq_len * d + n * (4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d) + 2 * d


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass (transformers 5 renamed gradient_ to activation_checkpointing)."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model.config.use_cache = False
