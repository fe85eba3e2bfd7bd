"""The Explore tab's tree of branches, as plain data (no Gradio): a parent and its children, each node a result.

The tree is a JSON-ready dict kept in a ``gr.State``: ``{"nodes": [node, ...], "selected": id}``, a node
``{"id", "parent" (id or None), "step", "token_id", "result" (the result's dict)}``; node 0 is the main result.
The views here: a node's text as clickable spans (one span per candidate, so a click names its step and
token), two texts aligned at the step where they part (the shared steps rendered identically in both),
a one-line summary, and the tree as JSON and as a CSV of its nodes.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from tempo.engine.output import format_set, struck, visible
from tempo.result import KEPT, PRUNED, GenerationResult

SHARED, CHOSEN = "shared", "branch token"
"""Span labels of the Explore views: the steps a branch shares with its parent, and the token it was given."""


def new_tree(result: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [{"id": 0, "parent": None, "step": None, "token_id": None, "result": result}], "selected": 0}


def node(tree: dict[str, Any], node_id: int) -> dict[str, Any]:
    return next(n for n in tree["nodes"] if n["id"] == node_id)


def add_branch(tree: dict[str, Any], parent_id: int, step: int, token_id: int, result: dict[str, Any]) -> int:
    """Add a child of ``parent_id`` (selected) and return its id; the tree is changed in place."""
    child_id = max(n["id"] for n in tree["nodes"]) + 1
    tree["nodes"].append({"id": child_id, "parent": parent_id, "step": step, "token_id": token_id, "result": result})
    tree["selected"] = child_id
    return child_id


def in_order(tree: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """Every node with its depth, parents before their children (depth-first, children by creation)."""
    children: dict[Any, list[dict[str, Any]]] = {}
    for n in tree["nodes"]:
        children.setdefault(n["parent"], []).append(n)
    out: list[tuple[dict[str, Any], int]] = []
    stack = [(n, 0) for n in reversed(children.get(None, []))]
    while stack:
        n, depth = stack.pop()
        out.append((n, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(n["id"], [])))
    return out


def clickable_spans(result: dict[str, Any], shared: int = 0, chosen: int | None = None
                    ) -> tuple[list[tuple[str, str | None]], list[list[int] | None]]:
    """``(spans, targets)`` for ``gr.HighlightedText``: the prompt, then each step's candidates as spans of
    their own, ``targets[i]`` the ``[step, token_id]`` that span ``i`` names (None for the prompt and the
    brackets). Steps before ``shared`` are labelled ``shared`` and written the same whatever their fates, so
    a parent and its branch show them alike; step ``chosen`` (the branch's token) is labelled as such."""
    spans: list[tuple[str, str | None]] = [(result["prompt"], None)]
    targets: list[list[int] | None] = [None]
    for step in result["steps"]:
        s = step["step"]
        if s < shared:
            cands = step["candidates"]
            text = cands[0]["text"] if len(cands) == 1 else format_set([c["text"] for c in cands], marks=True)
            spans.append((text, SHARED))
            targets.append(None)
            continue
        shown = [c for c in step["candidates"] if c["status"] in (KEPT, PRUNED)]
        if not any(c["status"] == KEPT for c in shown):  # a removed step: struck, not a road to take
            spans.append((struck(format_set([c["text"] for c in step["candidates"]], marks=True)), "removed"))
            targets.append(None)
            continue
        label = CHOSEN if s == chosen else None
        if len(shown) == 1:
            spans.append((shown[0]["text"], label))
            targets.append([s, shown[0]["token_id"]])
            continue
        texts = [c["text"] for c in shown]
        shared_space = all(t.startswith(" ") for t in texts) and " " not in texts  # as format_set: before "["
        spans.append((" [" if shared_space else "[", None))
        targets.append(None)
        for i, c in enumerate(shown):
            if i:
                spans.append(("/", None))
                targets.append(None)
            text = visible(c["text"][1:] if shared_space else c["text"])
            spans.append((struck(text) if c["status"] == PRUNED else text, "pruned" if c["status"] == PRUNED else "set"))
            targets.append([s, c["token_id"]])
        spans.append(("]", None))
        targets.append(None)
    return spans, targets


def summary_line(n: dict[str, Any]) -> str:
    """``#2 · from #0 at step 3 with 'dog' · 12 steps · 3 sets · stop: eos``."""
    r = n["result"]
    steps = r["steps"]
    sets = sum(1 for s in steps if sum(c["status"] == KEPT for c in s["candidates"]) > 1)
    head = f"#{n['id']}"
    if n["parent"] is not None:
        token = next((c["text"] for s in steps if s["step"] == n["step"] for c in s["candidates"]), str(n["token_id"]))
        head += f" · from #{n['parent']} at step {n['step']} with {visible(token)!r}"
    else:
        head += " · the main result"
    return f"{head} · {len(steps)} steps · {sets} sets · stop: {r.get('stop_reason', '?')}"


def pair(tree: dict[str, Any], node_id: int) -> tuple[dict[str, Any] | None, dict[str, Any], int]:
    """The node's parent (None for the root), the node, and the step where they part."""
    n = node(tree, node_id)
    if n["parent"] is None:
        return None, n, 0
    return node(tree, n["parent"]), n, n["step"]


def tree_json(tree: dict[str, Any]) -> str:
    """The tree (every node's result whole) as JSON text."""
    return json.dumps({"nodes": tree["nodes"]}, ensure_ascii=False, indent=2)


CSV_COLUMNS = ("id", "parent", "step", "token_id", "prompt", "steps", "stop_reason", "text", "clean_text")


def tree_csv(tree: dict[str, Any]) -> str:
    """One row per node: where it branched, its length, how it stopped and its texts."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for n, _ in in_order(tree):
        r = n["result"]
        writer.writerow([n["id"], "" if n["parent"] is None else n["parent"], "" if n["step"] is None else n["step"],
                         "" if n["token_id"] is None else n["token_id"], r["prompt"], len(r["steps"]),
                         r.get("stop_reason", ""), r["text"], r["clean_text"]])
    return out.getvalue()


def as_result(n: dict[str, Any]) -> GenerationResult:
    return GenerationResult.from_dict(n["result"])
