"""Token texts and the bracketed ``text`` / ``clean_text`` of a result (TEMPO_SPEC section 8)."""
from __future__ import annotations

from typing import Any

from tempo.result import Step

CONTEXT_WINDOW = 4
"""Tokens of left context used to decode one token, so tokenizers that strip a
leading space from a lone token (SentencePiece) still show it."""


def token_text(tokenizer: Any, context: list[int], token_id: int) -> str:
    """The text ``token_id`` adds after ``context``."""
    prefix = context[-CONTEXT_WINDOW:]
    before = tokenizer.decode(prefix)
    after = tokenizer.decode(prefix + [token_id])
    if prefix and after.startswith(before):
        return after[len(before):]
    return tokenizer.decode([token_id])


def format_set(texts: list[str]) -> str:
    """``[a/b/c]``; a leading space shared by every alternative goes before the bracket."""
    if len(texts) == 1:
        return texts[0]
    if all(t.startswith(" ") for t in texts):
        return " [" + "/".join(t[1:] for t in texts) + "]"
    return "[" + "/".join(texts) + "]"


def bracketed_text(steps: list[Step]) -> str:
    """Each step's kept tokens in set order; steps with nothing kept are left out."""
    return "".join(format_set([c.text for c in step.kept]) for step in steps if step.kept)


def clean_text(steps: list[Step]) -> str:
    """The first kept token of each step: sets are ordered highest probability first (for MCTS: the
    appended, most visited child first), so this is the path the context continued with. Joined from
    the token texts, so ``prompt + clean_text`` reads like ``prompt + text``."""
    return "".join(step.kept[0].text for step in steps if step.kept)
