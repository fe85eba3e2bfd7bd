"""The Explore tab's tree as data (tempo/ui/branch_tree.py): clickable spans name their step and token, a parent
and its branch show their shared steps alike, the tree's order, summary and downloads."""
import csv
import io
import json

from tempo.ui import branch_tree as bt

PROMPT = "the cat"


def result(steps, stop="max_tokens"):
    """A result dict with ``steps``: lists of (token_id, text, status)."""
    return {"prompt": PROMPT, "text": "", "clean_text": "", "stop_reason": stop, "steps": [
        {"step": s, "candidates": [{"token_id": t, "text": x, "status": st} for t, x, st in cands]}
        for s, cands in enumerate(steps)]}


PARENT = result([[(5, " sat", "kept")], [(6, " on", "kept"), (7, " by", "kept"), (8, " at", "pruned")],
                 [(9, " the", "kept")]])
CHILD = result([[(5, " sat", "kept")], [(7, " by", "kept")], [(10, " a", "kept")]])


def test_every_candidate_is_a_span_that_names_its_step_and_token():
    spans, targets = bt.clickable_spans(PARENT)
    assert len(spans) == len(targets)
    assert [t for t in targets if t] == [[0, 5], [1, 6], [1, 7], [1, 8], [2, 9]]
    assert "".join(text for text, _ in spans).startswith("the cat sat [on/by/")
    pruned = spans[targets.index([1, 8])]
    assert pruned[1] == "pruned" and "\u0336" in pruned[0]


def test_a_parent_and_its_branch_share_their_first_steps_alike():
    p_spans, p_targets = bt.clickable_spans(PARENT, shared=1)
    c_spans, c_targets = bt.clickable_spans(CHILD, shared=1, chosen=1)
    assert p_spans[:2] == c_spans[:2] == [(PROMPT, None), (" sat", bt.SHARED)]
    assert p_targets[:2] == c_targets[:2] == [None, None]
    assert c_spans[2] == (" by", bt.CHOSEN) and c_targets[2] == [1, 7]


def test_the_tree_in_order_summary_and_downloads():
    tree = bt.new_tree(PARENT)
    first = bt.add_branch(tree, 0, 1, 7, CHILD)
    second = bt.add_branch(tree, 0, 2, 11, CHILD)
    third = bt.add_branch(tree, first, 2, 10, CHILD)
    assert [(n["id"], d) for n, d in bt.in_order(tree)] == [(0, 0), (first, 1), (third, 2), (second, 1)]
    assert tree["selected"] == third
    parent, node, step = bt.pair(tree, third)
    assert parent["id"] == first and node["id"] == third and step == 2
    assert bt.summary_line(bt.node(tree, first)) == "#1 · from #0 at step 1 with '␣by' · 3 steps · 0 sets · stop: max_tokens"
    assert bt.summary_line(tree["nodes"][0]).startswith("#0 · the main result · 3 steps · 1 sets")
    rows = list(csv.DictReader(io.StringIO(bt.tree_csv(tree))))
    assert [r["id"] for r in rows] == ["0", "1", "3", "2"] and rows[1]["parent"] == "0" and rows[1]["token_id"] == "7"
    assert [n["parent"] for n in json.loads(bt.tree_json(tree))["nodes"]] == [None, 0, 0, 1]
