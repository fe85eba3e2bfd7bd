"""Entropy and varentropy of every step (TEMPO_SPEC section 11): of the distribution the set was selected from —
the candidates' rows after the EOS rule and repetition penalty, at temperature 1, combined by the
next_logits_mode weights, before top-k/top-p — against Hugging Face forwards (tests/reference.py) and by hand."""
import math

import pytest
import torch

import reference
from helpers import last_logits, tokens
from tempo.engine import sampling
from tempo.result import GenerationResult

PROMPT = "the cat sat on the"


@pytest.mark.parametrize("settings", [
    {"temperature": 1.0, "top_k": 0, "top_p": 1.0},
    {"temperature": 0.7, "top_k": 5, "top_p": 0.9, "repetition_penalty": 1.3, "min_steps": 3},
    {"temperature": 0.0},
    {"temperature": 1.2, "next_logits_mode": "top", "allow_intraset_token_visibility": True},
])
def test_every_step_equals_the_hugging_face_reference(engine, settings):
    request = engine.request(PROMPT, selection_threshold=0.05, max_tokens=8, **settings)
    result = engine.run([request])[0]
    ref = reference.generate(engine, engine.loaded.tokenizer(PROMPT)["input_ids"], request)
    assert tokens(result) == ref.token_sets
    for step, expected in zip(result.steps, ref.steps):
        assert step.entropy == pytest.approx(expected.entropy, abs=1e-4)
        assert step.varentropy == pytest.approx(expected.varentropy, abs=1e-4)
    if settings.get("temperature") != 0.0:
        assert any(len(ids) > 1 for ids in ref.token_sets), "the check needs parallel sets"


def by_hand(p):
    """-sum p log p and sum p (log p + H)^2 over a Python list."""
    h = -sum(x * math.log(x) for x in p if x > 0)
    return h, sum(x * (math.log(x) + h) ** 2 for x in p if x > 0)


def test_a_mixture_step_by_hand(engine):
    result = engine.generate(PROMPT, selection_threshold=0.02, max_parallel_tokens=2, max_tokens=2, temperature=0.6,
                             top_k=0, top_p=1.0)
    first, second = result.steps
    assert len(first.candidates) == 2
    prompt_ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    h0, v0 = by_hand(torch.softmax(last_logits(engine, prompt_ids).double(), -1).tolist())  # step 0: the prompt's row
    assert (first.entropy, first.varentropy) == (pytest.approx(h0, abs=1e-4), pytest.approx(v0, abs=1e-4))
    a, b = first.candidates
    q_a = torch.softmax(last_logits(engine, prompt_ids + [a.token_id]).double(), -1)  # temperature 1, not 0.6
    q_b = torch.softmax(last_logits(engine, prompt_ids + [b.token_id]).double(), -1)
    w_a = a.probability / (a.probability + b.probability)
    h1, v1 = by_hand((w_a * q_a + (1 - w_a) * q_b).tolist())
    assert (second.entropy, second.varentropy) == (pytest.approx(h1, abs=1e-4), pytest.approx(v1, abs=1e-4))


def test_the_pure_function_on_known_distributions():
    uniform = torch.full((1, 8), 1 / 8)
    two = torch.tensor([[0.75, 0.25, 0.0]])
    out = sampling.entropy(torch.cat([uniform[:, :3] * 0 + torch.tensor([[1.0, 0.0, 0.0]]), two]))
    assert out[0].tolist() == [0.0, 0.0]
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    v = 0.75 * (math.log(0.75) + h) ** 2 + 0.25 * (math.log(0.25) + h) ** 2
    assert out[1].tolist() == pytest.approx([h, v], abs=1e-12)
    assert sampling.entropy(uniform)[0].tolist() == pytest.approx([math.log(8), 0.0], abs=1e-12)


def test_the_tree_search_reports_its_roots_entropy(engine):
    result = engine.generate(PROMPT, mode="mcts", max_tokens=4, temperature=0.8, mcts_simulations=6, mcts_depth=2,
                             repetition_penalty=1.2, top_k=0, top_p=1.0)
    context = engine.loaded.tokenizer(PROMPT)["input_ids"]
    processor = reference.RepetitionPenaltyLogitsProcessor(1.2)
    for step in result.steps:
        row = processor(torch.tensor([context]), last_logits(engine, context)[None])[0]
        h, v = by_hand(torch.softmax(row.double(), -1).tolist())
        assert (step.entropy, step.varentropy) == (pytest.approx(h, abs=1e-4), pytest.approx(v, abs=1e-4))
        context = context + [step.candidates[0].token_id]


def test_default_mode_and_the_json_round_trip(engine):
    result = engine.generate(PROMPT, mode="default", temperature=1.0, seed=3, max_tokens=5)
    assert all(step.entropy is not None and step.entropy >= 0 and step.varentropy >= 0 for step in result.steps)
    again = GenerationResult.from_json(result.to_json())
    assert [s.entropy for s in again.steps] == [s.entropy for s in result.steps]
    assert "varentropy" in result.to_dict()["steps"][0]


def test_the_table_csv_and_plot_show_them(engine, tmp_path):
    from tempo.ui.plots import entropy_figure, result_figures
    from tempo.ui.render import candidates_table

    result = engine.generate(PROMPT, selection_threshold=0.05, max_tokens=6)
    table = candidates_table(result)
    for step in result.steps:
        rows = table[table.step == step.step]
        assert rows.entropy.tolist() == [step.entropy] * len(step.candidates)
        assert rows.varentropy.tolist() == [step.varentropy] * len(step.candidates)
    table.to_csv(tmp_path / "c.csv", index=False)
    assert (tmp_path / "c.csv").read_text().splitlines()[0].endswith(",entropy,varentropy")
    figure = entropy_figure(result)
    entropy_line, varentropy_line = figure.axes[0].get_lines()
    assert list(entropy_line.get_ydata()) == [s.entropy for s in result.steps]
    assert list(varentropy_line.get_ydata()) == [s.varentropy for s in result.steps]
    assert result_figures(result)[1].axes[0].get_title() == "Entropy and varentropy per step"  # beside set sizes
