"""What a model is made of, read from its config: layer types, whether TEMPO can run it, memory.

``describe(config, ...)`` works on a transformers ``PretrainedConfig`` alone (no
weights): architecture, sizes, the layer types found (full or sliding attention,
grouped-query, multi-head latent attention, mixture of experts, Mamba / state
space), whether each honours TEMPO's 4D masks, and memory estimates. The
formulas travel in the JSON (``"formulas"``) and in ``docs/model_info.md``.

``tempo_support(config)`` is the one place that decides whether TEMPO runs a
model: ``info`` prints it and ``ModelAdapter`` refuses what it rejects.

A missing or contradictory config field raises ``ModelInspectionError`` naming
the field (one line), never a traceback.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempo.errors import TempoError

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}
SSM_STATE_BYTES = 4
"""transformers 5.23 keeps the recurrent (SSM) state in float32 whatever the model's dtype; the conv state
is in the model's dtype."""

VERIFIED = {"llama", "qwen2", "qwen3", "mistral", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3"}
"""Model types whose greedy equivalence and candidate isolation are tested on tiny random models
(tests/test_architectures.py, tests/test_engine_invariants.py)."""

ATTENTION = {"full_attention", "sliding_attention"}
NO_MIXER = {"moe", "mlp", "dense", "sparse"}  # layers with no token mixer at all (nemotron_h style)
SEQUENTIAL = {"linear_attention", "hybrid", "hybrid_sliding", "conv"}
LEGACY = {"mamba": "linear_attention", "attention": "full_attention"}

SEQUENTIAL_REASON = (
    "state-space (Mamba) layers scan the sequence: they read the parallel candidates of a step one after "
    "another, so each candidate sees the candidates before it (TEMPO's isolation mask never reaches them), "
    "and their recurrent state cannot be cropped or rolled back (MCTS, pruning)"
)
MIXER_REASONS = {
    "full_attention": "attention reads TEMPO's explicit 4D mask and position ids: a candidate sees the context "
                      "and itself",
    "sliding_attention": "attention reads TEMPO's 4D mask; TEMPO adds the window to it by logical position "
                         "(a step's candidates count as one position) and keeps every slot in the cache",
    "mla": "multi-head latent attention caches one compressed latent per token and attends through TEMPO's "
           "4D mask like any attention layer",
    "none": "no token mixer: the layer works on each token alone",
    "linear_attention": SEQUENTIAL_REASON,
    "hybrid": "attention and a state-space (Mamba) mixer side by side: the Mamba half reads the parallel "
              "candidates one after another, " + SEQUENTIAL_REASON.split(", ", 1)[1],
    "conv": "a short causal convolution over the sequence mixes neighbouring slots, so the parallel "
            "candidates of a step see each other; its state cannot be cropped",
}
MOE_REASON = "experts are routed per token with no capacity limit: one candidate's routing never depends on another"


class ModelInspectionError(TempoError):
    """A model's config is missing a field or contradicts itself."""


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


def text_config(config: Any) -> Any:
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def _get(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _need(config: Any, name: str, *aliases: str) -> Any:
    value = _get(config, name, *aliases)
    if value is None:
        raise ModelInspectionError(f"config field {name} is missing")
    return value


def _positive_int(config: Any, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelInspectionError(f"config field {name} must be a positive integer, got {value!r}")
    return value


def kv_heads(cfg: Any) -> int | None:
    """Key/value heads: ``num_key_value_heads`` (or Falcon's ``num_kv_heads`` / ``multi_query``), else the heads."""
    heads = _get(cfg, "num_attention_heads")
    if getattr(cfg, "multi_query", False) is True and not getattr(cfg, "new_decoder_architecture", False):
        return 1
    return _get(cfg, "num_key_value_heads", "num_kv_heads", default=heads)


UNGATED_MLP = {"gpt2", "gpt_neox", "opt", "phi", "falcon", "bloom", "gptj", "mpt", "starcoder2", "gpt_bigcode",
               "codegen", "gpt_neo"}
"""Families whose MLP is two matrices (up, down) rather than the gated three (gate, up, down)."""


def dtype_name(config: Any, dtype: Any = None) -> str:
    """``dtype`` (``auto``/None: the config's ``dtype``, else float32) as a name of DTYPE_BYTES."""
    if dtype in (None, "", "auto"):
        dtype = _get(config, "dtype", "torch_dtype") or _get(text_config(config), "dtype", "torch_dtype") or "float32"
    name = str(dtype).replace("torch.", "")
    if name not in DTYPE_BYTES:
        raise ModelInspectionError(f"dtype must be auto or one of {', '.join(DTYPE_BYTES)}, got {name!r}")
    return name


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
        elif _get(config, "sliding_window") is not None and getattr(config, "use_sliding_window", True) is not False:
            types = ["sliding_attention"] * layers
        elif _get(config, "attention_chunk_size") is not None:
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
    experts = _get(config, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0
    if experts <= 1:
        return set()
    if getattr(config, "expert_layer_period", None):  # Jamba
        period, offset = config.expert_layer_period, getattr(config, "expert_layer_offset", 0) or 0
        return {i for i in range(layers) if i % period == offset}
    if _get(config, "n_routed_experts") is not None:  # DeepSeek V2 / V3
        first = getattr(config, "first_k_dense_replace", 0) or 0
        freq = getattr(config, "moe_layer_freq", 1) or 1
        return {i for i in range(layers) if i >= first and (i - first) % freq == 0}
    if getattr(config, "decoder_sparse_step", None) is not None or getattr(config, "mlp_only_layers", None):  # Qwen MoE
        step = getattr(config, "decoder_sparse_step", 1) or 1
        dense = set(getattr(config, "mlp_only_layers", None) or [])
        return {i for i in range(layers) if i not in dense and (i + 1) % step == 0}
    return set(range(layers))  # Mixtral and the like: every layer


def _mamba_kind(config: Any) -> str | None:
    if getattr(config, "model_type", "") == "mamba2" or _get(
            config, "mamba_n_heads", "n_mamba_heads", "mamba_d_head", "mamba_headdim") is not None:
        return "mamba2"
    if _get(config, "mamba_dt_rank", "time_step_rank") is not None or getattr(config, "model_type", "") in (
            "jamba", "mamba", "falcon_mamba"):
        return "mamba"
    return None


def check(config: Any) -> Any:
    """The text config, after checking the fields every estimate needs; raises ModelInspectionError."""
    cfg = text_config(config)
    _positive_int(cfg, "vocab_size", _need(cfg, "vocab_size"))
    hidden = _positive_int(cfg, "hidden_size", _need(cfg, "hidden_size"))
    layers = _positive_int(cfg, "num_hidden_layers", _need(cfg, "num_hidden_layers"))
    types = raw_layer_types(cfg, layers)
    if any(t in ATTENTION or t in ("hybrid", "hybrid_sliding", "chunked_attention") for t in types):
        heads = _positive_int(cfg, "num_attention_heads", _need(cfg, "num_attention_heads"))
        kv = kv_heads(cfg)
        _positive_int(cfg, "num_key_value_heads", kv)
        if kv > heads:
            raise ModelInspectionError(f"config field num_key_value_heads ({kv}) is larger than "
                                       f"num_attention_heads ({heads})")
        if heads % kv:
            raise ModelInspectionError(f"config field num_attention_heads ({heads}) is not a multiple of "
                                       f"num_key_value_heads ({kv})")
        if _get(cfg, "head_dim") is None and _get(cfg, "kv_lora_rank") is None and hidden % heads:
            raise ModelInspectionError(f"config field hidden_size ({hidden}) is not divisible by "
                                       f"num_attention_heads ({heads}) and head_dim is not set")
        if _get(cfg, "kv_lora_rank") is not None:
            for name in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
                _positive_int(cfg, name, _need(cfg, name))
    if any(t in ("sliding_attention", "hybrid_sliding") for t in types):
        _positive_int(cfg, "sliding_window", _need(cfg, "sliding_window"))
    return cfg


def layer_list(config: Any) -> list[Layer]:
    """Every decoder layer: mixer, attention kind, window, experts."""
    cfg = check(config)
    layers = cfg.num_hidden_layers
    types = raw_layer_types(cfg, layers)
    moe = _moe_layers(cfg, layers)
    heads = _get(cfg, "num_attention_heads")
    kv = kv_heads(cfg)
    mla = _get(cfg, "kv_lora_rank") is not None
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


def tempo_support(config: Any) -> dict[str, Any]:
    """``{"supported", "verified", "reason"}``: the one decision used by ``info`` and the engine."""
    cfg = text_config(config)
    model_type = getattr(config, "model_type", None) or getattr(cfg, "model_type", "?")
    if getattr(config, "is_encoder_decoder", False):
        return {"supported": False, "verified": False,
                "reason": f"{model_type} is an encoder-decoder model; TEMPO runs decoder-only causal LMs"}
    try:
        layers = layer_list(config)
    except ModelInspectionError as exc:
        return {"supported": False, "verified": False, "reason": str(exc)}
    sequential = [l.index for l in layers if l.mixer in SEQUENTIAL]
    if sequential:
        first = layers[sequential[0]]
        why = MIXER_REASONS.get(first.mixer, SEQUENTIAL_REASON)
        return {"supported": False, "verified": False,
                "reason": f"{model_type} has {first.mamba_kind or first.mixer} layers ({_ranges(sequential)}): "
                          f"{why}. TEMPO refuses this model rather than show candidates that are not isolated"}
    unknown = sorted({l.mixer for l in layers if l.mixer not in ("full_attention", "sliding_attention", "mla", "none")})
    if unknown:
        return {"supported": False, "verified": False,
                "reason": f"{model_type} has {', '.join(unknown)} layers: TEMPO's masks and cache operations "
                          f"are not built or tested for them"}
    extras = [name for name, present in (
        ("attention logit soft-capping", _get(cfg, "attn_logit_softcapping") is not None),
        ("attention sinks", model_type == "gpt_oss" or bool(getattr(cfg, "use_sink", False))),
    ) if present]
    if extras:
        return {"supported": False, "verified": False,
                "reason": f"{model_type} uses {' and '.join(extras)}, which TEMPO's attention (SDPA, or the "
                          f"explicit softmax of pruning) does not apply, so its outputs would not be the model's"}
    verified = model_type in VERIFIED
    reason = ("every layer is attention (with or without experts) that reads TEMPO's 4D mask; "
              + ("greedy equivalence and isolation are tested on a tiny random model of this family"
                 if verified else "this family is not in TEMPO's tested list, so run the invariant tests on it "
                                  "before trusting parallel sets (its attention must go through transformers' "
                                  "attention interface)"))
    return {"supported": True, "verified": verified, "reason": reason}


def _ranges(indices: list[int]) -> str:
    return ", ".join(str(i) for i in indices) if len(indices) <= 8 else f"{indices[0]}..{indices[-1]}, {len(indices)} layers"


# --- memory ---------------------------------------------------------------------------------------

def head_dims(cfg: Any) -> tuple[int, int]:
    """Key and value head dimensions of an ordinary attention layer."""
    heads = cfg.num_attention_heads
    k = _get(cfg, "head_dim", default=cfg.hidden_size // heads)
    return k, _get(cfg, "v_head_dim", default=k) if _get(cfg, "kv_lora_rank") is None else k


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
    inner = _get(cfg, "mamba_d_ssm") or int(_get(cfg, "mamba_expand", "expand", default=2) * hidden)
    d_state = _get(cfg, "mamba_d_state", "state_size", "ssm_state_size")
    d_conv = _get(cfg, "mamba_d_conv", "conv_kernel", "d_conv")
    if d_state is None or d_conv is None:
        return None
    if layer.mamba_kind == "mamba2":
        pure = getattr(cfg, "model_type", "") == "mamba2"  # Mamba2Config names its SSM heads num_heads / head_dim
        n_heads = _get(cfg, *(("num_heads",) if pure else ("mamba_n_heads", "n_mamba_heads")))
        head = _get(cfg, *(("head_dim",) if pure else ("mamba_d_head", "mamba_headdim")),
                    default=inner // n_heads if n_heads else None)
        groups = _get(cfg, "mamba_n_groups", "mamba_ngroups", "n_groups", default=1)
        if n_heads is None or head is None:
            return None
        conv = (inner + 2 * groups * d_state) * d_conv * nbytes
        return conv + n_heads * head * d_state * SSM_STATE_BYTES
    if layer.mamba_kind == "mamba":
        return inner * d_conv * nbytes + inner * d_state * SSM_STATE_BYTES
    return None


FORMULAS = {
    "weights_bytes": "parameters x bytes(dtype)",
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
    inter = _get(cfg, "intermediate_size", default=4 * hidden)
    moe_inter = _get(cfg, "moe_intermediate_size", default=inter)
    experts = _get(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0
    shared = (_get(cfg, "n_shared_experts", default=0) or 0) * moe_inter
    shared_inter = _get(cfg, "shared_expert_intermediate_size", default=shared) or 0
    for layer in layer_list(config):
        total += 2 * hidden  # two norms
        if layer.mixer == "mla":
            q_in = cfg.q_lora_rank or hidden
            qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
            total += ((hidden * cfg.q_lora_rank + cfg.q_lora_rank) if cfg.q_lora_rank else 0) + q_in * cfg.num_attention_heads * qk
            total += hidden * (cfg.kv_lora_rank + cfg.qk_rope_head_dim) + cfg.kv_lora_rank
            total += cfg.kv_lora_rank * cfg.num_attention_heads * (cfg.qk_nope_head_dim + cfg.v_head_dim)
            total += cfg.num_attention_heads * cfg.v_head_dim * hidden
        elif layer.attention is not None:
            k, v = head_dims(cfg)
            heads, kv = cfg.num_attention_heads, kv_heads(cfg)
            total += hidden * heads * k + hidden * kv * (k + v) + heads * v * hidden
        if layer.mixer in ("linear_attention", "hybrid", "hybrid_sliding"):
            inner = _get(cfg, "mamba_d_ssm") or int(_get(cfg, "mamba_expand", "expand", default=2) * hidden)
            d_state = _get(cfg, "mamba_d_state", "state_size", default=16)
            d_conv = _get(cfg, "mamba_d_conv", "conv_kernel", default=4)
            n_heads = _get(cfg, "mamba_n_heads", "n_mamba_heads", default=0) or 0
            groups = _get(cfg, "mamba_n_groups", "mamba_ngroups", default=1)
            if layer.mamba_kind == "mamba2":
                conv_dim = inner + 2 * groups * d_state
                total += hidden * (inner + conv_dim + n_heads) + conv_dim * (d_conv + 1) + 3 * n_heads + inner
                total += inner * hidden
            else:
                rank = _get(cfg, "mamba_dt_rank", default=math.ceil(hidden / 16))
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


def describe(config: Any, dtype: Any = None, parameters: int | None = None, max_seq_len: int | None = None,
             parallel_tokens: int = 5, parameters_source: str | None = None) -> dict[str, Any]:
    """The ``info`` JSON for ``config`` (see docs/model_info.md)."""
    cfg = check(config)
    layers = layer_list(config)
    name = dtype_name(config, dtype)
    nbytes = DTYPE_BYTES[name]
    if parameters is None:
        parameters, parameters_source = estimate_parameters(config), "estimate from the config"
    max_pos = _get(cfg, "max_position_embeddings")
    if max_seq_len is None:
        max_seq_len = max_pos or 2048
    _positive_int(cfg, "max_seq_len", max_seq_len)
    _positive_int(cfg, "parallel_tokens", parallel_tokens)
    if max_pos and max_seq_len > max_pos:
        raise ModelInspectionError(f"max_seq_len ({max_seq_len}) is larger than the model's "
                                   f"max_position_embeddings ({max_pos})")
    heads = _get(cfg, "num_attention_heads")
    groups: dict[str, dict[str, Any]] = {}
    for layer in layers:
        entry = groups.get(layer.type)
        if entry is None:
            state = state_bytes_per_sequence(cfg, layer, nbytes)
            honours = layer.mixer in ("full_attention", "sliding_attention", "mla", "none")
            reason = MIXER_REASONS.get(layer.mixer, f"TEMPO's masks are not built for {layer.mixer} layers")
            if layer.moe:
                reason += "; " + MOE_REASON
            entry = groups[layer.type] = {
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
        entry["layers"].append(layer.index)
        entry["count"] += 1
    per_token = sum(g["kv_bytes_per_token"] * g["count"] for g in groups.values())
    windowed = sum(g["kv_bytes_per_token"] * g["count"] * min(max_seq_len, (g["sliding_window"] or max_seq_len + 1) - 1)
                   for g in groups.values())
    unknown_state = any(g["state_bytes_per_sequence"] is None for g in groups.values())
    state = sum((g["state_bytes_per_sequence"] or 0) * g["count"] for g in groups.values())
    weights = parameters * nbytes
    kv_max = per_token * max_seq_len
    kv_parallel = kv_max * parallel_tokens
    experts = _get(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0
    info = {
        "architecture": (getattr(config, "architectures", None) or [None])[0],
        "model_type": getattr(config, "model_type", None),
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_hidden_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads(cfg),
        "head_dim": head_dims(cfg)[0] if heads and _get(cfg, "kv_lora_rank") is None else None,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": max_pos,
        "parameters": int(parameters),
        "parameters_source": parameters_source or "given",
        "dtype": name,
        "num_experts": experts or None,
        "experts_per_token": _get(cfg, "num_experts_per_tok") if experts else None,
        "layer_types": list(groups.values()),
        "layer_type_per_layer": [layer.type for layer in layers],
        "tempo_support": tempo_support(config),
        "memory": {
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
        },
    }
    return info


def human(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


# --- from a path or hub id ------------------------------------------------------------------------

REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers")


def _check_raw(folder: Path, config_class: Any) -> None:
    """Fields transformers would silently fill with a class default must be in a local config.json."""
    path = folder / "config.json"
    if not path.is_file():
        return
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelInspectionError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelInspectionError(f"{path}: not a JSON object")
    scopes = [raw] + [raw[k] for k in ("text_config", "language_config") if isinstance(raw.get(k), dict)]
    aliases = getattr(config_class, "attribute_map", {}) or {}
    for name in REQUIRED:
        keys = {name, aliases.get(name, name)} | {alias for alias, real in aliases.items() if real == name}
        if not any(k in scope for scope in scopes for k in keys):
            raise ModelInspectionError(f"config field {name} is missing from {path}")


def load_config(model_id: str, trust_remote_code: bool = False, local_files_only: bool = False,
                revision: str = "", cache_dir: str = "") -> Any:
    from transformers import AutoConfig

    from tempo.models.loading import resolve_model_path

    path = resolve_model_path(model_id)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
    if revision:
        kwargs["revision"] = revision
    if cache_dir:
        kwargs["cache_dir"] = str(Path(cache_dir).expanduser())
    if model_id.startswith(("/", "./", "../", "~")) and not Path(path).exists():
        raise ModelInspectionError(f"could not read model {model_id!r}: no such folder")
    folder = Path(path)
    if folder.is_dir():
        try:
            model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        try:
            from transformers import CONFIG_MAPPING
            config_class = CONFIG_MAPPING[model_type] if model_type else None
        except KeyError:
            config_class = None
        _check_raw(folder, config_class)
    try:
        return AutoConfig.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- any library failure becomes one line
        cause = exc.__cause__ if exc.__cause__ is not None and str(exc.__cause__).strip() else exc
        lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
        reason = lines[0] if lines else type(cause).__name__
        raise ModelInspectionError(f"could not read the config of {model_id!r}: {reason}") from None


def inspect_model(model_id: str, dtype: str = "auto", max_seq_len: int | None = None, parallel_tokens: int = 5,
                  **load: Any) -> dict[str, Any]:
    """``describe`` for a local folder or hub id; the parameter count from the safetensors headers when the
    weights are local, else estimated from the config (``parameters_source`` says which)."""
    from tempo.models.loading import resolve_model_path

    config = load_config(model_id, **load)
    path = resolve_model_path(model_id)
    try:
        parameters = count_parameters(path)
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise ModelInspectionError(f"could not read the safetensors header of {model_id!r}: {exc}") from None
    source = "safetensors header" if parameters is not None else None
    try:
        info = describe(config, dtype=dtype, parameters=parameters, max_seq_len=max_seq_len,
                        parallel_tokens=parallel_tokens, parameters_source=source)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError) as exc:  # a config shape not foreseen
        raise ModelInspectionError(f"could not describe {model_id!r} from its config: "
                                   f"{type(exc).__name__}: {exc}") from None
    return {"model": model_id, **info}


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


# --- for the app's Model tab ------------------------------------------------------------------------

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
