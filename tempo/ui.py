"""The Gradio Blocks interface. ``create_demo(engine)`` builds it; handlers are thin functions over the engine."""
from __future__ import annotations

from typing import Any

import gradio as gr

from tempo.errors import RequestError
from tempo.generation import Tempo
from tempo.result import GenerationResult


def highlighted_spans(result: GenerationResult) -> list[tuple[str, str | None]]:
    """(text, label) pairs for ``gr.HighlightedText``: single tokens plain, parallel sets labelled."""
    spans: list[tuple[str, str | None]] = [(result.prompt, None)]
    for step in result.steps:
        kept = step.kept
        if len(kept) == 1:
            spans.append((kept[0].text, None))
        elif kept:
            spans.append(("[" + "/".join(c.text for c in kept) + "]", "parallel set"))
    return spans


def create_demo(engine: Tempo) -> gr.Blocks:
    generation = engine.settings.generation if engine.settings is not None else {}

    def run(prompt: str, threshold: float, max_tokens: int) -> tuple[Any, str, str]:
        try:
            result = engine.generate(prompt, selection_threshold=threshold, max_tokens=int(max_tokens))
        except RequestError as exc:
            raise gr.Error(str(exc)) from None
        return highlighted_spans(result), result.prompt + result.text, result.prompt + result.clean_text

    with gr.Blocks(title="TEMPO") as demo:
        gr.Markdown("# TEMPO — where the model hesitates")
        prompt = gr.Textbox(label="Prompt", value="def read_config(path):", lines=3)
        with gr.Row():
            threshold = gr.Slider(0.0, 1.0, value=generation.get("selection_threshold", 0.1), step=0.01,
                                  label="Selection threshold")
            max_tokens = gr.Slider(1, generation.get("max_tokens_limit", 1024),
                                   value=generation.get("max_tokens", 100), step=1, label="Max tokens")
        button = gr.Button("Generate", variant="primary")
        spans = gr.HighlightedText(label="Parallel tokens", combine_adjacent=False)
        bracketed = gr.Textbox(label="Bracketed text", buttons=["copy"])
        clean = gr.Textbox(label="Clean text", buttons=["copy"])
        button.click(run, [prompt, threshold, max_tokens], [spans, bracketed, clean], api_name="generate")
    return demo
