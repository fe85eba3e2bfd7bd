"""Whitespace inside parallel sets is shown as marks (↵ → ␣) in the UI's and the terminal's views, so a set
stays on one line; single tokens keep their whitespace, and the result JSON keeps the raw text."""
import pytest

from tempo.engine.output import bracketed_text, format_set, struck, visible
from tempo.request import build_request
from tempo.result import Candidate, GenerationResult, ModelInfo, Step, Timing
from tempo.ui.render import SET, highlighted_spans, partial_result, streamed_texts, terminal_text


@pytest.mark.parametrize("raw,shown", [
    ("\n", "↵"), ("\n\n", "↵↵"), ("\r\n", "↵"), ("\u2028", "↵"), (":\n    ", ":↵␣␣␣␣"),
    ("\t", "→"), ("\tx", "→x"),
    (" ", "␣"), ("   ", "␣␣␣"), (" Return", "␣Return"), ("end ", "end␣"), ("a b", "a b"), ("cat", "cat"),
])
def test_visible_marks_line_breaks_tabs_and_end_spaces(raw, shown):
    assert visible(raw) == shown


def test_format_set_marks_only_when_asked_and_only_sets():
    assert format_set(["\n", " Return"]) == "[\n/ Return]"  # the result's text: raw
    assert format_set(["\n", " Return"], marks=True) == "[↵/␣Return]"
    assert format_set([" cat", " dog"], marks=True) == " [cat/dog]"  # a shared space still goes in front
    assert format_set([" ", " cat"], marks=True) == "[␣/␣cat]"  # ... unless an alternative is that space alone
    assert format_set([" ", " cat"]) == " [/cat]"  # (the raw text is unchanged)
    assert format_set(["\n"], marks=True) == "\n"  # a single token is no set: raw
    assert format_set([" sat", " ran"], marks=True, strike=[1]) == f" [sat/{struck('ran')}]"
    assert format_set(["x", "\t"], marks=True, strike=[1]) == f"[x/{struck('→')}]"


def steps_with_a_newline_set():
    return [
        Step(0, 1, 0.1, candidates=[Candidate(1, ":", 0.9)]),
        Step(1, 2, 0.1, candidates=[Candidate(2, "\n", 0.5), Candidate(3, " Return", 0.3)]),
        Step(2, 3, 0.1, candidates=[Candidate(4, "\n    ", 0.9)]),
        Step(3, 4, 0.1, candidates=[Candidate(5, "x", 0.6), Candidate(6, "\t", 0.2, status="pruned",
                                                                         pruned_at_step=4)]),
    ]


def test_views_mark_sets_and_keep_single_tokens_raw():
    steps = steps_with_a_newline_set()
    spans = highlighted_spans("def f()", steps)
    assert spans[1] == ("[↵/␣Return]", SET) and "\n" not in spans[1][0]
    assert spans[2] == ("\n    ", None)  # a single token: its newline and indent, as the code reads
    assert spans[3][0] == f"[x/{struck('→')}]"
    text, clean = streamed_texts("def f()", steps, marks=True)
    assert text == "def f():[↵/␣Return]\n    x" and clean == "def f():\n\n    x"
    assert streamed_texts("def f()", steps)[0] == "def f():[\n/ Return]\n    x"  # unmarked unless asked


def test_the_result_json_keeps_the_raw_text():
    steps = steps_with_a_newline_set()
    result = GenerationResult(prompt="def f()", mode="tempo", text=bracketed_text(steps), clean_text="",
                              steps=steps, settings={}, timing=Timing(), model=ModelInfo("m", "cpu", "float32"))
    data = result.to_dict()
    assert data["text"] == ":[\n/ Return]\n    x" and data["steps"][1]["candidates"][0]["text"] == "\n"
    assert terminal_text(result, colour=False) == "def f():[↵/␣Return]\n    x"
    assert partial_result(build_request("p"), steps)["text"] == \
        ":[\n/ Return]\n    x"  # what /generate streams is JSON too: raw
