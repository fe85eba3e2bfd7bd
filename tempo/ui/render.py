"""Text views of a result: terminal colours, highlighted spans and a pandas table for the interface.

Inside a parallel set the views show whitespace as marks (↵ newline, → tab, ␣ a space at an end:
``tempo.engine.output.visible``), so a set stays on one line; the result JSON keeps the raw text."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tempo.engine.output import bracketed_text, clean_text, format_set, struck
from tempo.result import KEPT, GenerationResult, Step, pruned_by

if TYPE_CHECKING:
    import pandas as pd

SET_COLOUR = "\033[1;36m"
RESET = "\033[0m"


def terminal_text(result: GenerationResult, colour: bool) -> str:
    """The prompt and the bracketed continuation; parallel sets coloured when ``colour``."""
    parts = [result.prompt]
    for step in result.steps:
        kept = [c.text for c in step.kept]
        if not kept:
            continue
        shown = format_set(kept, marks=True)
        parts.append(f"{SET_COLOUR}{shown}{RESET}" if colour and len(kept) > 1 else shown)
    return "".join(parts)


# --- the interface's views: highlighted spans, a table, partial results while streaming -----------

SET, PRUNED, REMOVED_LABEL, UNATTENDED = "set", "pruned", "removed", "unattended"
SPAN_COLOURS = {SET: "#7dd3fc", PRUNED: "#d1d5db", REMOVED_LABEL: "#fca5a5", UNATTENDED: "#fde68a"}
"""Colours of ``gr.HighlightedText``'s labels: sets blue, pruned grey (and struck), removed red."""

def step_spans(step: Step) -> list[tuple[str, str | None]]:
    """One step as (text, label) pairs: a single kept token plain (its whitespace raw); a set ``[a/b]``
    labelled ``set``, its whitespace marked; pruned candidates struck inside the brackets (labelled
    ``pruned`` when pruning left one token); a removed position struck and labelled ``removed``; an
    unattended step labelled ``unattended``."""
    shown = [c for c in step.candidates if c.status in (KEPT, PRUNED)]
    kept = [c for c in shown if c.status == KEPT]
    if not kept:
        return [(struck(format_set([c.text for c in step.candidates], marks=True)), REMOVED_LABEL)]
    if len(shown) == 1:
        return [(shown[0].text, UNATTENDED if step.unattended else None)]
    pruned = [i for i, c in enumerate(shown) if c.status == PRUNED]
    label = UNATTENDED if step.unattended else (SET if len(kept) > 1 else PRUNED)
    return [(format_set([c.text for c in shown], marks=True, strike=pruned), label)]


def highlighted_spans(prompt: str, steps: list[Step]) -> list[tuple[str, str | None]]:
    """(text, label) pairs for ``gr.HighlightedText``: the prompt, then every step."""
    spans: list[tuple[str, str | None]] = [(prompt, None)]
    for step in steps:
        for text, label in step_spans(step):
            if label is None and spans[-1][1] is None:  # plain text runs as one span
                spans[-1] = (spans[-1][0] + text, None)
            else:
                spans.append((text, label))
    return spans


def streamed_texts(prompt: str, steps: list[Step], marks: bool = False) -> tuple[str, str]:
    """The bracketed and the clean text of the steps so far (``marks``: whitespace inside sets shown, for
    the UI's bracketed view; the clean text is always raw)."""
    return prompt + bracketed_text(steps, marks), prompt + clean_text(steps)


def candidates_table(result: GenerationResult) -> "pd.DataFrame":
    """One row per candidate: step, position, rank in its set, token, probability, fate (and what pruned it:
    a strategy or attention), coherence, thresholds, and its step's entropy and varentropy (nats; TEMPO_SPEC
    section 11)."""
    import pandas as pd

    rows = []
    for step in result.steps:
        for rank, c in enumerate(step.candidates):
            rows.append({
                "step": step.step, "position": step.position, "rank": rank, "token_id": c.token_id,
                "text": c.text, "probability": c.probability, "status": c.status,
                "pruned_at_step": c.pruned_at_step, "pruned_by": pruned_by(step, c), "attention": c.attention,
                "coherence": c.coherence,
                "set_size": len(step.candidates), "selection_threshold": step.selection_threshold,
                "attention_threshold": step.attention_threshold, "unattended": step.unattended,
                "entropy": step.entropy, "varentropy": step.varentropy,
            })
    columns = ["step", "position", "rank", "token_id", "text", "probability", "status", "pruned_at_step",
               "pruned_by", "attention", "coherence", "set_size", "selection_threshold", "attention_threshold",
               "unattended", "entropy", "varentropy"]
    return pd.DataFrame(rows, columns=columns)


def partial_result(request: Any, steps: list[Step]) -> dict[str, Any]:
    """What ``/generate`` streams while a request runs: the texts so far and the step count, light on
    purpose (the full ``steps`` come with the final result, whose ``stop_reason`` is never "running")."""
    text, clean = streamed_texts("", steps)
    return {"prompt": request.prompt, "mode": request.mode, "text": text, "clean_text": clean,
            "steps_done": len(steps), "max_tokens": request.max_tokens, "stop_reason": "running"}


def summary(result: GenerationResult) -> dict[str, Any]:
    """A few figures of a result: steps, sets, mean set size, pruned candidates, time."""
    sizes = [len(s.kept) for s in result.steps]
    return {
        "steps": len(result.steps),
        "parallel_sets": sum(1 for n in sizes if n > 1),
        "mean_set_size": round(sum(sizes) / len(sizes), 3) if sizes else 0.0,
        "pruned": sum(1 for s in result.steps for c in s.candidates if c.status == PRUNED),
        "stop_reason": result.stop_reason,
        "total_s": round(result.timing.total_s, 4),
    }
