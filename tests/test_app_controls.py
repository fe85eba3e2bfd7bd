"""The app's controls map 1:1 to request fields; spans and tables of a result (no server)."""
import gradio as gr

from tempo.ui import controls
from tempo.ui.render import PRUNED, REMOVED_LABEL, SET, candidates_table, highlighted_spans, struck
from tempo.request import GenerationRequest, build_request
from tempo.result import Candidate, GenerationResult, ModelInfo, Step, Timing


def test_every_request_field_has_one_control_named_after_it():
    placed = [n for names in controls.grouped_fields().values() for n in names] + list(controls.MAIN)
    expected = [n for n in GenerationRequest.field_names() if n not in controls.NOT_CONTROLS]
    assert sorted(placed) == sorted(expected) and len(placed) == len(set(placed))
    defaults = build_request("-").to_dict()
    with gr.Blocks():
        for name in expected:
            component = controls.control(name, defaults[name])
            assert component.elem_id == f"ctl-{name}"
            assert component.value == defaults[name] or str(component.value) == str(defaults[name])


def test_slider_floats_become_ints_for_int_fields():
    assert controls.to_overrides(["max_tokens", "selection_threshold"], (12.0, 0.5)) == \
        {"max_tokens": 12, "selection_threshold": 0.5}


def result_with(steps):
    return GenerationResult(prompt="p", mode="tempo", text="", clean_text="", steps=steps, settings={},
                            timing=Timing(), model=ModelInfo("m", "cpu", "float32"))


def test_spans_colour_sets_strike_pruned_and_mark_removed():
    steps = [
        Step(0, 1, 0.1, candidates=[Candidate(1, " the", 0.9)]),
        Step(1, 2, 0.1, candidates=[Candidate(2, " cat", 0.5), Candidate(3, " dog", 0.3)]),
        Step(2, 3, 0.1, candidates=[Candidate(4, " sat", 0.6), Candidate(5, " ran", 0.2, status="pruned",
                                                                                pruned_at_step=3, attention=0.01)]),
        Step(3, 4, 0.1, candidates=[Candidate(6, " on", 0.4, status="removed")]),
    ]
    spans = highlighted_spans("p", steps)
    assert spans == [("p the", None), (" [cat/dog]", SET), (f" [sat/{struck('ran')}]", PRUNED),
                     (struck(" on"), REMOVED_LABEL)]
    table = candidates_table(result_with(steps))
    assert len(table) == 6 and list(table["status"]) == ["kept", "kept", "kept", "kept", "pruned", "removed"]
    assert table.loc[4, "attention"] == 0.01 and table.loc[4, "pruned_at_step"] == 3
