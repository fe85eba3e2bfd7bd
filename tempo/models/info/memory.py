"""Memory and size: KV cache bytes per token, Mamba state per sequence, parameter counts (estimated from the
config, read from safetensors headers, or held by a live cache). The formulas travel in the JSON (``FORMULAS``)
and in ``docs/model_info.md``."""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from tempo.models.info.fields import SSM_STATE_BYTES, first_field, kv_heads, text_config
from tempo.models.info.layers import SEQUENTIAL, Layer, layer_list

UNGATED_MLP = {"gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom", "gptj", "mpt", "starcoder2", "gpt_bigcode",
               "codegen", "gpt_neo"}
"""Families whose MLP is two matrices (up, down) rather than the gated three (gate, up, down)."""


def head_dims(cfg: Any) -> tuple[int, int]:
    """Key and value head dimensions of an ordinary attention layer."""
    heads = cfg.num_attention_heads
    k = first_field(cfg, "head_dim", default=cfg.hidden_size // heads)
    return k, first_field(cfg, "v_head_dim", default=k) if first_field(cfg, "kv_lora_rank") is None else k


def kv_bytes_per_token(cfg: Any, layer: Layer, nbytes: int) -> int:
    """Bytes the cache grows by per token (slot) for one layer, as transformers 5.23 stores it."""
    if layer.mixer == "mla":
        return (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * nbytes
    if layer.attention is None:
        return 0
    k, v = head_dims(cfg)
    return kv_heads(cfg) * (k + v) * nbytes


def mla_decompressed_bytes_per_token(cfg: Any, nbytes: int) -> int:
    """What an MLA layer would cache per token if it stored per-head keys and values."""
    return cfg.num_attention_heads * (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim + cfg.v_head_dim) * nbytes


def state_bytes_per_sequence(cfg: Any, layer: Layer, nbytes: int) -> int | None:
    """Constant conv + SSM state of one Mamba layer for one sequence (None: not estimated)."""
    if layer.mixer not in SEQUENTIAL or layer.mixer == "conv":
        return 0 if layer.mixer not in SEQUENTIAL else None
    hidden = cfg.hidden_size
    inner = first_field(cfg, "mamba_d_ssm") or int(first_field(cfg, "mamba_expand", "expand", default=2) * hidden)
    d_state = first_field(cfg, "mamba_d_state", "state_size", "ssm_state_size")
    d_conv = first_field(cfg, "mamba_d_conv", "conv_kernel", "d_conv")
    if d_state is None or d_conv is None:
        return None
    if layer.mamba_kind == "mamba2":
        pure = getattr(cfg, "model_type", "") == "mamba2"  # Mamba2Config names its SSM heads num_heads / head_dim
        n_heads = first_field(cfg, *(("num_heads",) if pure else ("mamba_n_heads", "n_mamba_heads")))
        head = first_field(cfg, *(("head_dim",) if pure else ("mamba_d_head", "mamba_headdim")),
                    default=inner // n_heads if n_heads else None)
        groups = first_field(cfg, "mamba_n_groups", "mamba_ngroups", "n_groups", default=1)
        if n_heads is None or head is None:
            return None
        conv = (inner + 2 * groups * d_state) * d_conv * nbytes
        return conv + n_heads * head * d_state * SSM_STATE_BYTES
    if layer.mamba_kind == "mamba":
        return inner * d_conv * nbytes + inner * d_state * SSM_STATE_BYTES
    return None


QUANTIZED_WEIGHT_BYTES = {"int8": 1.0, "bnb-8bit": 1.0, "8bit": 1.0, "int4": 0.5, "bnb-4bit": 0.5, "4bit": 0.5}
"""Bytes per weight of the linear layers under ``model.quantization`` (the scales add ~1-3 %; torchao's int4 on
the CPU stores one 4-bit value per byte: 1.0 there)."""


def weights_bytes(parameters: int, nbytes: int, embedding_parameters: int = 0, quantization: str = "") -> int:
    """The weights' bytes: every parameter at the dtype's bytes, or under a weight-only quantization the
    linear layers at its bytes per weight and the input embedding at the dtype's."""
    per_weight = QUANTIZED_WEIGHT_BYTES.get(quantization)
    if per_weight is None:
        return parameters * nbytes
    return int((parameters - embedding_parameters) * per_weight + embedding_parameters * nbytes)


FORMULAS = {
    "weights_bytes": "parameters x bytes(dtype); quantized: (parameters - vocab_size x hidden_size) x bytes per "
                     "quantized weight (int8 1, int4 0.5) + vocab_size x hidden_size x bytes(dtype)",
    "kv_bytes_per_token": "sum over attention layers of num_key_value_heads x (key head_dim + value head_dim) "
                          "x bytes(dtype); MLA layers: (kv_lora_rank + qk_rope_head_dim) x bytes(dtype), the "
                          "compressed latent transformers caches",
    "kv_bytes_at_max_seq_len": "kv_bytes_per_token x max_seq_len (TEMPO keeps every slot, sliding layers too)",
    "kv_bytes_at_max_seq_len_windowed": "sum over layers of per-token bytes x min(max_seq_len, window - 1): "
                                        "what transformers' own generate() keeps between forwards, sliding layers "
                                        "capped at the window",
    "kv_bytes_with_parallel_tokens": "kv_bytes_per_token x max_seq_len x parallel_tokens: every one of "
                                     "max_seq_len positions holding parallel_tokens candidates (each candidate is "
                                     "one cache slot); an upper bound, the prompt holds one token per position",
    "state_bytes_per_sequence": "Mamba2: (d_inner + 2 x n_groups x d_state) x d_conv x bytes(dtype) + n_heads x "
                                "head_dim x d_state x 4; Mamba: d_inner x d_conv x bytes(dtype) + d_inner x "
                                "d_state x 4 (the SSM state is float32); per sequence, independent of its length",
    "total_bytes_at_max_seq_len": "weights_bytes + kv_bytes_at_max_seq_len + state_bytes_per_sequence",
    "total_bytes_with_parallel_tokens": "weights_bytes + kv_bytes_with_parallel_tokens + state_bytes_per_sequence",
}


def estimate_parameters(config: Any) -> int:
    """Parameter count from the config alone (embeddings, attention, MLP or experts, Mamba, norms)."""
    cfg = text_config(config)
    hidden, vocab = cfg.hidden_size, cfg.vocab_size
    total = vocab * hidden * (1 if getattr(config, "tie_word_embeddings", True) else 2) + hidden
    inter = first_field(cfg, "intermediate_size", default=4 * hidden)
    moe_inter = first_field(cfg, "moe_intermediate_size", default=inter)
    experts = first_field(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0
    shared = (first_field(cfg, "n_shared_experts", default=0) or 0) * moe_inter
    shared_inter = first_field(cfg, "shared_expert_intermediate_size", default=shared) or 0
    for layer in layer_list(config):
        total += 2 * hidden  # two norms
        if layer.mixer == "mla":
            q_in = cfg.q_lora_rank or hidden
            qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
            total += ((hidden * cfg.q_lora_rank + cfg.q_lora_rank) if cfg.q_lora_rank else 0)
            total += q_in * cfg.num_attention_heads * qk
            total += hidden * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) + cfg.kv_lora_rank
            total += cfg.kv_lora_rank * cfg.num_attention_heads * (cfg.qk_nope_head_dim + cfg.v_head_dim)
            total += cfg.num_attention_heads * cfg.v_head_dim * hidden
        elif layer.attention is not None:
            k, v = head_dims(cfg)
            heads, kv = cfg.num_attention_heads, kv_heads(cfg)
            total += hidden * heads * k + hidden * kv * (k + v) + heads * v * hidden
        if layer.mixer in ("linear_attention", "hybrid", "hybrid_sliding"):
            inner = (first_field(cfg, "mamba_d_ssm")
                     or int(first_field(cfg, "mamba_expand", "expand", default=2) * hidden))
            d_state = first_field(cfg, "mamba_d_state", "state_size", default=16)
            d_conv = first_field(cfg, "mamba_d_conv", "conv_kernel", default=4)
            n_heads = first_field(cfg, "mamba_n_heads", "n_mamba_heads", default=0) or 0
            groups = first_field(cfg, "mamba_n_groups", "mamba_ngroups", default=1)
            if layer.mamba_kind == "mamba2":
                conv_dim = inner + 2 * groups * d_state
                total += hidden * (inner + conv_dim + n_heads) + conv_dim * (d_conv + 1) + 3 * n_heads + inner
                total += inner * hidden
            else:
                rank = first_field(cfg, "mamba_dt_rank", default=math.ceil(hidden / 16))
                total += hidden * 2 * inner + inner * (d_conv + 1) + inner * (rank + 2 * d_state) + rank * inner
                total += inner + inner * d_state + inner + inner * hidden + 3 * max(rank, d_state)
        if layer.moe:
            total += experts * 3 * hidden * moe_inter + hidden * experts
            if shared_inter:
                total += 3 * hidden * shared_inter
        else:
            total += (2 if getattr(cfg, "model_type", "") in UNGATED_MLP else 3) * hidden * inter
    return int(total)


def count_parameters(path: str | Path) -> int | None:
    """Parameters of a local checkpoint from its safetensors header(s), without reading the weights."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    total = 0
    for name in files:
        with open(folder / name, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for key, entry in header.items():
            if key != "__metadata__":
                total += math.prod(entry["shape"])
    return total


def allocated_cache_bytes(cache: Any) -> dict[str, int]:
    """Bytes a transformers cache holds now: per-token keys/values and constant recurrent states."""
    kv = state = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if tensor is not None and hasattr(tensor, "numel"):
                kv += tensor.numel() * tensor.element_size()
        for states in (getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)):
            for tensor in (states or {}).values():
                if tensor is not None:
                    state += tensor.numel() * tensor.element_size()
    return {"kv_bytes": kv, "state_bytes": state}


def human(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)
