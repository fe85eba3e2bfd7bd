"""Pure tests of the distribution and selection functions against Hugging Face's processors."""
import pytest
import torch
from torch.testing import assert_close
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper,
)

from tempo.engine import sampling


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.7), (10, 0.5), (3, 0.95)])
def test_top_k_top_p_match_hf_warpers(top_k, top_p):
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 3
    expected = logits.clone()
    if top_k:
        expected = TopKLogitsWarper(top_k)(None, expected)
    if top_p < 1.0:
        expected = TopPLogitsWarper(top_p)(None, expected)
    expected = torch.softmax(expected, -1)
    sorted_p, sorted_ids = sampling.top_k_top_p(torch.softmax(logits, -1), torch.tensor([top_k] * 3),
                                                torch.tensor([top_p] * 3), need=torch.tensor([5, 5, 5]))
    assert sorted_p.shape[1] >= 5 and (sorted_p[:, :-1] >= sorted_p[:, 1:]).all()
    assert_close(sorted_p, expected.gather(1, sorted_ids), atol=1e-6, rtol=0)
    # the returned prefix holds the whole filtered support, highest first
    assert_close(expected.topk(sorted_p.shape[1]).values, sorted_p, atol=1e-6, rtol=0)


def test_rows_with_different_filters_in_one_call():
    torch.manual_seed(2)
    p = torch.softmax(torch.randn(3, 40) * 2, -1)
    together, ids = sampling.top_k_top_p(p, torch.tensor([0, 4, 0]), torch.tensor([1.0, 0.9, 1.0]),
                                         need=torch.tensor([3, 3, 6]))
    for row, (k, top_p) in enumerate([(0, 1.0), (4, 0.9), (0, 1.0)]):
        alone, alone_ids = sampling.top_k_top_p(p[row:row + 1], torch.tensor([k]), torch.tensor([top_p]),
                                                need=torch.tensor([3]))
        width = min(alone.shape[1], together.shape[1])
        assert_close(together[row, :width], alone[0, :width])
        assert together[row, :6].sum() <= 1.0 + 1e-6
    assert together[0, :1].sum() < 1.0  # no filter: the prefix is not renormalised


def test_repetition_penalty_matches_hf():
    torch.manual_seed(1)
    logits = torch.randn(2, 1, 30)
    history = torch.tensor([[3, 5, 5, 7], [0, 29, 1, 1]])
    seen = torch.zeros(2, 30, dtype=torch.bool).scatter_(1, history, True)
    expected = RepetitionPenaltyLogitsProcessor(1.3)(history, logits[:, 0].clone())
    got = sampling.repetition_penalty(logits, seen, torch.tensor([1.3, 1.3]))[:, 0]
    assert_close(got, expected)


def test_mixture_weights_by_hand():
    rows = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.2, 0.8], [1.0, 0.0, 0.0]]])
    probs = torch.tensor([[0.6, 0.2, 0.2]])
    kept = torch.tensor([[True, True, False]])  # the third slot is filler
    mixture = sampling.combine(rows, sampling.mode_weights(probs, kept, ["mixture"]))
    assert_close(mixture, torch.tensor([[0.75 * 0.5, 0.75 * 0.5 + 0.25 * 0.2, 0.25 * 0.8]]))
    top = sampling.combine(rows, sampling.mode_weights(probs, kept, ["top"]))
    last = sampling.combine(rows, sampling.mode_weights(probs, kept, ["last"]))
    assert_close(top, rows[:, 0])
    assert_close(last, rows[:, 1])


def test_set_sizes_threshold_cap_and_fallback():
    sorted_p = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.4, 0.3, 0.2, 0.1], [0.5, 0.3, 0.2, 0.0]])
    sizes = sampling.set_sizes(sorted_p, threshold=torch.tensor([0.1, 0.45, 0.0]),
                               max_parallel=torch.tensor([5, 5, 5]), single=torch.tensor([False, False, False]))
    assert sizes.tolist() == [3, 1, 3]  # none passes 0.45: the argmax alone; filtered zeros never join
    capped = sampling.set_sizes(sorted_p, torch.tensor([0.1, 0.1, 0.1]), torch.tensor([2, 5, 1]),
                                torch.tensor([False, True, False]))
    assert capped.tolist() == [2, 1, 1]


def test_suppress_only_rows_asked():
    logits = torch.zeros(2, 1, 4)
    out = sampling.suppress_tokens(logits, [True, False], [2])
    assert out[0, 0, 2] == float("-inf") and out[1, 0, 2] == 0.0 and logits[0, 0, 2] == 0.0
