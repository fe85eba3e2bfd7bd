"""The Explore tab: branch the main result at any token and compare the roads (TEMPO_SPEC section 12).

Click a candidate in a text: a branch from that step with that token runs through the scheduler (batched with
everyone else's requests) and appears beside its parent, the two texts aligned at the step where they part
(the shared steps greyed, written alike in both). Branches can be branched again: the tree lists every node,
each with its text (clickable too) and a one-line summary; any node can be shown beside its parent or opened as
the main result (plots, table, downloads). The tree downloads as JSON and CSV.

``build(api, ui)`` adds the tab inside the app's Tabs and returns ``current``: the ``gr.State`` with the main
result's dict, set after each generation (and when a branch is opened as the main result). The tab holds three
sub-tabs: Branches (here), Forks (``tempo/ui/forks_view.py``) and Layer view (``tempo/ui/lens_view.py``), the
last two built from the same ``current``.
"""
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gradio as gr

from tempo.errors import RequestError
from tempo.serve.branch_api import run_branch
from tempo.ui import branch_tree as bt
from tempo.ui import forks_view, lens_view
from tempo.ui.render import SPAN_COLOURS

log = logging.getLogger(__name__)

COLOURS = {**SPAN_COLOURS, bt.SHARED: "#e5e7eb", bt.CHOSEN: "#fdba74"}
HELP = ("Click any token of a text below to **branch** there: the same prompt and settings, the earlier steps "
        "as they were, that token alone at its step, then the model goes on. The branch appears beside its "
        "parent, aligned where they part; click in it to branch again.")


def _text_view(label: str, elem_id: str) -> gr.HighlightedText:
    return gr.HighlightedText(label=label, combine_adjacent=False, show_legend=False, show_inline_category=False,
                              color_map=COLOURS, elem_id=elem_id)


@dataclass
class BranchView:
    """The Branches sub-tab's components; ``branch`` is its one action (set by :func:`_wire`)."""

    tree: gr.State
    shown: gr.State
    """``{"left": [node id, targets], "right": [node id, targets]}`` of the pair view."""
    status: gr.Markdown
    left_title: gr.Markdown
    left: gr.HighlightedText
    right_title: gr.Markdown
    right: gr.HighlightedText
    pick: gr.Dropdown
    open_btn: gr.Button
    step_in: gr.Number
    token_in: gr.Number
    go: gr.Button
    tree_json: gr.DownloadButton | None = None
    tree_csv: gr.DownloadButton | None = None
    branch: Callable[..., Iterator[dict]] | None = None

    @property
    def views(self) -> list:
        return [self.tree, self.shown, self.left_title, self.left, self.right_title, self.right, self.pick,
                self.tree_json, self.tree_csv]

    @property
    def outputs(self) -> list:
        return [*self.views, self.status]


def build(api: Any, ui: Any) -> gr.State:
    """The Explore tab (inside ``gr.Tabs``): Branches, Forks and Layer view; ``api``: the app's
    ``endpoints.Endpoints``, ``ui``: its Layout. Returns ``current``."""
    current = gr.State(None)
    with gr.Tab("Explore", elem_id="explore-tab"):
        with gr.Tabs():
            with gr.Tab("Branches", elem_id="explore-branches"):
                view = _branch_layout()
            with gr.Tab("Forks", elem_id="explore-forks"):
                forks_view.build(api, current)
            with gr.Tab("Layer view", elem_id="explore-layers"):
                lens_view.build(api, current)
    _wire(api, ui, view, current)
    return current


def _branch_layout() -> BranchView:
    gr.Markdown(HELP)
    status = gr.Markdown("Generate a result first: it becomes the root of the tree.", elem_id="explore-status")
    with gr.Row(equal_height=False):
        with gr.Column():
            left_title = gr.Markdown(elem_id="explore-parent-title")
            left = _text_view("Parent", "explore-parent")
        with gr.Column():
            right_title = gr.Markdown(elem_id="explore-branch-title")
            right = _text_view("Branch", "explore-branch")
    with gr.Row():
        pick = gr.Dropdown(label="Show beside its parent", choices=[], elem_id="explore-pick", scale=3)
        open_btn = gr.Button("Open as the main result", elem_id="explore-open", scale=1)
    with gr.Accordion("Branch with any token", open=False):
        with gr.Row():
            step_in = gr.Number(label="Step", precision=0, value=0, elem_id="explore-step")
            token_in = gr.Number(label="Token id", precision=0, value=0, elem_id="explore-token")
            go = gr.Button("Branch the shown branch", elem_id="explore-go")
    view = BranchView(gr.State(None), gr.State(None), status, left_title, left, right_title, right, pick, open_btn,
                      step_in, token_in, go)
    gr.Markdown("#### The tree")

    @gr.render(inputs=view.tree)
    def tree_nodes(tree_value: dict | None) -> None:
        for n, depth in bt.in_order(tree_value) if tree_value else []:
            _node_row(n, depth, view)

    with gr.Row():
        view.tree_json = gr.DownloadButton("Download tree JSON", value=None, interactive=False)
        view.tree_csv = gr.DownloadButton("Download tree CSV", value=None, interactive=False)
    return view


def _wire(api: Any, ui: Any, view: BranchView, current: gr.State) -> None:
    """The Branches events: a click in either text, the typed branch, the picker, Open, a new main result."""
    def branch(tree_value: dict | None, node_id: int, step: int, token_id: int) -> Iterator[dict]:
        yield {view.status: f"⏳ branching #{node_id} at step {step} with token {token_id}…"}
        try:
            parent = bt.node(tree_value, node_id)
            result = run_branch(api.scheduler, api.settings, parent["result"], step, token_id, None, api.timeout)
        except (RequestError, TimeoutError) as exc:
            raise gr.Error(str(exc)) from None
        child = bt.add_branch(tree_value, node_id, step, token_id, json.loads(result.to_json()))
        log.debug("explore: branch #%d of #%d at step %d with token %d", child, node_id, step, token_id)
        yield {**_views(ui, tree_value, view), view.status: f"✔ {bt.summary_line(bt.node(tree_value, child))}"}

    def clicked(side: str):
        def handler(tree_value, shown_value, evt: gr.SelectData) -> Iterator[dict]:
            node_id, targets = shown_value[side] if shown_value else (None, [])
            target = targets[evt.index] if 0 <= evt.index < len(targets) else None
            if target is None:
                yield {view.status: "Click a token (the prompt and the brackets are no road to take)."}
                return
            yield from branch(tree_value, node_id, *target)
        return handler

    def typed(tree_value, shown_value, step, token) -> Iterator[dict]:
        if not shown_value:
            raise gr.Error("Generate a result first.")
        yield from branch(tree_value, shown_value["right"][0], int(step), int(token))

    view.branch = branch
    private = {"api_visibility": "private"}
    view.left.select(clicked("left"), [view.tree, view.shown], view.outputs, api_name="ui_explore_left", **private)
    view.right.select(clicked("right"), [view.tree, view.shown], view.outputs, api_name="ui_explore_right", **private)
    view.go.click(typed, [view.tree, view.shown, view.step_in, view.token_in], view.outputs, api_name="ui_explore_go",
                  **private)
    view.pick.input(lambda t, choice: _views(ui, {**t, "selected": _picked(choice)} if t else None, view),
                    [view.tree, view.pick], view.views, api_name="ui_explore_pick", **private)
    view.open_btn.click(lambda t: _open(ui, t), view.tree, [*ui.outputs, view.status], api_name="ui_explore_open",
                        **private)
    ui.raw.change(lambda raw, t: _sync(ui, raw, t, view, current), [ui.raw, view.tree], [current, *view.views],
                  api_name="ui_explore_sync", **private)


def _node_row(n: dict, depth: int, view: BranchView) -> None:
    """One node of the tree: its summary, indented by depth, and its text (click a token to branch it)."""
    gr.Markdown(("&nbsp;" * 6 * depth) + ("↳ " if depth else "") + bt.summary_line(n),
                elem_classes=["explore-node-summary"])
    spans, targets = bt.clickable_spans(n["result"], chosen=n["step"])
    text = gr.HighlightedText(value=spans, show_label=False, combine_adjacent=False, show_legend=False,
                              show_inline_category=False, color_map=COLOURS, key=f"explore-node-{n['id']}",
                              elem_classes=["explore-node-text"])

    def handler(tree_value, evt: gr.SelectData) -> Iterator[dict]:
        target = targets[evt.index] if 0 <= evt.index < len(targets) else None
        if target is not None:
            yield from view.branch(tree_value, n["id"], *target)

    text.select(handler, view.tree, view.outputs, api_visibility="private")


def _picked(choice: Any) -> int:
    return int(str(choice).split(" ", 1)[0].lstrip("#"))


def _views(ui: Any, tree_value: dict | None, view: BranchView) -> dict:
    """Every view of the tree: the pair (the selected node beside its parent), the picker, the downloads."""
    tree, shown, left_title, left, right_title, right, pick, tree_json, tree_csv = view.views
    if not tree_value:
        return {tree: None, shown: None}
    parent, node, step = bt.pair(tree_value, tree_value["selected"])
    right_spans, right_targets = bt.clickable_spans(node["result"], shared=step, chosen=node["step"])
    if parent is None:
        left_spans, left_targets, left_head = [], [], "*The main result has no parent: click a token on the right.*"
        left_id = node["id"]
    else:
        left_spans, left_targets = bt.clickable_spans(parent["result"], shared=step, chosen=parent["step"])
        left_head, left_id = f"**Parent** {bt.summary_line(parent)}", parent["id"]
    choices = [f"#{n['id']} {'  ' * d}{bt.summary_line(n).split(' · ', 1)[1]}" for n, d in bt.in_order(tree_value)]
    chosen = next(c for c in choices if _picked(c) == node["id"])
    paths = ui.downloads.save_texts({"tempo_tree.json": bt.tree_json(tree_value), "tempo_tree.csv":
                                     bt.tree_csv(tree_value)}) if ui.downloads is not None else [None, None]
    return {
        tree: tree_value, shown: {"left": [left_id, left_targets], "right": [node["id"], right_targets]},
        left_title: left_head, left: left_spans,
        right_title: f"**{'Branch' if parent is not None else 'Main result'}** {bt.summary_line(node)}",
        right: right_spans, pick: gr.Dropdown(choices=choices, value=chosen),
        tree_json: gr.DownloadButton(value=paths[0], interactive=paths[0] is not None),
        tree_csv: gr.DownloadButton(value=paths[1], interactive=paths[1] is not None),
    }


def _sync(ui: Any, raw: dict | None, tree_value: dict | None, view: BranchView, current: gr.State) -> dict:
    """A new main result: a new tree rooted at it — unless it is a node of the tree (opened as the main
    result), which then stays, that node selected."""
    if not raw or "steps" not in raw:
        return {current: None}
    for n in (tree_value or {}).get("nodes", []):
        if n["result"] == raw:
            return {current: raw, **_views(ui, {**tree_value, "selected": n["id"]}, view)}
    return {current: raw, **_views(ui, bt.new_tree(raw), view)}


def _open(ui: Any, tree_value: dict | None) -> dict:
    """The shown branch as the main result: the Output, Plots, Table and JSON tabs and the downloads."""
    from tempo.ui.app import final_outputs  # the app builds this tab: imported when the button is pressed

    if not tree_value:
        raise gr.Error("Generate a result first.")
    node = bt.node(tree_value, tree_value["selected"])
    return final_outputs(ui, bt.as_result(node), {})
