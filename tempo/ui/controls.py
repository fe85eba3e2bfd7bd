"""The app's settings controls: one Gradio component per ``GenerationRequest`` field, named after it.

A control exists only when the request has the field (``GenerationRequest.field_names()``),
so new engine settings appear in the app as they land: a field listed in a group
below gets its place there; an unlisted one still gets a control (from its type)
in "Other settings". Defaults are the effective ones: settings.toml, then code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gradio as gr

from tempo.settings import loader as config
from tempo.request import NEXT_LOGITS_MODES, SCHEDULES
from tempo.request import GenerationRequest


@dataclass(frozen=True)
class Spec:
    label: str
    info: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()


SPECS: dict[str, Spec] = {
    "selection_threshold": Spec("Selection threshold", "tokens with probability ≥ this join a step's set", 0, 1, 0.01),
    "max_tokens": Spec("Max tokens", "logical steps at most", 1, None, 1),
    # Sampling
    "temperature": Spec("Temperature", "0 = greedy (one token a step)", 0, 2, 0.05),
    "top_k": Spec("Top-k", "0 disables", 0, 200, 1),
    "top_p": Spec("Top-p", "1.0 disables", 0.01, 1, 0.01),
    "repetition_penalty": Spec("Repetition penalty", "1.0 = off", 0.5, 2, 0.05),
    "seed": Spec("Seed", "for sampled default mode"),
    "max_parallel_tokens": Spec("Max parallel tokens", "largest set size", 1, 20, 1),
    "min_steps": Spec("Min steps", "EOS is suppressed before this many steps", 0, 100, 1),
    "next_logits_mode": Spec("Next-token mode", "how a set's rows make the next distribution",
                             choices=NEXT_LOGITS_MODES),
    "allow_intraset_token_visibility": Spec("Intraset visibility", "candidates of one set see each other"),
    "enable_thinking": Spec("Thinking mode", "adds the thinking system message (chat template)"),
    "system_content": Spec("System message", "overrides the thinking message"),
    # Dynamic thresholds
    "selection_schedule": Spec("Schedule", "constant = off; Bezier or ReLU move the threshold over the steps",
                               choices=SCHEDULES),
    "selection_final_threshold": Spec("Final threshold", "the threshold at the last step", 0, 1, 0.01),
    "bezier_p1": Spec("Bezier p1", "first control value", 0, 1, 0.01),
    "bezier_p2": Spec("Bezier p2", "second control value", 0, 1, 0.01),
    "relu_activation_point": Spec("ReLU activation point", "progress where the ReLU starts moving", 0, 0.99, 0.01),
    # Retroactive pruning
    "use_retroactive_pruning": Spec("Retroactive pruning", "drop set members later tokens do not attend to"),
    "attention_threshold": Spec("Attention threshold", "a candidate stays with at least this attention",
                                0, 0.2, 0.001),
    "relative_threshold": Spec("Relative threshold", "... and this fraction of its set's best", 0, 1, 0.01),
    "relative_attention": Spec("Relative attention", "compare with the set's most attended candidate"),
    "multi_scale_attention": Spec("Multi-scale attention", "weight the last layers with linspace(0.2, 1)"),
    "num_layers_to_use": Spec("Layers to use", "0 = all layers", 0, 64, 1),
    "sigmoid_threshold": Spec("Sigmoid threshold", "a soft decision around the threshold"),
    "sigmoid_steepness": Spec("Sigmoid steepness", "", 0.1, 100, 0.1),
    "complete_pruning_mode": Spec("When a whole set is pruned", "", choices=getattr(config, "COMPLETE_PRUNING_MODES", ())),
    "preserve_isolated_tokens": Spec("Preserve isolated tokens", "never judge a step with one kept token"),
    "soft_pruning": Spec("Soft pruning", "bias attention by log(sigmoid) instead of cutting"),
    "dynamic_threshold": Spec("Dynamic attention threshold", "Bezier (or ReLU) from threshold to final"),
    "use_relu": Spec("ReLU schedule", "ReLU instead of Bezier for the attention threshold"),
    "final_threshold": Spec("Final attention threshold", "", 0, 1, 0.01),
    # MCTS
    "mcts_simulations": Spec("Simulations", "", 1, 200, 1),
    "mcts_c_puct": Spec("c_puct", "exploration constant", 0, 10, 0.1),
    "mcts_depth": Spec("Depth", "", 1, 50, 1),
    "mcts_expand": Spec("Expand", "children per expansion", 1, 20, 1),
    "mcts_batch": Spec("Batch", "simulations evaluated together in one forward (1 = sequential)", 1, 64, 1),
}

MAIN = ("selection_threshold", "max_tokens")
GROUPS: dict[str, tuple[str, ...]] = {
    "Sampling": ("temperature", "top_k", "top_p", "repetition_penalty", "seed", "max_parallel_tokens", "min_steps",
                 "next_logits_mode", "allow_intraset_token_visibility", "enable_thinking", "system_content"),
    "Dynamic thresholds": ("selection_schedule", "selection_final_threshold", "bezier_p1", "bezier_p2",
                           "relu_activation_point"),
    "Retroactive pruning": ("use_retroactive_pruning", "attention_threshold", "relative_threshold",
                            "relative_attention", "multi_scale_attention", "num_layers_to_use", "sigmoid_threshold",
                            "sigmoid_steepness", "complete_pruning_mode", "preserve_isolated_tokens", "soft_pruning",
                            "dynamic_threshold", "use_relu", "final_threshold"),
    "MCTS": ("mcts_simulations", "mcts_c_puct", "mcts_depth", "mcts_expand", "mcts_batch"),
}
NOT_CONTROLS = ("prompt", "mode")


def request_fields() -> dict[str, str]:
    """Field name -> its type name (``"float"``), as ``GenerationRequest`` has them now."""
    return {f.name: str(f.type) for f in dataclasses.fields(GenerationRequest)}


def grouped_fields() -> dict[str, list[str]]:
    """Accordion title -> the fields it shows (only those the request has); "Other settings" last."""
    have = request_fields()
    groups = {title: [n for n in names if n in have] for title, names in GROUPS.items()}
    placed = set(MAIN) | set(NOT_CONTROLS) | {n for names in groups.values() for n in names}
    groups["Other settings"] = [n for n in have if n not in placed]
    return {title: names for title, names in groups.items() if names}


def control(name: str, default: Any, max_tokens_limit: int = 1024) -> gr.components.Component:
    """The component for one request field, its value the effective default."""
    spec = SPECS.get(name, Spec(name.replace("_", " ").capitalize()))
    kind = request_fields()[name]
    common: dict[str, Any] = {"label": spec.label, "info": spec.info or None, "elem_id": f"ctl-{name}"}
    if spec.choices:
        return gr.Radio(list(spec.choices), value=default, **common)
    if kind == "bool":
        return gr.Checkbox(value=bool(default), **common)
    if kind in ("int", "float"):
        maximum = max_tokens_limit if name in ("max_tokens", "min_steps") else spec.maximum
        if spec.minimum is not None and maximum is not None:
            lo, hi = min(spec.minimum, default), max(maximum, default)
            return gr.Slider(lo, hi, value=default, step=spec.step or (1 if kind == "int" else 0.01), **common)
        return gr.Number(value=default, precision=0 if kind == "int" else None, **common)
    return gr.Textbox(value="" if default is None else str(default), **common)


def to_overrides(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    """The controls' values as ``build_request`` overrides (ints from sliders made ints)."""
    kinds = request_fields()
    out = {}
    for name, value in zip(names, values):
        if kinds[name] == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out
