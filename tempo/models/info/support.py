"""``tempo_support(config)``: the one place that decides whether TEMPO runs a model (``info`` prints it,
``ModelAdapter`` refuses what it rejects), and the reason each layer kind honours TEMPO's masks or not."""
from __future__ import annotations

from typing import Any

from tempo.models.info.fields import ModelInspectionError, first_field, text_config
from tempo.models.info.layers import SEQUENTIAL, layer_list

VERIFIED = {"llama", "qwen2", "qwen3", "mistral", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3"}
"""Model types whose greedy equivalence and candidate isolation are tested on tiny random models
(tests/test_architectures.py, tests/test_engine_invariants.py)."""

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
        ("attention logit soft-capping", first_field(cfg, "attn_logit_softcapping") is not None),
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
    if len(indices) <= 8:
        return ", ".join(str(i) for i in indices)
    return f"{indices[0]}..{indices[-1]}, {len(indices)} layers"
