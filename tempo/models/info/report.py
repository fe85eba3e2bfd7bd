"""``describe``: the ``info`` JSON of a config (see docs/model_info.md), and its views for the app's Model tab."""
from __future__ import annotations

from typing import Any

from tempo.models.info.fields import (DTYPE_BYTES, ModelInspectionError, dtype_name, first_field, kv_heads,
                                      positive_int)
from tempo.models.info.layers import Layer, check, layer_list
from tempo.models.info.memory import (FORMULAS, estimate_parameters, head_dims, human, kv_bytes_per_token,
                                      mla_decompressed_bytes_per_token, state_bytes_per_sequence, weights_bytes)
from tempo.models.info.support import MIXER_REASONS, MOE_REASON, tempo_support


def describe(config: Any, dtype: Any = None, parameters: int | None = None, max_seq_len: int | None = None,
             parallel_tokens: int = 5, parameters_source: str | None = None, quantization: str = ""
             ) -> dict[str, Any]:
    """The ``info`` JSON for ``config`` (see docs/model_info.md); ``quantization``: ``model.quantization``."""
    cfg = check(config)
    layers = layer_list(config)
    name = dtype_name(config, dtype)
    nbytes = DTYPE_BYTES[name]
    if parameters is None:
        parameters, parameters_source = estimate_parameters(config), "estimate from the config"
    max_pos = first_field(cfg, "max_position_embeddings")
    if max_seq_len is None:
        max_seq_len = max_pos or 2048
    positive_int(cfg, "max_seq_len", max_seq_len)
    positive_int(cfg, "parallel_tokens", parallel_tokens)
    if max_pos and max_seq_len > max_pos:
        raise ModelInspectionError(f"max_seq_len ({max_seq_len}) is larger than the model's "
                                   f"max_position_embeddings ({max_pos})")
    heads = first_field(cfg, "num_attention_heads")
    groups = layer_groups(cfg, layers, nbytes)
    experts = first_field(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0
    return {
        "architecture": (getattr(config, "architectures", None) or [None])[0],
        "model_type": getattr(config, "model_type", None),
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_hidden_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads(cfg),
        "head_dim": head_dims(cfg)[0] if heads and first_field(cfg, "kv_lora_rank") is None else None,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": max_pos,
        "parameters": int(parameters),
        "parameters_source": parameters_source or "given",
        "dtype": name,
        "quantization": quantization or None,
        "num_experts": experts or None,
        "experts_per_token": first_field(cfg, "num_experts_per_tok") if experts else None,
        "layer_types": groups,
        "layer_type_per_layer": [layer.type for layer in layers],
        "tempo_support": tempo_support(config),
        "memory": memory_estimate(groups, nbytes, parameters, max_seq_len, parallel_tokens,
                                  weights_bytes(parameters, nbytes, cfg.vocab_size * cfg.hidden_size, quantization)),
    }


def layer_groups(cfg: Any, layers: list[Layer], nbytes: int) -> list[dict[str, Any]]:
    """One entry per layer type, in order of first appearance: what it is, which layers, its cache bytes."""
    groups: dict[str, dict[str, Any]] = {}
    for layer in layers:
        entry = groups.get(layer.type)
        if entry is None:
            entry = groups[layer.type] = _layer_group(cfg, layer, nbytes)
        entry["layers"].append(layer.index)
        entry["count"] += 1
    return list(groups.values())


def _layer_group(cfg: Any, layer: Layer, nbytes: int) -> dict[str, Any]:
    state = state_bytes_per_sequence(cfg, layer, nbytes)
    honours = layer.mixer in ("full_attention", "sliding_attention", "mla", "none")
    reason = MIXER_REASONS.get(layer.mixer, f"TEMPO's masks are not built for {layer.mixer} layers")
    if layer.moe:
        reason += "; " + MOE_REASON
    entry = {
        "type": layer.type, "mixer": layer.mamba_kind if layer.mixer == "linear_attention" and layer.mamba_kind
        else layer.mixer,
        "attention": layer.attention, "sliding_window": layer.window, "mixture_of_experts": layer.moe,
        "layers": [], "count": 0, "honours_tempo_masks": honours, "reason": reason,
        "kv_bytes_per_token": kv_bytes_per_token(cfg, layer, nbytes),
        "state_bytes_per_sequence": state,
    }
    if layer.mixer == "mla":
        entry["mla_latent_bytes_per_token"] = entry["kv_bytes_per_token"]
        entry["mla_decompressed_bytes_per_token"] = mla_decompressed_bytes_per_token(cfg, nbytes)
    return entry


def memory_estimate(groups: list[dict[str, Any]], nbytes: int, parameters: int, max_seq_len: int,
                    parallel_tokens: int, weights: int | None = None) -> dict[str, Any]:
    """The ``memory`` part of ``describe``: weights, KV cache and recurrent state, with their formulas."""
    per_token = sum(g["kv_bytes_per_token"] * g["count"] for g in groups)
    windowed = sum(g["kv_bytes_per_token"] * g["count"] * min(max_seq_len, (g["sliding_window"] or max_seq_len + 1) - 1)
                   for g in groups)
    unknown_state = any(g["state_bytes_per_sequence"] is None for g in groups)
    state = sum((g["state_bytes_per_sequence"] or 0) * g["count"] for g in groups)
    weights = parameters * nbytes if weights is None else weights
    kv_max = per_token * max_seq_len
    kv_parallel = kv_max * parallel_tokens
    return {
        "dtype_bytes": nbytes,
        "max_seq_len": max_seq_len,
        "parallel_tokens": parallel_tokens,
        "weights_bytes": weights,
        "kv_bytes_per_token": per_token,
        "kv_bytes_at_max_seq_len": kv_max,
        "kv_bytes_at_max_seq_len_windowed": windowed,
        "kv_bytes_with_parallel_tokens": kv_parallel,
        "state_bytes_per_sequence": None if unknown_state else state,
        "total_bytes_at_max_seq_len": weights + kv_max + state,
        "total_bytes_with_parallel_tokens": weights + kv_parallel + state,
        "human": {"weights": human(weights), "kv_at_max_seq_len": human(kv_max),
                  "kv_with_parallel_tokens": human(kv_parallel), "state": human(state)},
        "formulas": FORMULAS,
    }


TABLE_COLUMNS = ["layer type", "layers", "count", "honours TEMPO's masks", "KV bytes / token",
                 "state bytes / sequence", "why"]


def describe_loaded(model: Any, dtype: Any, parallel_tokens: int = 5) -> dict[str, Any]:
    """``describe`` for a loaded model: its dtype and its exact parameter count."""
    parameters = sum(p.numel() for p in model.parameters())
    return describe(model.config, dtype=dtype, parameters=parameters, parallel_tokens=parallel_tokens,
                    parameters_source="loaded model")


def layer_table(info: dict[str, Any]) -> list[list[Any]]:
    """One row per layer type of ``describe``'s output (columns: TABLE_COLUMNS)."""
    return [[g["type"], ", ".join(map(str, g["layers"])), g["count"], "yes" if g["honours_tempo_masks"] else "no",
             g["kv_bytes_per_token"], g["state_bytes_per_sequence"], g["reason"]] for g in info["layer_types"]]


def summary_line(info: dict[str, Any]) -> str:
    """One Markdown line: support, parameters, weights and KV cache figures."""
    memory, support = info["memory"], info["tempo_support"]
    verdict = "✔ TEMPO runs this model" if support["supported"] else "✘ TEMPO refuses this model"
    return (f"**{verdict}** ({support['reason']}) · {info['parameters'] / 1e6:.2f}M parameters "
            f"({info['dtype']}, weights {memory['human']['weights']}) · KV cache {memory['kv_bytes_per_token']} "
            f"B/token, {memory['human']['kv_at_max_seq_len']} at {memory['max_seq_len']} positions, "
            f"{memory['human']['kv_with_parallel_tokens']} with {memory['parallel_tokens']} candidates each")
