"""The layer view (issue 13): for a chosen step of the current result, a heatmap of layers x top tokens (the
probability as colour, the token as text) for each kept candidate of the step before, the exit layer marked,
and JSON / CSV downloads.

``build(api, current)`` adds the view to the Blocks being built; ``api`` is ``tempo.serve.endpoints.Endpoints``
(its ``lens``), ``current`` a ``gr.State`` holding the main result's dict or None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from matplotlib.figure import Figure

from tempo.engine.lens import MAX_TOP_K
from tempo.engine.output import visible
from tempo.ui import explore_files

TABLE_COLUMNS = ["context_token_id", "context_text", "exit_layer", "layer", "rank", "token_id", "text", "probability"]


def contexts_of(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Each context of the view (the kept candidates of the step before, or the prompt's end)."""
    if view["candidates"]:
        return view["candidates"]
    return [{"token_id": None, "text": "", "layers": view["layers"], "exit_layer": view["exit_layer"]}]


def lens_figure(view: dict[str, Any]) -> Figure:
    """One heatmap per context: rows are layers (1 at the bottom, the output layer on top), columns the top
    tokens by rank; each cell coloured by probability and labelled with its token; the exit layer's row boxed."""
    shown = contexts_of(view)
    layers = len(shown[0]["layers"])
    width = len(shown[0]["layers"][0]["top"])
    fig = Figure(figsize=(max(4.0, 1.1 * width) * len(shown), 1.0 + 0.42 * layers), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    image = None
    for ax, context in zip(axes, shown):
        probs = [[t["probability"] for t in layer["top"]] for layer in context["layers"]]
        image = ax.imshow(probs, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        for row, layer in enumerate(context["layers"]):
            for col, token in enumerate(layer["top"]):
                ax.text(col, row, visible(token["text"]) or "∅", ha="center", va="center", fontsize=7,
                        color="white" if token["probability"] < 0.6 else "black")
        exit_row = context["exit_layer"] - 1
        ax.add_patch(_box(exit_row, width))
        ax.set_yticks(range(layers), [f"{layer['layer']}{' ← exit' if layer['layer'] == context['exit_layer'] else ''}"
                                      for layer in context["layers"]], fontsize=7)
        ax.set_xticks(range(width), [f"#{i + 1}" for i in range(width)], fontsize=7)
        where = f"after {visible(context['text'])!r}" if context["token_id"] is not None else "the prompt's end"
        ax.set_title(f"{where}: exit layer {context['exit_layer']}", fontsize=9)
        ax.set_ylabel("layer")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="probability")
    return fig


def _box(row: int, width: int):
    from matplotlib.patches import Rectangle

    return Rectangle((-0.5, row - 0.5), width, 1, fill=False, edgecolor="#f97316", linewidth=2)


def lens_table(view: dict[str, Any]):
    """One row per (context, layer, rank)."""
    import pandas as pd

    rows = []
    for context in contexts_of(view):
        for layer in context["layers"]:
            for rank, token in enumerate(layer["top"]):
                rows.append({"context_token_id": context["token_id"], "context_text": context["text"],
                             "exit_layer": context["exit_layer"], "layer": layer["layer"], "rank": rank,
                             "token_id": token["token_id"], "text": token["text"],
                             "probability": round(token["probability"], 6)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def summary_line(view: dict[str, Any]) -> str:
    parts = []
    for context in contexts_of(view):
        final = context["layers"][-1]["top"][0]["text"]
        where = f"after `{visible(context['text'])}`" if context["token_id"] is not None else "at the prompt's end"
        parts.append(f"{where}: top token `{visible(final)}` from layer **{context['exit_layer']}** of "
                     f"{len(context['layers'])}")
    return "; ".join(parts)


@dataclass
class LensView:
    step: gr.Number
    top_k: gr.Slider
    button: gr.Button
    status: gr.Markdown
    heatmap: gr.Plot
    json_file: gr.DownloadButton
    csv_file: gr.DownloadButton


def build(api: Any, current: gr.State) -> LensView:
    """The view's components and its event: step and top-k in, heatmaps and downloads out."""
    with gr.Row():
        step = gr.Number(0, precision=0, minimum=0, label="Step (0: the prompt's end)", scale=1, elem_id="lens-step")
        top_k = gr.Slider(1, min(20, MAX_TOP_K), value=5, step=1, label="Top tokens per layer", scale=2,
                          elem_id="lens-top-k")
    button = gr.Button("Show the layers", variant="primary", elem_id="lens-button")
    status = gr.Markdown("Pick a step: each kept candidate of the step before is read at every layer.",
                         elem_id="lens-status")
    heatmap = gr.Plot(label="Layers x top tokens", elem_id="lens-heatmap")
    with gr.Row():
        json_file = gr.DownloadButton("Download layers JSON", value=None, interactive=False, elem_id="lens-json")
        csv_file = gr.DownloadButton("Download layers CSV", value=None, interactive=False, elem_id="lens-csv")
    view = LensView(step, top_k, button, status, heatmap, json_file, csv_file)

    def show(result: dict | None, s: float | None, k: float) -> dict:
        if not result:
            raise gr.Error("Generate a result first: the layer view reads a step of the current result.")
        lens = api.lens(None, result, None if s is None else int(s), int(k))
        json_path, csv_path = explore_files.save("tempo_layers", lens, lens_table(lens))
        return {status: summary_line(lens), heatmap: lens_figure(lens),
                json_file: gr.update(value=json_path, interactive=True),
                csv_file: gr.update(value=csv_path, interactive=True)}

    button.click(show, [current, step, top_k], [status, heatmap, json_file, csv_file], api_name="ui_lens",
                 api_visibility="private")
    return view
