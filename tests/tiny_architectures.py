"""Tiny random models of many architectures, as transformers 5.23 provides them (CPU, no kernels).

Hidden size 64, 2-3 layers, the word-level tokenizer of ``tiny_models``; the output head is
sharpened like the Llama/Qwen2 test models so several tokens pass a 0.05-0.1 threshold.
``EXPECTED`` holds, per architecture, the layer types ``info`` must list and whether TEMPO runs it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import build_tokenizer

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
              pad_token_id=0, tie_word_embeddings=False)
MLA = dict(num_key_value_heads=4, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=12,
           n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, first_k_dense_replace=1,
           n_shared_experts=1)
MAMBA2 = dict(num_hidden_layers=3, attn_layer_indices=[1], mamba_n_heads=4, mamba_d_head=32, mamba_d_state=8,
              mamba_n_groups=1, mamba_chunk_size=16)
WINDOW = 6  # small enough that the test prompts and generations run past it


def config(kind: str, vocab_size: int):
    import transformers as T

    c = COMMON | {"vocab_size": vocab_size}
    builders = {
        "llama": lambda: T.LlamaConfig(**c),
        "qwen2": lambda: T.Qwen2Config(**c),
        "mistral": lambda: T.MistralConfig(**c, sliding_window=WINDOW),
        "qwen2_sliding": lambda: T.Qwen2Config(**c | {"num_hidden_layers": 3}, use_sliding_window=True,
                                               sliding_window=WINDOW, max_window_layers=1),
        "mixtral": lambda: T.MixtralConfig(**c, num_local_experts=4, num_experts_per_tok=2),
        "qwen2_moe": lambda: T.Qwen2MoeConfig(**c | {"num_hidden_layers": 3}, num_experts=4, num_experts_per_tok=2,
                                              moe_intermediate_size=32, shared_expert_intermediate_size=64,
                                              mlp_only_layers=[0]),
        "deepseek_v2": lambda: T.DeepseekV2Config(**c | MLA, q_lora_rank=None),
        "deepseek_v3": lambda: T.DeepseekV3Config(**c | MLA, q_lora_rank=24, n_group=1, topk_group=1),
        "bamba": lambda: T.BambaConfig(**c | MAMBA2),
        "jamba": lambda: T.JambaConfig(**c, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
                                       expert_layer_offset=1, num_experts=2, mamba_d_state=8, mamba_dt_rank=8),
    }
    return builders[kind]()


EXPECTED = {
    # kind: (supported, [(layer type, layer indices)])
    "llama": (True, [("full_attention/grouped-query/dense", [0, 1])]),
    "qwen2": (True, [("full_attention/grouped-query/dense", [0, 1])]),
    "mistral": (True, [("sliding_attention/grouped-query/dense", [0, 1])]),
    "qwen2_sliding": (True, [("full_attention/grouped-query/dense", [0]),
                             ("sliding_attention/grouped-query/dense", [1, 2])]),
    "mixtral": (True, [("full_attention/grouped-query/moe", [0, 1])]),
    "qwen2_moe": (True, [("full_attention/grouped-query/dense", [0]), ("full_attention/grouped-query/moe", [1, 2])]),
    "deepseek_v2": (True, [("mla/dense", [0]), ("mla/moe", [1])]),
    "deepseek_v3": (True, [("mla/dense", [0]), ("mla/moe", [1])]),
    "bamba": (False, [("mamba2/dense", [0, 2]), ("full_attention/grouped-query/dense", [1])]),
    "jamba": (False, [("mamba/dense", [0]), ("full_attention/grouped-query/moe", [1])]),
}
KINDS = list(EXPECTED)
SUPPORTED = [k for k, (ok, _) in EXPECTED.items() if ok]
REFUSED = [k for k, (ok, _) in EXPECTED.items() if not ok]


def build_model(kind: str, vocab_size: int, seed: int = 0, sharpen: float = 8.0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config(kind, vocab_size))
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model.eval()


def save_tiny(path: Path, kind: str, seed: int = 0) -> Path:
    tokenizer = build_tokenizer()
    build_model(kind, len(tokenizer), seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
