"""The Find forks view (issue 13): on the current result, rollouts from every candidate of every set, then each
step's fork score as a bar chart aligned with the steps, the fork steps marked in the text, the outcomes per
candidate, and JSON / CSV downloads.

``build(api, current)`` adds the view to the Blocks being built (the Explore tab places it); ``api`` is
``tempo.serve.endpoints.Endpoints`` (its ``forks`` streams progress), ``current`` a ``gr.State`` holding the main
result's dict or None. The figure, spans and table are pure functions of the analysis JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr
from matplotlib.figure import Figure

from tempo.engine.output import format_set
from tempo.forks_request import FORKS_FIELDS
from tempo.ui import explore_files
from tempo.ui.render import step_spans

FORK, SET = "fork", "set"
COLOURS = {FORK: "#f97316", SET: "#7dd3fc"}
TABLE_COLUMNS = ["step", "score", "fork", "rank", "token_id", "text", "probability", "outcome", "count"]


def forks_figure(analysis: dict[str, Any]) -> Figure:
    """One bar per step of the result (0 where the step has no set), forks in orange, the threshold dashed;
    the x axis is the result's steps, labelled with their clean tokens."""
    steps = analysis["result"]["steps"]
    scores = {f["step"]: f for f in analysis["forks"]}
    threshold = analysis["options"]["fork_threshold"]
    fig = Figure(figsize=(max(6.0, 0.32 * len(steps)), 3.0), layout="constrained")
    ax = fig.add_subplot()
    x = [s["step"] for s in steps]
    heights = [scores[s]["score"] if s in scores else 0.0 for s in x]
    colours = [COLOURS[FORK] if s in scores and scores[s]["fork"] else COLOURS[SET] for s in x]
    ax.bar(x, heights, color=colours)
    ax.axhline(threshold, color="#6b7280", linestyle="--", linewidth=1, label=f"fork threshold {threshold:g}")
    ax.set_xticks(x, [_first_text(s) for s in steps], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, max(x, default=0) + 0.6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fork score")
    ax.set_title("Fork score per step (TV distance of outcomes)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _first_text(step: dict[str, Any]) -> str:
    kept = [c for c in step["candidates"] if c["status"] == "kept"]
    return (kept or step["candidates"])[0]["text"].strip() or "␣"


def fork_spans(analysis: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The result's text with each fork step labelled ``fork`` (its set shown ``[a/b]``), other sets ``set``."""
    from tempo.result import GenerationResult

    result = GenerationResult.from_dict(analysis["result"])
    forks = {f["step"] for f in analysis["forks"] if f["fork"]}
    spans: list[tuple[str, str | None]] = [(result.prompt, None)]
    for step in result.steps:
        for text, label in step_spans(step):
            if step.step in forks:
                text, label = format_set([c.text for c in step.candidates if c.status != "removed"], marks=True), FORK
            elif label is not None:
                label = SET
            if label is None and spans[-1][1] is None:
                spans[-1] = (spans[-1][0] + text, None)
            else:
                spans.append((text, label))
    return spans


def forks_table(analysis: dict[str, Any]):
    """One row per (step, candidate, outcome): the step's score and fork mark, the candidate, the outcome's count."""
    import pandas as pd

    rows = []
    for fork in analysis["forks"]:
        for rank, c in enumerate(fork["candidates"]):
            for outcome, count in sorted(c["outcomes"].items(), key=lambda item: -item[1]):
                rows.append({"step": fork["step"], "score": round(fork["score"], 4), "fork": fork["fork"],
                             "rank": rank, "token_id": c["token_id"], "text": c["text"],
                             "probability": round(c["probability"], 4), "outcome": outcome, "count": count})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def progress_line(update: dict[str, Any]) -> str:
    if update.get("stage") == "generating":
        return "Generating the result ..."
    return f"Rollouts: **{update['rollouts_done']} / {update['rollouts_total']}** done"


def summary_line(analysis: dict[str, Any]) -> str:
    forks = [f for f in analysis["forks"] if f["fork"]]
    rollouts = sum(sum(c["outcomes"].values()) for f in analysis["forks"] for c in f["candidates"])
    where = ", ".join(f"step {f['step']} ({f['score']:.2f})" for f in forks) or "none"
    return (f"{len(analysis['forks'])} steps with sets, {rollouts} continuations; "
            f"**{len(forks)} fork{'s' if len(forks) != 1 else ''}**: {where}")


@dataclass
class ForksView:
    pattern: gr.Textbox
    samples: gr.Number
    horizon: gr.Number
    button: gr.Button
    status: gr.Markdown
    chart: gr.Plot
    spans: gr.HighlightedText
    table: gr.Dataframe
    json_file: gr.DownloadButton
    csv_file: gr.DownloadButton


def build(api: Any, current: gr.State) -> ForksView:
    """The view's components and its Find forks event (progress while the rollouts run)."""
    specs = FORKS_FIELDS
    with gr.Row():
        pattern = gr.Textbox(label="Outcome regex (optional)", placeholder=r"e.g. answer is (\d+)", scale=3,
                             info=specs["outcome_pattern"].help, elem_id="forks-pattern")
        samples = gr.Number(specs["samples"].default, precision=0, minimum=1, maximum=specs["samples"].hi,
                            label=specs["samples"].label, scale=1, elem_id="forks-samples")
        horizon = gr.Number(specs["horizon"].default, precision=0, minimum=1,
                            maximum=api.settings.generation.max_fork_horizon, label=specs["horizon"].label, scale=1,
                            elem_id="forks-horizon")
    button = gr.Button("Find forks", variant="primary", elem_id="find-forks")
    status = gr.Markdown("Press Find forks to roll out every candidate of every set.", elem_id="forks-status")
    chart = gr.Plot(label="Fork score per step", elem_id="forks-chart")
    spans = gr.HighlightedText(label="Fork steps", combine_adjacent=False, show_legend=True, color_map=COLOURS,
                               elem_id="forks-spans")
    table = gr.Dataframe(label="Outcomes per candidate", wrap=True, elem_id="forks-table")
    with gr.Row():
        json_file = gr.DownloadButton("Download forks JSON", value=None, interactive=False, elem_id="forks-json")
        csv_file = gr.DownloadButton("Download forks CSV", value=None, interactive=False, elem_id="forks-csv")
    view = ForksView(pattern, samples, horizon, button, status, chart, spans, table, json_file, csv_file)

    def find(result: dict | None, regex: str, n: float, h: float) -> Iterator[dict]:
        if not result:
            raise gr.Error("Generate a result first: forks are found on the current result.")
        options = {"outcome_pattern": regex or "", "samples": _whole(n), "horizon": _whole(h)}
        for update in api.forks(None, None, options, result):
            if update.get("stop_reason") == "running":
                yield {status: progress_line(update)}
                continue
            json_path, csv_path = explore_files.save("tempo_forks", update, forks_table(update))
            yield {status: summary_line(update), chart: forks_figure(update), spans: fork_spans(update),
                   table: forks_table(update), json_file: gr.update(value=json_path, interactive=True),
                   csv_file: gr.update(value=csv_path, interactive=True)}

    button.click(find, [current, pattern, samples, horizon],
                 [status, chart, spans, table, json_file, csv_file], api_name="ui_forks",
                 api_visibility="private")
    return view


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value
