"""The Gradio Blocks app: ``create_demo(scheduler, settings) -> gr.Blocks``.

Handlers are thin: build a ``GenerationRequest`` from the controls, submit it to
the scheduler, stream its steps into the outputs. Every control is named after
the request field it sets (``tempo.ui.controls``). The named API endpoints for
``gradio_client`` live in ``tempo.serve.endpoints``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import gradio as gr

from tempo.models import info as model_info
from tempo.serve import endpoints
from tempo.ui import controls, explore, model_picker
from tempo.ui.downloads import ResultFolders
from tempo.request import FIELDS, MODES
from tempo.ui.plots import result_figures, schedule_figure
from tempo.ui.render import SPAN_COLOURS, candidates_table, highlighted_spans, streamed_texts, summary
from tempo.result import GenerationResult
from tempo.serve.jobs import ENDS, Job, JobQueue
from tempo.serve.switch import ModelSwitcher

COMPARE = "compare"
DEFAULT_EXAMPLES = [
    "def read_config(path):",
    "import os\n\n\ndef list_files(folder):",
    "class Stack:\n    def __init__(self):",
    "for i in range(10):",
]
CSS = """
#spans { white-space: pre-wrap; }
#status { min-height: 1.5em; }
"""
THEME = gr.themes.Soft(primary_hue="sky", neutral_hue="slate")


def mode_choices() -> list[str]:
    """The engine's modes, then "compare" (all of them side by side) when there are two or more."""
    return list(MODES) + ([COMPARE] if len(MODES) > 1 else [])


def status_line(job: Job, started: float) -> str:
    position = job.queue_position
    if position is not None:
        return f"⏳ queued — position **{position + 1}** (requests ahead: {position})"
    return (f"▶ step **{len(job.steps)}** / {job.request.max_tokens} · "
            f"{time.perf_counter() - started:.1f} s")


CURVE_FIELDS = ("selection_schedule", "selection_threshold", "selection_final_threshold", "bezier_p1", "bezier_p2",
                "relu_activation_point", "max_tokens", "use_retroactive_pruning", "dynamic_threshold", "use_relu",
                "attention_threshold", "final_threshold")
"""The controls the live schedule curve is drawn from."""


@dataclass
class Layout:
    """The components the handlers read and write; :func:`layout` builds them inside the Blocks."""

    prompt: gr.Textbox
    mode: gr.Radio
    generate_btn: gr.Button
    stop_btn: gr.Button
    fields: dict[str, gr.components.Component]
    schedule_plot: gr.Plot | None
    status: gr.Markdown
    spans: gr.HighlightedText
    bracketed: gr.Textbox
    clean: gr.Textbox
    json_file: gr.DownloadButton
    csv_file: gr.DownloadButton
    plots: list[gr.Plot]
    table: gr.Dataframe
    raw: gr.JSON
    compare_out: dict[str, tuple[gr.HighlightedText, gr.Markdown]] = field(default_factory=dict)
    model_json: gr.JSON | None = None
    refresh: gr.Button | None = None
    picker: model_picker.Picker | None = None
    downloads: ResultFolders | None = None
    """Where the finished results' download files go (not a component: the handlers' one piece of state)."""

    @property
    def outputs(self) -> list[gr.components.Component]:
        compare = [c for pair in self.compare_out.values() for c in pair]
        return [self.spans, self.bracketed, self.clean, self.status, self.json_file, self.csv_file, *self.plots,
                self.table, self.raw, *compare]


def create_demo(scheduler: JobQueue, settings: Any = None, switcher: ModelSwitcher | None = None) -> gr.Blocks:
    """The Blocks app over ``scheduler`` (its engine's settings give the defaults): :func:`layout`, then the
    events (:func:`wire`), then the named ``gradio_client`` endpoints. ``switcher`` switches the model (the Model
    tab's picker; tempo/ui/model_picker.py), one of its own when not given."""
    engine = scheduler.engine
    settings = settings if settings is not None else engine.settings
    switcher = switcher or ModelSwitcher(scheduler, settings)
    api = endpoints.Endpoints(scheduler, settings)
    defaults = api.defaults()
    stream_every = settings.app.stream_interval

    age = settings.app.download_cache_age  # Gradio's copies of the downloads, as ResultFolders bounds ours
    with gr.Blocks(title="TEMPO — where the model hesitates", delete_cache=(age, age)) as demo:
        ui = layout(api, defaults, switcher)
        ui.downloads = ResultFolders(settings.app.max_result_folders)
        wire(demo, ui, scheduler, api, stream_every)
        wire_schedule_plot(demo, ui, defaults)
        endpoints.register(api, settings.app.generate_batch_max_size)
    return demo


def layout(api: endpoints.Endpoints, defaults: dict[str, Any], switcher: ModelSwitcher) -> Layout:
    """The page: the header (and the fallback banner), the controls' column (prompt, buttons, settings), the
    outputs' column (tabs)."""
    gr.Markdown("## TEMPO — where the model hesitates\n"
                "Every token above the threshold is kept: parallel sets show as "
                "<span style='background:#7dd3fc'>[a/b]</span>, pruned candidates "
                "<span style='background:#d1d5db'>s̶t̶r̶u̶c̶k̶</span>.")
    page_banner = model_picker.banner(switcher)
    with gr.Row():
        with gr.Column(scale=2, min_width=340):
            controls_part = control_column(defaults, api.max_tokens_limit)
        with gr.Column(scale=3):
            status = gr.Markdown("Ready.", elem_id="status")
            with gr.Tabs():
                ui = output_tabs(status, **controls_part)
                ui.compare_out = compare_tab()
                ui.current = explore.build(api, ui)  # the Explore tab: branches (and forks, layers) of the result
                ui.model_json, ui.refresh, ui.picker = model_tab(api, switcher, page_banner)
    return ui


def control_column(defaults: dict[str, Any], limit: int) -> dict[str, Any]:
    """The prompt, Generate / Stop, the main controls, the mode, then one accordion per group of settings
    (the schedule curve under "Dynamic thresholds")."""
    prompt = gr.Textbox(label=FIELDS["prompt"].label, value=DEFAULT_EXAMPLES[0], lines=4, elem_id="prompt")
    gr.Examples(list(DEFAULT_EXAMPLES), inputs=prompt)
    with gr.Row():
        generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
    fields = {n: controls.control(n, defaults[n], limit) for n in controls.MAIN if n in defaults}
    mode = gr.Radio(mode_choices(), value=defaults.get("mode", "tempo"), label=FIELDS["mode"].label,
                    elem_id="ctl-mode", info=FIELDS["mode"].info)
    schedule_plot = None
    for title, names in controls.grouped_fields().items():
        with gr.Accordion(title, open=False):
            for name in names:
                fields[name] = controls.control(name, defaults[name], limit)
            if title == "Dynamic thresholds":
                schedule_plot = gr.Plot(show_label=False, elem_id="schedule-plot")
    return {"prompt": prompt, "mode": mode, "generate_btn": generate_btn, "stop_btn": stop_btn, "fields": fields,
            "schedule_plot": schedule_plot}


def output_tabs(status: gr.Markdown, **control_part: Any) -> Layout:
    """The Output, Plots, Table and JSON tabs."""
    with gr.Tab("Output"):
        spans = gr.HighlightedText(label="Parallel tokens", combine_adjacent=False,
                                   show_legend=True, color_map=SPAN_COLOURS, elem_id="spans")
        bracketed = gr.Textbox(label="Bracketed text", buttons=["copy"], lines=3, elem_id="bracketed")
        clean = gr.Textbox(label="Clean text", buttons=["copy"], lines=3, elem_id="clean")
        with gr.Row():
            json_file = gr.DownloadButton("Download JSON", value=None, interactive=False)
            csv_file = gr.DownloadButton("Download CSV", value=None, interactive=False)
    with gr.Tab("Plots"):
        with gr.Row():  # set sizes beside entropy: the two views of where the model hesitated
            plots = [gr.Plot(show_label=False, elem_id="plot-set-sizes"),
                     gr.Plot(show_label=False, elem_id="plot-entropy")]
        plots += [gr.Plot(show_label=False) for _ in range(3)]
    with gr.Tab("Table"):
        table = gr.Dataframe(label="Candidates (one row per candidate)", wrap=True)
    with gr.Tab("JSON"):
        raw = gr.JSON(label="Result")
    return Layout(status=status, spans=spans, bracketed=bracketed, clean=clean, json_file=json_file,
                  csv_file=csv_file, plots=plots, table=table, raw=raw, **control_part)


def compare_tab() -> dict[str, tuple[gr.HighlightedText, gr.Markdown]]:
    """Two variants a row: each one's spans and its one-line summary."""
    with gr.Tab("Compare"):
        gr.Markdown("Choose mode **compare** and Generate: every variant runs on the prompt in the same batch.")
        compare_out = {}
        variants = list(endpoints.compare_variants())
        for row_start in range(0, len(variants), 2):
            with gr.Row(equal_height=False):
                for m in variants[row_start:row_start + 2]:
                    with gr.Column():
                        compare_out[m] = (
                            gr.HighlightedText(label=m, color_map=SPAN_COLOURS, show_inline_category=False,
                                               elem_id=f"compare-{m}"),
                            gr.Markdown(),
                        )
    return compare_out


def model_tab(api: endpoints.Endpoints, switcher: ModelSwitcher, page_banner: gr.Markdown
              ) -> tuple[gr.JSON, gr.Button, model_picker.Picker]:
    """The switch picker; the model's layer types (when inspected), its info JSON and a Refresh button."""
    with gr.Tab("Model"):
        summary, table, info = model_views(api)
        views = [gr.Markdown(summary, visible=bool(summary), render=False, elem_id="model-summary"),
                 gr.Dataframe(table, headers=model_info.TABLE_COLUMNS, label="Layer types", wrap=True,
                              interactive=False, visible=bool(summary), render=False, elem_id="layer-types"),
                 gr.JSON(value=info, label="Model, inspection and queue", render=False)]

        def updates() -> tuple:  # after a switch: the new model's views (the table hidden when not inspected)
            summary, table, info = model_views(api)
            return (gr.Markdown(summary, visible=bool(summary)), gr.Dataframe(table, headers=model_info.TABLE_COLUMNS, visible=bool(summary)),
                    info)

        picker = model_picker.picker(switcher, page_banner, views, updates)
        for view in views:
            view.render()
        refresh = gr.Button("Refresh", size="sm")
    return views[-1], refresh, picker


def model_views(api: endpoints.Endpoints) -> tuple[str, list[list[Any]] | None, dict]:
    """The Model tab's views of the model served: the summary line and the layer table (empty when the model was
    not inspected), the info JSON."""
    inspection = api.inspection()
    if "layer_types" not in inspection:
        return "", None, api.model_info()
    return model_info.summary_line(inspection), model_info.layer_table(inspection), api.model_info()


def wire(demo: gr.Blocks, ui: Layout, scheduler: JobQueue, api: endpoints.Endpoints, stream_every: float) -> None:
    """Generate (button or Enter in the prompt), Stop (cancels both), Refresh of the model tab."""
    names = list(ui.fields)

    def run(prompt_text: str, mode_value: str, *values: Any) -> Iterator[dict]:
        yield from generate_updates(ui, scheduler, api, stream_every, prompt_text, mode_value,
                                    controls.to_overrides(names, values))

    inputs = [ui.prompt, ui.mode, *(ui.fields[n] for n in names)]
    event = ui.generate_btn.click(run, inputs, ui.outputs, api_name="ui_generate", api_visibility="private",
                                  show_progress="minimal")
    submitted = ui.prompt.submit(run, inputs, ui.outputs, api_name="ui_submit", api_visibility="private",
                                 show_progress="minimal")
    ui.stop_btn.click(lambda: "⏹ Stopped: the request left the batch.", None, ui.status, cancels=[event, submitted],
                      api_name="ui_stop", api_visibility="private")
    ui.refresh.click(api.model_info, None, ui.model_json, api_name="ui_model_info", api_visibility="private")
    demo.load(ui.picker.on_load, None, ui.picker.outputs, api_name="ui_model_state", api_visibility="private",
              show_progress="hidden")


def generate_updates(ui: Layout, scheduler: JobQueue, api: endpoints.Endpoints, stream_every: float,
                     prompt_text: str, mode_value: str, overrides: dict[str, Any]) -> Iterator[dict]:
    """Submit the request (every variant for compare), stream the lead's steps, then the final outputs.
    The jobs are cancelled on the way out, so Stop or a closed tab frees their batch rows."""
    if mode_value == COMPARE:
        variants = api.compare_requests(prompt_text, overrides)
    else:
        variants = {mode_value: api.build(prompt_text, {**overrides, "mode": mode_value})}
    jobs = scheduler.submit_many(list(variants.values()))
    lead = jobs[0]
    started = time.perf_counter()
    try:
        for update in lead.stream(timeout=api.timeout, every=stream_every):
            if update.state in ENDS:
                continue
            text, clean_text = streamed_texts(lead.request.prompt, lead.steps, marks=True)
            yield {ui.spans: highlighted_spans(lead.request.prompt, lead.steps), ui.bracketed: text,
                   ui.clean: clean_text, ui.status: status_line(lead, started)}
        results = {name: endpoints.wait(job, api.timeout) for name, job in zip(variants, jobs)}
    except TimeoutError as exc:
        raise gr.Error(str(exc)) from None
    finally:
        for job in jobs:
            job.cancel()
    result = next(iter(results.values()))
    yield final_outputs(ui, result, results if mode_value == COMPARE else {})


def final_outputs(ui: Layout, result: GenerationResult, others: dict[str, GenerationResult]) -> dict:
    """Every output for a finished result (and, for compare, each variant's spans and summary)."""
    json_path, csv_path = ui.downloads.save(result)
    text, clean_text = streamed_texts(result.prompt, result.steps, marks=True)  # result.text stays raw
    out = {
        ui.spans: highlighted_spans(result.prompt, result.steps), ui.bracketed: text, ui.clean: clean_text,
        ui.raw: result.to_dict(), ui.table: candidates_table(result),
        ui.json_file: gr.DownloadButton(value=json_path, interactive=True),
        ui.csv_file: gr.DownloadButton(value=csv_path, interactive=True),
        ui.status: (f"✔ {len(result.steps)} steps · stop: {result.stop_reason} · "
                    f"{result.timing.total_s:.2f} s · {result.timing.tokens_per_s:.1f} steps/s"),
    }
    out.update(zip(ui.plots, result_figures(result)))
    for m, r in others.items():
        out[ui.compare_out[m][0]] = highlighted_spans(r.prompt, r.steps)
        figures = summary(r)
        out[ui.compare_out[m][1]] = (f"{figures['steps']} steps · {figures['parallel_sets']} sets · mean set "
                                     f"{figures['mean_set_size']} · {figures['pruned']} pruned · "
                                     f"{figures['total_s']} s · stop: {figures['stop_reason']}")
    return out


def wire_schedule_plot(demo: gr.Blocks, ui: Layout, defaults: dict[str, Any]) -> None:
    """Redraw the schedule curve when one of its controls changes, and once on load."""
    if ui.schedule_plot is None:
        return
    curve = [n for n in CURVE_FIELDS if n in ui.fields]

    def draw(*values: Any):
        return schedule_figure_from({**defaults, **dict(zip(curve, values))})

    inputs = [ui.fields[n] for n in curve]
    for name in curve:
        ui.fields[name].change(draw, inputs, ui.schedule_plot, api_name=f"ui_curve_{name}", api_visibility="private",
                               show_progress="hidden", trigger_mode="always_last")
    demo.load(draw, inputs, ui.schedule_plot, api_name="ui_curve", api_visibility="private")


def schedule_figure_from(values: dict[str, Any]):
    """The live curve from the controls' values (the attention threshold's too when pruning is on)."""
    attention = None
    if values.get("use_retroactive_pruning"):
        kind = ("relu" if values.get("use_relu") else "bezier") if values.get("dynamic_threshold") else "constant"
        attention = (kind, float(values["attention_threshold"]), float(values["final_threshold"]))
    return schedule_figure(values["selection_schedule"], float(values["selection_threshold"]),
                           float(values["selection_final_threshold"]), float(values["bezier_p1"]),
                           float(values["bezier_p2"]), float(values["relu_activation_point"]),
                           int(values["max_tokens"]), attention)


