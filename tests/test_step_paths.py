"""The step loop's shortcuts (issue 17) give what the general path gives: the greedy argmax, the one-sync
read-back and the adapter's own output head."""
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from tempo.engine import sampling
from tempo.engine.batch import _read_back

from helpers import tokens

PROMPT = "the cat sat on the"


def _settings(temperatures, penalties, need=5):
    rows = [SimpleNamespace(temperature=t, top_k=0, top_p=1.0, repetition_penalty=r)
            for t, r in zip(temperatures, penalties)]
    return sampling.RowSettings.of(rows, [need] * len(rows), "cpu")


@pytest.mark.parametrize("temperatures,penalties", [([1.0, 1.0], [1.0, 1.0]), ([0.7, 0.0], [1.3, 1.0])])
def test_greedy_is_the_top_of_distribution_bit_for_bit(temperatures, penalties):
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 300) * 4
    seen = torch.rand(2, 300) < 0.2
    settings = _settings(temperatures, penalties)
    early = [True, False]
    probs, ids, _ = sampling.greedy(logits, settings, early, [7, 9], seen)
    dist = sampling.distribution(logits, settings, early, [7, 9], seen,
                                 sampling.mode_weights(torch.ones(2, 1), torch.ones(2, 1, dtype=torch.bool),
                                                       ["mixture", "mixture"]))
    assert ids.tolist() == dist.sorted_ids[:, 0].tolist()
    assert probs.tolist() == dist.sorted_p[:, 0].tolist()  # the same float, not merely close
    assert ids[0] not in (7, 9)  # the EOS rule applies on the fast path too


def test_row_settings_flags_match_the_tensors():
    settings = _settings([0.0, 1.0], [1.0, 1.0], need=3)
    assert settings.tempered is False and settings.filtering is False and settings.widest == 3
    assert _settings([0.5, 1.0], [1.0, 1.0]).tempered is True


def test_read_back_is_exact():
    ids = torch.tensor([[151935, 0, 49151], [5, 6, 7]])
    probs = torch.tensor([[0.123456789, 1e-8, 0.5], [1.0, 0.0, 0.25]])
    entropies = torch.tensor([[1.2345678901234, 0.5], [0.0, 3.25]], dtype=torch.float64)
    sizes, got_ids, got_probs, got_entropies = _read_back(torch.tensor([2, 1]), ids, probs, entropies)
    assert sizes == [2, 1] and got_ids == ids.tolist() and got_probs == probs.tolist()
    assert got_entropies == [tuple(row) for row in entropies.tolist()]  # double precision kept


def test_adapter_head_for_several_slots_matches_the_library(engine):
    adapter = engine.adapter
    if not adapter.plain_head:
        pytest.skip("the adapter applies the head itself only for plain-head families")
    head = adapter.model.get_output_embeddings()
    hidden = torch.randn(3, adapter.model.config.hidden_size)
    with torch.no_grad():
        assert_close(adapter._head(hidden), head(hidden).float(), atol=1e-5, rtol=1e-5)
        assert torch.equal(adapter._head(hidden[:1]), head(hidden[:1]).float())  # one slot: the library's kernel


def test_greedy_path_and_general_path_choose_the_same_tokens(engine, monkeypatch):
    """Threshold 0.6 takes the argmax path; max_parallel_tokens 1 at threshold 0.5 does too; a threshold of
    exactly 0.5 with top-k takes the general path: all three are the same greedy run."""
    calls = []
    greedy = sampling.greedy
    monkeypatch.setattr(sampling, "greedy", lambda *a, **k: calls.append(1) or greedy(*a, **k))
    common = dict(max_tokens=10, min_steps=10, temperature=1.0)
    fast = engine.generate(PROMPT, selection_threshold=0.6, top_k=0, top_p=1.0, **common)
    capped = engine.generate(PROMPT, selection_threshold=0.5, max_parallel_tokens=1, top_k=0, top_p=1.0, **common)
    assert len(calls) == 20  # every step of both runs took the argmax path
    general = engine.generate(PROMPT, selection_threshold=0.5, top_k=1000, top_p=1.0, **common)
    assert len(calls) == 20
    assert tokens(fast) == tokens(capped) and all(len(s) == 1 for s in tokens(fast))
    assert [s[0] for s in tokens(general)] == [s[0] for s in tokens(fast)]
    assert [c.probability for s in fast.steps for c in s.candidates] == \
        [c.probability for s in capped.steps for c in s.candidates]
