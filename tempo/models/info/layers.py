"""The decoder layers of a config: mixer (attention, sliding, MLA, Mamba, ...), attention kind, window, experts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tempo.models.info.fields import ModelInspectionError, first_field, kv_heads, need, positive_int, text_config

ATTENTION = {"full_attention", "sliding_attention"}
NO_MIXER = {"moe", "mlp", "dense", "sparse"}  # layers with no token mixer at all (nemotron_h style)
SEQUENTIAL = {"linear_attention", "hybrid", "hybrid_sliding", "conv"}
LEGACY = {"mamba": "linear_attention", "attention": "full_attention"}


@dataclass
class Layer:
    index: int
    mixer: str  # full_attention | sliding_attention | mla | linear_attention | hybrid | conv | none | other names
    attention: str | None  # multi-head | grouped-query | multi-query | multi-head latent
    window: int | None
    moe: bool
    mamba_kind: str | None = None  # mamba | mamba2 for state-space mixers, when the config says which

    @property
    def type(self) -> str:
        """``mixer/attention/mlp``, e.g. ``sliding_attention/grouped-query/moe``, ``mla/dense``, ``mamba2/dense``."""
        if self.mixer in ("hybrid", "hybrid_sliding"):
            mixer = f"{self.mixer.replace('hybrid', 'hybrid(attention')}+{self.mamba_kind or 'ssm'})"
        elif self.mixer == "linear_attention" and self.mamba_kind:
            mixer = self.mamba_kind
        else:
            mixer = self.mixer
        parts = [mixer] + ([self.attention] if self.attention and self.mixer != "mla" else [])
        return "/".join(parts + ["moe" if self.moe else "dense"])


def raw_layer_types(config: Any, layers: int) -> list[str]:
    """The per-layer mixer names as transformers 5 spells them (``layer_types``, legacy names mapped)."""
    types = getattr(config, "layer_types", None)
    if types is None:
        types = getattr(config, "layers_block_type", None)
    if types is None and getattr(config, "attn_layer_indices", None) is not None:
        types = ["full_attention" if i in config.attn_layer_indices else "linear_attention" for i in range(layers)]
    if types is None:
        if getattr(config, "model_type", "") in ("mamba", "mamba2", "falcon_mamba"):
            types = ["linear_attention"] * layers
        elif (first_field(config, "sliding_window") is not None
              and getattr(config, "use_sliding_window", True) is not False):
            types = ["sliding_attention"] * layers
        elif first_field(config, "attention_chunk_size") is not None:
            types = ["chunked_attention"] * layers
        else:
            types = ["full_attention"] * layers
    types = [LEGACY.get(str(t), str(t)) for t in types]
    if len(types) != layers:
        raise ModelInspectionError(f"config field layer_types has {len(types)} entries but num_hidden_layers "
                                   f"is {layers}")
    return types


def _moe_layers(config: Any, layers: int) -> set[int]:
    """Which layers route to experts, following each family's modelling code in transformers 5.23."""
    experts = first_field(config, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0
    if experts <= 1:
        return set()
    if getattr(config, "expert_layer_period", None):  # Jamba
        period, offset = config.expert_layer_period, getattr(config, "expert_layer_offset", 0) or 0
        return {i for i in range(layers) if i % period == offset}
    if first_field(config, "n_routed_experts") is not None:  # DeepSeek V2 / V3
        first = getattr(config, "first_k_dense_replace", 0) or 0
        freq = getattr(config, "moe_layer_freq", 1) or 1
        return {i for i in range(layers) if i >= first and (i - first) % freq == 0}
    if getattr(config, "decoder_sparse_step", None) is not None or getattr(config, "mlp_only_layers", None):  # Qwen MoE
        step = getattr(config, "decoder_sparse_step", 1) or 1
        dense = set(getattr(config, "mlp_only_layers", None) or [])
        return {i for i in range(layers) if i not in dense and (i + 1) % step == 0}
    return set(range(layers))  # Mixtral and the like: every layer


def _mamba_kind(config: Any) -> str | None:
    if getattr(config, "model_type", "") == "mamba2" or first_field(
            config, "mamba_n_heads", "n_mamba_heads", "mamba_d_head", "mamba_headdim") is not None:
        return "mamba2"
    if first_field(config, "mamba_dt_rank", "time_step_rank") is not None or getattr(config, "model_type", "") in (
            "jamba", "mamba", "falcon_mamba"):
        return "mamba"
    return None


def check(config: Any) -> Any:
    """The text config, after checking the fields every estimate needs; raises ModelInspectionError."""
    cfg = text_config(config)
    positive_int(cfg, "vocab_size", need(cfg, "vocab_size"))
    hidden = positive_int(cfg, "hidden_size", need(cfg, "hidden_size"))
    layers = positive_int(cfg, "num_hidden_layers", need(cfg, "num_hidden_layers"))
    types = raw_layer_types(cfg, layers)
    if any(t in ATTENTION or t in ("hybrid", "hybrid_sliding", "chunked_attention") for t in types):
        heads = positive_int(cfg, "num_attention_heads", need(cfg, "num_attention_heads"))
        kv = kv_heads(cfg)
        positive_int(cfg, "num_key_value_heads", kv)
        if kv > heads:
            raise ModelInspectionError(f"config field num_key_value_heads ({kv}) is larger than "
                                       f"num_attention_heads ({heads})")
        if heads % kv:
            raise ModelInspectionError(f"config field num_attention_heads ({heads}) is not a multiple of "
                                       f"num_key_value_heads ({kv})")
        if first_field(cfg, "head_dim") is None and first_field(cfg, "kv_lora_rank") is None and hidden % heads:
            raise ModelInspectionError(f"config field hidden_size ({hidden}) is not divisible by "
                                       f"num_attention_heads ({heads}) and head_dim is not set")
        if first_field(cfg, "kv_lora_rank") is not None:
            for name in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
                positive_int(cfg, name, need(cfg, name))
    if any(t in ("sliding_attention", "hybrid_sliding") for t in types):
        positive_int(cfg, "sliding_window", need(cfg, "sliding_window"))
    return cfg


def layer_list(config: Any) -> list[Layer]:
    """Every decoder layer: mixer, attention kind, window, experts."""
    cfg = check(config)
    layers = cfg.num_hidden_layers
    types = raw_layer_types(cfg, layers)
    moe = _moe_layers(cfg, layers)
    heads = first_field(cfg, "num_attention_heads")
    kv = kv_heads(cfg)
    mla = first_field(cfg, "kv_lora_rank") is not None
    kind = _mamba_kind(cfg)
    out = []
    for i, t in enumerate(types):
        attention = None
        mixer = "none" if t in NO_MIXER else t
        if t in ATTENTION or t in ("hybrid", "hybrid_sliding", "chunked_attention"):
            if mla:
                attention, mixer = "multi-head latent", ("mla" if t in ATTENTION else t)
            else:
                attention = "multi-head" if kv == heads else ("multi-query" if kv == 1 else "grouped-query")
        window = cfg.sliding_window if t in ("sliding_attention", "hybrid_sliding") else None
        out.append(Layer(i, mixer, attention, window, i in moe,
                         mamba_kind=kind if t in ("linear_attention", "hybrid", "hybrid_sliding") else None))
    return out


def sliding_windows(config: Any) -> list[int | None]:
    """Per layer: the attention window (in logical positions) TEMPO must add to its mask, or None."""
    return [layer.window if layer.mixer == "sliding_attention" else None for layer in layer_list(config)]
