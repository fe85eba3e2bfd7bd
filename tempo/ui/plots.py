"""Matplotlib figures of a result, and of a threshold schedule before generating.

Figures are built with the object API (``Figure``), not ``pyplot``: the app draws
them from several threads at once and pyplot's global state is not thread-safe.
"""
from __future__ import annotations

from matplotlib.figure import Figure

from tempo.engine.schedules import threshold_at
from tempo.result import KEPT, PRUNED, REMOVED, GenerationResult, pruned_by

STATUS_COLOURS = {KEPT: "#0284c7", PRUNED: "#9ca3af", REMOVED: "#dc2626"}
FATE_COLOURS = {KEPT: "#0284c7", "coherence": "#f59e0b", "diversity": "#16a34a", "attention": "#9ca3af"}
"""The set-size plot's stacks: kept, dropped by a strategy at their own step, pruned later by attention."""
SIZE = (7.0, 3.2)


def _axes(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def fates(result: GenerationResult) -> dict[str, list[int]]:
    """Per step, how many candidates are kept and how many each cause took away (``FATE_COLOURS``' keys:
    ``coherence`` / ``diversity`` dropped by strategy pruning, ``attention`` pruned or removed by retroactive
    pruning)."""
    counts = {fate: [0] * len(result.steps) for fate in FATE_COLOURS}
    for n, step in enumerate(result.steps):
        for c in step.candidates:
            counts[pruned_by(step, c) or KEPT][n] += 1
    return counts


def set_sizes_figure(result: GenerationResult) -> Figure:
    """Candidates per step, stacked by fate: kept, and what pruned the others (a strategy or attention)."""
    fig, ax = _axes("Candidates per step: kept, and what pruned the others", "step", "tokens")
    steps = [s.step for s in result.steps]
    bottom = [0] * len(steps)
    for fate, counts in fates(result).items():
        if fate == KEPT or any(counts):
            label = fate if fate == KEPT else f"pruned by {fate}"
            ax.bar(steps, counts, bottom=bottom, color=FATE_COLOURS[fate], label=label)
            bottom = [b + c for b, c in zip(bottom, counts)]
    ax.legend(loc="upper right", fontsize=8)
    return fig


def probabilities_figure(result: GenerationResult) -> Figure:
    """Every candidate's probability at its step, coloured by status, with the selection threshold."""
    fig, ax = _axes("Candidate probabilities per step", "step", "probability")
    for status, colour in STATUS_COLOURS.items():
        points = [(s.step, c.probability) for s in result.steps for c in s.candidates if c.status == status]
        if points:
            ax.scatter(*zip(*points), s=14, color=colour, label=status)
    if result.steps:
        ax.step([s.step for s in result.steps], [s.selection_threshold for s in result.steps], where="mid",
                color="#f59e0b", linewidth=1, label="selection threshold")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, 1.02)
    return fig


def thresholds_figure(result: GenerationResult) -> Figure:
    """The selection threshold and (with pruning) the attention threshold over the steps."""
    fig, ax = _axes("Thresholds over the steps", "step", "threshold")
    steps = [s.step for s in result.steps]
    ax.plot(steps, [s.selection_threshold for s in result.steps], color="#f59e0b", label="selection")
    attention = [(s.step, s.attention_threshold) for s in result.steps if s.attention_threshold is not None]
    if attention:
        ax.plot(*zip(*attention), color="#7c3aed", label="attention")
    if steps:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_ylim(0, 1.02)
    return fig


def attention_figure(result: GenerationResult) -> Figure:
    """The attention that decided each candidate's fate, at the step that decided it."""
    fig, ax = _axes("Attention that decided each pruning", "step decided", "attention")
    decided = [(s, c) for s in result.steps for c in s.candidates if c.attention is not None]
    for status, colour in STATUS_COLOURS.items():
        points = [(c.pruned_at_step if c.pruned_at_step is not None else s.step, c.attention)
                  for s, c in decided if c.status == status]
        if points:
            ax.scatter(*zip(*points), s=14, color=colour, label=status)
    if decided:
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no pruning in this result", ha="center", va="center", transform=ax.transAxes,
                color="#6b7280")
    return fig


def result_figures(result: GenerationResult) -> list[Figure]:
    """The Plots tab, in order."""
    return [set_sizes_figure(result), probabilities_figure(result), thresholds_figure(result),
            attention_figure(result)]


def schedule_figure(kind: str, start: float, final: float, p1: float, p2: float, activation_point: float,
                    max_tokens: int, attention: tuple[str, float, float] | None = None) -> Figure:
    """The selection threshold each step will use (and the attention threshold's, when given as
    ``(kind, start, final)``): the Dynamic thresholds accordion's live curve."""
    fig, ax = _axes("Threshold schedule", "step", "threshold")
    n = max(1, int(max_tokens))
    steps = list(range(n))
    ax.plot(steps, [threshold_at(kind, s, n, start, final, p1, p2, activation_point) for s in steps],
            color="#f59e0b", label=f"selection ({kind})")
    if attention is not None:
        a_kind, a_start, a_final = attention
        ax.plot(steps, [threshold_at(a_kind, s, n, a_start, a_final, p1, p2, activation_point) for s in steps],
                color="#7c3aed", label=f"attention ({a_kind})")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize=8)
    return fig
