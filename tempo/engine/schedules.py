"""Threshold schedules over generation progress (TEMPO_SPEC section 5). Pure functions.

One implementation serves the selection threshold and the pruning attention
threshold: both call ``threshold_at``.
"""
from __future__ import annotations


def progress(step: int, max_steps: int) -> float:
    """``t = step / max(1, max_steps - 1)`` clipped to [0, 1]."""
    return min(1.0, max(0.0, step / max(1, max_steps - 1)))


def bezier(t: float, p1: float = 0.2, p2: float = 0.8) -> float:
    """Cubic Bezier with control values 0, p1, p2, 1."""
    u = 1.0 - t
    return 3 * u * u * t * p1 + 3 * u * t * t * p2 + t**3


def relu(t: float, activation_point: float = 0.5) -> float:
    """0 before the activation point, then linear to 1 at t = 1."""
    if t < activation_point:
        return 0.0
    return (t - activation_point) / (1.0 - activation_point)


def shape(kind: str, t: float, p1: float = 0.2, p2: float = 0.8, activation_point: float = 0.5) -> float:
    """The schedule's fraction of the way from start to final at progress t."""
    if kind == "constant":
        return 0.0
    if kind == "bezier":
        return bezier(t, p1, p2)
    if kind == "relu":
        return relu(t, activation_point)
    raise ValueError(f"schedule must be one of constant, bezier, relu, got {kind!r}")


def threshold_at(
    kind: str,
    step: int,
    max_steps: int,
    start: float,
    final: float,
    p1: float = 0.2,
    p2: float = 0.8,
    activation_point: float = 0.5,
) -> float:
    """The threshold of ``step``: ``start + (final - start) * shape(t)``."""
    return start + (final - start) * shape(kind, progress(step, max_steps), p1, p2, activation_point)
