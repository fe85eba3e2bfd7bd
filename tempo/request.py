"""The one request type that every interface builds: ``GenerationRequest``.

Field defaults here are the *code defaults*, the lowest level of the
precedence chain; ``build_request`` layers settings and explicit arguments on
top and validates the result.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from tempo.errors import RequestError

NEXT_LOGITS_MODES = ("mixture", "top", "last")
SCHEDULES = ("constant", "bezier", "relu")
MODES = ("tempo", "default", "mcts")
COMPLETE_PRUNING_MODES = ("keep_token", "keep_unattended", "remove_position")


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one generation needs besides the model."""

    prompt: str
    mode: str = "tempo"
    """``tempo`` (parallel sets), ``default`` (one token a step: greedy or seeded sampling) or ``mcts``."""
    max_tokens: int = 100
    """Number of logical steps at most."""
    selection_threshold: float = 0.1
    """Every token with probability >= this joins the step's set."""
    selection_schedule: str = "constant"
    selection_final_threshold: float = 1.0
    bezier_p1: float = 0.2
    bezier_p2: float = 0.8
    relu_activation_point: float = 0.5
    temperature: float = 0.8
    """0 = greedy: the set is the argmax alone."""
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    max_parallel_tokens: int = 5
    min_steps: int = 0
    next_logits_mode: str = "mixture"
    allow_intraset_token_visibility: bool = False
    enable_thinking: bool = False
    system_content: str = ""
    seed: int = 0
    # --- retroactive pruning (settings section ``pruning``; TEMPO_SPEC sections 5 and 6) ---
    use_retroactive_pruning: bool = False
    attention_threshold: float = 0.01
    """A token of a judged set stays when the attention it receives reaches this (scheduled) value."""
    relative_threshold: float = 0.5
    """... and at least this fraction of the most attended token of its set."""
    relative_attention: bool = True
    multi_scale_attention: bool = True
    """Weight the last ``num_layers_to_use`` layers with linspace(0.2, 1.0); off: plain mean of the last 3."""
    num_layers_to_use: int = 0
    """0 = all layers."""
    sigmoid_threshold: bool = True
    sigmoid_steepness: float = 10.0
    complete_pruning_mode: str = "keep_token"
    preserve_isolated_tokens: bool = True
    """Never judge a step with a single kept token."""
    soft_pruning: bool = False
    """Bias later attention by log(sigmoid) instead of cutting weakly attended tokens."""
    dynamic_threshold: bool = False
    use_relu: bool = False
    final_threshold: float = 1.0
    # --- Monte Carlo tree search (mode "mcts"; settings section ``mcts``; TEMPO_SPEC section 7) ---
    mcts_simulations: int = 10
    mcts_c_puct: float = 1.0
    mcts_depth: int = 5
    """Rollout length after the leaf, in tokens."""
    mcts_expand: int = 5
    """Children of a node: the top tokens of its processed distribution."""
    mcts_batch: int = 1
    """Simulations evaluated together in one batched forward (virtual loss keeps them apart);
    1 = strictly sequential PUCT."""

    def validate(self, max_tokens_limit: int = 1024, mcts_max_depth: int = 32,
                 mcts_max_simulations: int = 1000) -> "GenerationRequest":
        """Raise RequestError naming the first bad field; return self when all is well."""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise RequestError("prompt", "must be a non-empty string")
        _choice("mode", self.mode, MODES)
        _int_range("max_tokens", self.max_tokens, 1, max_tokens_limit)
        _range("selection_threshold", self.selection_threshold, 0.0, 1.0)
        _choice("selection_schedule", self.selection_schedule, SCHEDULES)
        _range("selection_final_threshold", self.selection_final_threshold, 0.0, 1.0)
        _range("bezier_p1", self.bezier_p1, 0.0, 1.0)
        _range("bezier_p2", self.bezier_p2, 0.0, 1.0)
        _range("relu_activation_point", self.relu_activation_point, 0.0, 0.999)
        _range("temperature", self.temperature, 0.0, 100.0)
        _int_range("top_k", self.top_k, 0, None)
        _range("top_p", self.top_p, 0.0, 1.0)
        if self.top_p == 0.0:
            raise RequestError("top_p", "must be in (0, 1] (1.0 disables it), got 0.0")
        _range("repetition_penalty", self.repetition_penalty, 0.01, 100.0)
        _int_range("max_parallel_tokens", self.max_parallel_tokens, 1, 256)
        _int_range("min_steps", self.min_steps, 0, None)
        _choice("next_logits_mode", self.next_logits_mode, NEXT_LOGITS_MODES)
        _range("attention_threshold", self.attention_threshold, 0.0, 1.0)
        _range("relative_threshold", self.relative_threshold, 0.0, 1.0)
        _int_range("num_layers_to_use", self.num_layers_to_use, 0, None)
        _range("sigmoid_steepness", self.sigmoid_steepness, 0.001, 1000.0)
        _choice("complete_pruning_mode", self.complete_pruning_mode, COMPLETE_PRUNING_MODES)
        _range("final_threshold", self.final_threshold, 0.0, 1.0)
        _int_range("mcts_simulations", self.mcts_simulations, 1, mcts_max_simulations)
        _range("mcts_c_puct", self.mcts_c_puct, 0.0, 100.0)
        _int_range("mcts_depth", self.mcts_depth, 0, mcts_max_depth)
        _int_range("mcts_expand", self.mcts_expand, 1, 256)
        _int_range("mcts_batch", self.mcts_batch, 1, 64)
        for name in BOOLEAN_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise RequestError(name, f"must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.system_content, str):
            raise RequestError("system_content", "must be a string")
        _int_range("seed", self.seed, 0, 2**63 - 1)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


BOOLEAN_FIELDS = (
    "allow_intraset_token_visibility", "enable_thinking", "use_retroactive_pruning", "relative_attention",
    "multi_scale_attention", "sigmoid_threshold", "preserve_isolated_tokens", "soft_pruning", "dynamic_threshold",
    "use_relu",
)

PRUNING_FIELDS = (
    "use_retroactive_pruning", "attention_threshold", "relative_threshold", "relative_attention",
    "multi_scale_attention", "num_layers_to_use", "sigmoid_threshold", "sigmoid_steepness", "complete_pruning_mode",
    "preserve_isolated_tokens", "soft_pruning", "dynamic_threshold", "use_relu", "final_threshold",
)


def section_of(name: str) -> str:
    """The settings section a request field's default lives in (``mcts_depth`` -> ``mcts.depth``)."""
    if name in PRUNING_FIELDS:
        return "pruning"
    return "mcts" if name.startswith("mcts_") else "generation"


def setting_name(name: str) -> str:
    """The key of a request field inside its settings section."""
    return name.removeprefix("mcts_")


def build_request(prompt: str, settings: Any = None, **overrides: Any) -> GenerationRequest:
    """A validated request: explicit ``overrides`` > ``settings.generation`` > code defaults.

    ``None`` in overrides means "not given" (so CLI flags left out fall through).
    Unknown override names are rejected, naming them.
    """
    names = set(GenerationRequest.field_names())
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise RequestError(unknown[0], f"unknown setting; known settings are {', '.join(sorted(names - {'prompt'}))}")
    values: dict[str, Any] = {}
    sections: dict[str, Mapping[str, Any]] = {}
    if settings is not None:
        sections = {name: {k.lower(): v for k, v in settings.get(name, {}).items()}
                    for name in ("generation", "pruning", "mcts")}
    limit = int(sections.get("generation", {}).get("max_tokens_limit", 1024))
    mcts = sections.get("mcts", {})
    for name in names - {"prompt"}:
        section = sections.get(section_of(name), {})
        if overrides.get(name) is not None:
            values[name] = overrides[name]
        elif setting_name(name) in section:
            values[name] = section[setting_name(name)]
    values = {k: _coerce(k, v) for k, v in values.items()}
    return GenerationRequest(prompt=prompt, **values).validate(
        max_tokens_limit=limit, mcts_max_depth=int(mcts.get("max_depth", 32)),
        mcts_max_simulations=int(mcts.get("max_simulations", 1000)))


_TYPES = {f.name: f.type for f in fields(GenerationRequest)}


def _coerce(name: str, value: Any) -> Any:
    """Accept JSON/form values of the right kind (``"0.5"`` for a float, 3.0 for an int, "true" for a bool)."""
    kind = _TYPES[name]
    if kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        if kind == "int" and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "float" and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        raise RequestError(name, f"must be a number ({kind}), got {value!r}") from None
    return value


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) or not lo <= value <= hi:
        raise RequestError(name, f"must be in [{lo}, {hi}], got {value!r}")


def _int_range(name: str, value: int, lo: int, hi: int | None) -> None:
    shown = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        raise RequestError(name, f"must be an integer {'in ' if hi is not None else ''}{shown}, got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RequestError(name, f"must be one of {', '.join(choices)}, got {value!r}")
