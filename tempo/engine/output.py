"""Token texts and the bracketed ``text`` / ``clean_text`` of a result (TEMPO_SPEC section 8)."""
from __future__ import annotations

import re
from typing import Any, Collection

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


NEWLINE_MARK, TAB_MARK, SPACE_MARK = "\u21b5", "\u2192", "\u2423"  # ↵ → ␣
LINE_BREAKS = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # what str.splitlines splits on
STRIKE = "\u0336"


def visible(text: str) -> str:
    """One alternative of a set as it is shown (never in the result JSON): on one line, its whitespace
    seen. Line breaks become ↵ and tabs →, which would break or stretch the set; spaces at either end
    become ␣, which would vanish beside ``[``, ``/`` and ``]``; spaces between words stay."""
    text = LINE_BREAKS.sub(NEWLINE_MARK, text).replace("\t", TAB_MARK)
    body = text.strip(" ")
    if not body:
        return SPACE_MARK * len(text)
    lead, trail = len(text) - len(text.lstrip(" ")), len(text) - len(text.rstrip(" "))
    return SPACE_MARK * lead + body + SPACE_MARK * trail


def struck(text: str) -> str:
    """``text`` with a combining long stroke after each character: shown struck through anywhere."""
    return "".join(ch + STRIKE if not ch.isspace() else ch for ch in text)


def format_set(texts: list[str], marks: bool = False, strike: Collection[int] = ()) -> str:
    """``[a/b/c]``; a leading space shared by every alternative goes before the bracket. A single text
    is itself, raw. ``marks`` (the UI's and the terminal's view) shows each alternative :func:`visible`
    (the shared space is then kept in front only when no alternative is that space alone); the
    alternatives at the indices of ``strike`` are :func:`struck` (pruned)."""
    if len(texts) == 1:
        return texts[0]
    shared = all(t.startswith(" ") for t in texts) and not (marks and " " in texts)
    prefix, rest = (" ", [t[1:] for t in texts]) if shared else ("", list(texts))
    if marks:
        rest = [visible(t) for t in rest]
    rest = [struck(t) if i in strike else t for i, t in enumerate(rest)]
    return prefix + "[" + "/".join(rest) + "]"


def bracketed_text(steps: list[Step], marks: bool = False) -> str:
    """Each step's kept tokens in set order; steps with nothing kept are left out. The result's ``text``
    is raw; ``marks`` gives the view the UI and the terminal show (:func:`visible` inside sets)."""
    return "".join(format_set([c.text for c in step.kept], marks) for step in steps if step.kept)


def clean_text(steps: list[Step]) -> str:
    """The first kept token of each step: sets are ordered highest probability first (for MCTS: the
    appended, most visited child first), so this is the path the context continued with. Joined from
    the token texts, so ``prompt + clean_text`` reads like ``prompt + text``."""
    return "".join(step.kept[0].text for step in steps if step.kept)
