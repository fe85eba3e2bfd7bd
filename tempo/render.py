"""Text views of a result: terminal colours now; spans and tables for the interface build on these."""
from __future__ import annotations

from tempo.engine.output import format_set
from tempo.result import GenerationResult

SET_COLOUR = "\033[1;36m"
RESET = "\033[0m"


def terminal_text(result: GenerationResult, colour: bool) -> str:
    """The prompt and the bracketed continuation; parallel sets coloured when ``colour``."""
    parts = [result.prompt]
    for step in result.steps:
        kept = [c.text for c in step.kept]
        if not kept:
            continue
        shown = format_set(kept)
        parts.append(f"{SET_COLOUR}{shown}{RESET}" if colour and len(kept) > 1 else shown)
    return "".join(parts)
