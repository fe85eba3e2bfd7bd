"""The one request type that every interface builds: ``GenerationRequest``, each field declared once.

A field's declaration (:func:`declare`) holds everything an interface needs to know about it: default,
type, range or choices, settings section and key, help text, UI label, hint and group, CLI flag
spellings, and the slider range where the app's slider is narrower than the valid range. Validation
(here), the settings validators (``tempo.settings.rules``), the CLI flags (``tempo.cli.generate``), the
app's controls (``tempo.ui.controls``), the REST body (``tempo.serve.rest``) and the field table of
``docs/requests.md`` (``tempo.docs``) are all generated from :data:`FIELDS`, so a new field is one edit.

Field defaults here are the *code defaults*, the lowest level of the precedence chain; ``build_request``
layers settings and explicit arguments on top and validates the result.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from tempo.errors import RequestError
from tempo.fields import (  # noqa: F401 -- the declaration's vocabulary, imported from here by the interfaces
    LIMITS, MAIN_GROUP, OTHER_GROUP, FieldSpec, Flag, check_order, declare, fields_of, limit_arg, resolve_aliases,
    shown,
)

NEXT_LOGITS_MODES = ("mixture", "top", "last")
SCHEDULES = ("constant", "bezier", "relu")
MODES = ("tempo", "default", "mcts")
COMPLETE_PRUNING_MODES = ("keep_token", "keep_unattended", "remove_position")
TRUNCATE_PROMPT = ("none", "left")
UI_GROUPS = (MAIN_GROUP, "Sampling", "Dynamic thresholds", "Retroactive pruning", "MCTS")
"""The app's groups in screen order; a group not listed comes after them, "Other settings" last."""


def _generation(default: Any, group: str = "Sampling", **spec: Any) -> Any:
    return declare(default, section="generation", group=group, **spec)


def _pruning(default: Any, **spec: Any) -> Any:
    return declare(default, section="pruning", group="Retroactive pruning", **spec)


def _mcts(default: Any, **spec: Any) -> Any:
    return declare(default, section="mcts", group="MCTS", **spec)


_DYNAMIC = "Dynamic thresholds"
_UNIT = {"lo": 0.0, "hi": 1.0}


@dataclass(frozen=True)
class GenerationRequest:
    """Everything one generation needs besides the model."""

    prompt: str = declare(required=True, section="", group=None, label="Prompt", help="the prompt")
    mode: str = _generation(
        "tempo", group=None, choices=MODES, label="Mode", info="compare runs every mode on the prompt, side by side",
        doc="tempo (parallel sets), default (one token a step: greedy or seeded sampling) or mcts",
        flags=(Flag(("--default-mode",), "default",
                    "ordinary generation, one token a step (greedy, or sampled with --seed)"),
               Flag(("--use-mcts",), "mcts", "Monte Carlo tree search generation")))
    max_tokens: int = _generation(100, group=MAIN_GROUP, lo=1, hi_setting="generation.max_tokens_limit",
                                  label="Max tokens", info="logical steps at most", help="logical steps at most")
    selection_threshold: float = _generation(
        0.1, group=MAIN_GROUP, **_UNIT, ui_before="max_tokens", label="Selection threshold",
        info="tokens with probability ≥ this join a step's set",
        help="tokens with probability >= this join a step's set, in [0, 1]", aliases=("threshold",))
    selection_schedule: str = _generation(
        "constant", group=_DYNAMIC, choices=SCHEDULES, label="Schedule",
        info="constant = off; Bezier or ReLU move the threshold over the steps",
        help="how the selection threshold moves over the steps")
    selection_final_threshold: float = _generation(
        1.0, group=_DYNAMIC, **_UNIT, label="Final threshold", info="the threshold at the last step",
        help="the scheduled threshold's final value")
    bezier_p1: float = _generation(0.2, group=_DYNAMIC, **_UNIT, label="Bezier p1", info="first control value",
                                   help="first Bezier control value (shared with pruning)")
    bezier_p2: float = _generation(0.8, group=_DYNAMIC, **_UNIT, label="Bezier p2", info="second control value",
                                   help="second Bezier control value (shared with pruning)")
    relu_activation_point: float = _generation(
        0.5, group=_DYNAMIC, lo=0.0, hi=0.999, ui_range=(0, 0.99), label="ReLU activation point",
        info="progress where the ReLU starts moving", help="progress where the ReLU schedule starts moving")
    temperature: float = _generation(0.8, lo=0.0, hi=100.0, ui_range=(0, 2), ui_step=0.05, label="Temperature",
                                     info="0 = greedy (one token a step)", help="0 = greedy",
                                     doc="0 = greedy: the set is the argmax alone")
    top_k: int = _generation(50, lo=0, ui_range=(0, 200), label="Top-k", info="0 disables", help="0 disables")
    top_p: float = _generation(0.95, **_UNIT, lo_excluded="must be in (0, 1] (1.0 disables it), got 0.0",
                               ui_range=(0.01, 1), label="Top-p", info="1.0 disables", help="1.0 disables")
    repetition_penalty: float = _generation(1.0, lo=0.01, hi=100.0, ui_range=(0.5, 2), ui_step=0.05,
                                            label="Repetition penalty", info="1.0 = off")
    max_parallel_tokens: int = _generation(5, lo=1, hi=256, ui_range=(1, 20), label="Max parallel tokens",
                                           info="largest set size", help="largest set size")
    min_steps: int = _generation(0, lo=0, ui_range=(0, "generation.max_tokens_limit"), label="Min steps",
                                 info="EOS is suppressed before this many steps",
                                 help="EOS is suppressed before this many steps")
    next_logits_mode: str = _generation("mixture", choices=NEXT_LOGITS_MODES, label="Next-token mode",
                                        info="how a set's rows make the next distribution",
                                        help="how a set's rows make the next distribution")
    allow_intraset_token_visibility: bool = _generation(False, label="Intraset visibility",
                                                        info="candidates of one set see each other",
                                                        help="candidates of one set see each other")
    enable_thinking: bool = _generation(False, label="Thinking mode",
                                        info="adds the thinking system message (chat template)",
                                        help="add the thinking system message through the chat template")
    system_content: str = _generation("", label="System message", info="overrides the thinking message",
                                      help="a system message (overrides the thinking message)")
    truncate_prompt: str = _generation(
        "none", choices=TRUNCATE_PROMPT, label="Truncate the prompt",
        info="left: drop the oldest prompt tokens when the prompt + max tokens exceed the model's context",
        help="none: refuse a prompt that does not fit the model's context with max_tokens; left: drop its oldest "
             "tokens (a leading BOS stays) and say so in the result's prompt_truncated",
        doc="none: a prompt whose tokens plus max_tokens exceed the model's context is refused (naming the counts); "
            "left: its oldest tokens are dropped (a leading BOS token stays) and the result's `prompt_truncated` "
            "counts them")
    seed: int = _generation(0, lo=0, hi=2**63 - 1, slider=False, ui_before="max_parallel_tokens",
                            checked_last=True, label="Seed", info="for sampled default mode")
    # --- retroactive pruning (settings section ``pruning``; TEMPO_SPEC sections 5 and 6) ---
    use_retroactive_pruning: bool = _pruning(False, label="Retroactive pruning",
                                             info="drop set members later tokens do not attend to",
                                             help="prune alternatives that later tokens do not attend")
    attention_threshold: float = _pruning(
        0.01, **_UNIT, ui_range=(0, 0.2), ui_step=0.001, label="Attention threshold",
        info="a candidate stays with at least this attention", help="attention a token needs to stay, in [0, 1]",
        doc="a token of a judged set stays when the attention it receives reaches this (scheduled) value")
    relative_threshold: float = _pruning(0.5, **_UNIT, label="Relative threshold",
                                         info="... and this fraction of its set's best",
                                         help="fraction of its set's most attended token, in [0, 1]",
                                         doc="... and at least this fraction of the most attended token of its set")
    relative_attention: bool = _pruning(True, label="Relative attention",
                                        info="compare with the set's most attended candidate",
                                        help="skip the relative test")
    multi_scale_attention: bool = _pruning(
        True, label="Multi-scale attention", info="weight the last layers with linspace(0.2, 1)",
        help="plain mean of the last 3 layers instead of linspace(0.2, 1) weights",
        doc="weight the last num_layers_to_use layers with linspace(0.2, 1.0); off: plain mean of the last 3")
    num_layers_to_use: int = _pruning(0, lo=0, ui_range=(0, 64), label="Layers to use", info="0 = all layers",
                                      help="last layers read (0 = all)")
    sigmoid_threshold: bool = _pruning(True, label="Sigmoid threshold", info="a soft decision around the threshold",
                                       help="hard test a >= threshold instead of the sigmoid")
    sigmoid_steepness: float = _pruning(10.0, lo=0.001, hi=1000.0, ui_range=(0.1, 100), ui_step=0.1,
                                        label="Sigmoid steepness",
                                        doc="k of the soft score 1 / (1 + exp(-k (attention - threshold)))")
    complete_pruning_mode: str = _pruning("keep_token", choices=COMPLETE_PRUNING_MODES,
                                          label="When a whole set is pruned", help="what happens when a whole set fails")
    preserve_isolated_tokens: bool = _pruning(True, label="Preserve isolated tokens",
                                              info="never judge a step with one kept token",
                                              help="judge single-token steps too")
    soft_pruning: bool = _pruning(
        False, label="Soft pruning", info="bias attention by log(sigmoid) instead of cutting",
        help="fade weakly attended tokens with a log(sigmoid) bias instead of cutting them")
    dynamic_threshold: bool = _pruning(
        False, label="Dynamic attention threshold", info="Bezier (or ReLU) from threshold to final",
        help="move the attention threshold to --final-threshold over the steps (Bezier)")
    use_relu: bool = _pruning(False, label="ReLU schedule", info="ReLU instead of Bezier for the attention threshold",
                              help="ReLU instead of Bezier for the schedule")
    final_threshold: float = _pruning(1.0, **_UNIT, label="Final attention threshold",
                                      help="the dynamic attention threshold's final value")
    # --- Monte Carlo tree search (mode "mcts"; settings section ``mcts``; TEMPO_SPEC section 7) ---
    mcts_simulations: int = _mcts(10, lo=1, hi_setting="mcts.max_simulations", ui_range=(1, 200),
                                  label="Simulations", help="simulations per step")
    mcts_c_puct: float = _mcts(1.0, lo=0.0, hi=100.0, ui_range=(0, 10), ui_step=0.1, label="c_puct",
                               info="exploration constant", help="exploration constant of PUCT")
    mcts_depth: int = _mcts(5, lo=0, hi_setting="mcts.max_depth", ui_range=(1, 50), label="Depth",
                            help="rollout tokens after the leaf", doc="rollout length after the leaf, in tokens")
    mcts_expand: int = _mcts(5, lo=1, hi=256, ui_range=(1, 20), label="Expand", info="children per expansion",
                             help="children per node: the top tokens of its distribution")
    mcts_batch: int = _mcts(1, lo=1, hi=64, label="Batch",
                            info="simulations evaluated together in one forward (1 = sequential)",
                            help="simulations evaluated together in one batched forward",
                            doc="simulations evaluated together in one batched forward (virtual loss keeps them "
                                "apart); 1 = strictly sequential PUCT")

    def validate(self, max_tokens_limit: int = LIMITS["generation.max_tokens_limit"],
                 mcts_max_depth: int = LIMITS["mcts.max_depth"],
                 mcts_max_simulations: int = LIMITS["mcts.max_simulations"]) -> "GenerationRequest":
        """Raise RequestError naming the first bad field; return self when all is well."""
        limits = {"max_tokens_limit": max_tokens_limit, "mcts_max_depth": mcts_max_depth,
                  "mcts_max_simulations": mcts_max_simulations}
        for spec in check_order(type(self)):
            spec.check(getattr(self, spec.name), **limits)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


FIELDS: dict[str, FieldSpec] = fields_of(GenerationRequest)
"""Every request field's declaration, in declaration order (``prompt`` first)."""

BOOLEAN_FIELDS = tuple(name for name, spec in FIELDS.items() if spec.type is bool)
PRUNING_FIELDS = tuple(name for name, spec in FIELDS.items() if spec.section == "pruning")


def section_of(name: str) -> str:
    """The settings section a request field's default lives in (``mcts_depth`` -> ``mcts.depth``)."""
    return FIELDS[name].section


def setting_name(name: str) -> str:
    """The key of a request field inside its settings section."""
    return FIELDS[name].key


def build_request(prompt: str, settings: Any = None, **overrides: Any) -> GenerationRequest:
    """A validated request: explicit ``overrides`` > the typed ``settings`` (their generation, pruning and
    mcts sections) > code defaults.

    ``None`` in overrides means "not given" (so CLI flags left out fall through).
    Unknown override names are rejected, naming them; a field's alias (``threshold``) names the field.
    """
    overrides = resolve_aliases(overrides, FIELDS)
    names = set(GenerationRequest.field_names())
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise RequestError(unknown[0], f"unknown setting; known settings are {', '.join(sorted(names - {'prompt'}))}")
    values = {name: value for name, value in overrides.items() if value is not None}
    limits: dict[str, int] = {}  # no settings: the request's own defaults and LIMITS
    if settings is not None:  # the typed settings (tempo.settings.schema): every key is an attribute
        for name in names - {"prompt"} - set(values):
            values[name] = getattr(getattr(settings, FIELDS[name].section), FIELDS[name].key)
        for setting in LIMITS:
            section, key = setting.split(".")
            limits[limit_arg(setting)] = int(getattr(getattr(settings, section), key))
    values = {k: _coerce(k, v) for k, v in values.items()}
    return GenerationRequest(prompt=prompt, **values).validate(**limits)


_TYPES = {name: spec.type.__name__ for name, spec in FIELDS.items()}


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
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past the largest float
        raise RequestError(name, f"must be a number ({kind}), got {shown(value)}") from None
    return value
