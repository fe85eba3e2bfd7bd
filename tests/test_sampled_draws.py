"""Seeded draws (default mode, the tree search's rollouts) come from the whole filtered distribution, whatever
the batch (TEMPO_SPEC sections 3 and 7, invariants 5 and 8; issue 16)."""
import math

import pytest
import torch

from tempo.engine.mcts import MctsSearch
from helpers import last_logits, tokens

PROMPT = "a big red dog ran to the house and"
DRAWS = 300
UNFILTERED = dict(mode="default", temperature=1.0, top_k=0, top_p=1.0)


def within_four_sigma(outside: int, masses: list[float]) -> bool:
    """Is ``outside`` (draws that left the top tokens) within 4 sigma of its expectation, the draws being
    independent with ``masses`` (each draw's chance to leave them)?"""
    mean = sum(masses)
    sigma = math.sqrt(sum(m * (1 - m) for m in masses))
    return abs(outside - mean) <= 4 * sigma


@pytest.mark.parametrize("neighbour", [None, dict(mode="default", temperature=1.0, top_k=3, seed=5),
                                       dict(selection_threshold=0.05, top_k=10)])
def test_one_step_draws_leave_the_top_tokens_as_often_as_the_model_says(engine, neighbour):
    """``DRAWS`` seeded one-step draws (one row each, in one batch) outside the ``max_parallel_tokens``
    likeliest tokens as often as the model puts its mass there: with no row of the batch filtering, and
    beside a row that filters with top-k."""
    request = engine.request(PROMPT, max_tokens=1, min_steps=1, **UNFILTERED)  # min_steps: no EOS
    requests = [engine.request(PROMPT, max_tokens=1, min_steps=1, seed=seed, **UNFILTERED) for seed in range(DRAWS)]
    extra = [] if neighbour is None else [engine.request("bird", max_tokens=1, min_steps=1, **neighbour)]
    results = engine.run(requests + extra)[:DRAWS]
    logits = last_logits(engine, engine.loaded.tokenizer(PROMPT)["input_ids"])
    logits[engine.eos_ids] = float("-inf")
    top = set(logits.topk(request.max_parallel_tokens).indices.tolist())
    mass = float(1 - torch.softmax(logits, -1)[list(top)].sum())
    assert mass > 0.2  # the test has something to find
    drawn = [result.steps[0].candidates[0].token_id for result in results]
    outside = sum(token not in top for token in drawn)
    assert within_four_sigma(outside, [mass] * DRAWS), (outside, DRAWS * mass)


def test_a_top_k_row_draws_only_inside_its_top_k(engines):
    engine = engines["llama"]
    logits = last_logits(engine, engine.loaded.tokenizer(PROMPT)["input_ids"])
    logits[engine.eos_ids] = float("-inf")
    top = set(logits.topk(3).indices.tolist())
    requests = [engine.request(PROMPT, max_tokens=1, min_steps=1, seed=seed, **UNFILTERED | {"top_k": 3})
                for seed in range(60)]
    drawn = [result.steps[0].candidates[0].token_id for result in engine.run(requests)]
    assert set(drawn) <= top and len(set(drawn)) > 1


NEIGHBOURS = [
    [dict(mode="default", temperature=1.0, top_k=20, seed=3)],  # filters with top-k
    [dict(mode="default", temperature=0.7, top_k=0, top_p=0.8, seed=4)],  # filters with top-p alone
    [dict(selection_threshold=0.05, max_parallel_tokens=10, top_k=0, top_p=1.0)],  # needs more tokens, no filter
    [dict(mode="default", temperature=1.0, top_k=0, top_p=1.0, seed=9), dict(temperature=0.0)],
]


def test_the_same_seeded_request_gives_the_same_tokens_in_any_batch(engine):
    """Seeded rows, unfiltered and with top-k, alone and beside rows that filter (top-k, top-p) or not."""
    requests = [engine.request(PROMPT, max_tokens=8, min_steps=8, seed=seed, **UNFILTERED) for seed in range(3)]
    requests.append(engine.request("the cat", max_tokens=8, min_steps=8, seed=2, mode="default", temperature=1.2,
                                   top_k=6))
    alone = [tokens(engine.run([request])[0]) for request in requests]
    for neighbours in NEIGHBOURS:
        others = [engine.request(prompt, max_tokens=6, **fields)
                  for prompt, fields in zip(["bird", "the cat sat on the"], neighbours)]
        together = engine.run(others + requests)[len(others):]
        assert [tokens(result) for result in together] == alone, neighbours


def test_tree_search_rollouts_draw_from_the_whole_distribution(engine, monkeypatch):
    """Sampled rollouts leave the ``mcts_expand`` highest tokens as often as each distribution says."""
    draws = []
    original = MctsSearch._choose

    def spy(self, distribution):
        token, prob = original(self, distribution)
        probs, ids = distribution[0].flatten(), distribution[1].flatten()  # highest first
        expand = self.request.mcts_expand
        draws.append((token not in ids[:expand].tolist(), 1.0 - float(probs[:expand].sum())))
        return token, prob

    monkeypatch.setattr(MctsSearch, "_choose", spy)
    engine.generate(PROMPT, mode="mcts", max_tokens=3, min_steps=3, mcts_simulations=8, mcts_depth=3,
                    mcts_expand=2, temperature=1.0, top_k=0, top_p=1.0, seed=1)
    masses = [mass for _, mass in draws]
    assert len(draws) >= 30 and sum(masses) > 10  # the test has something to find
    outside = sum(left for left, _ in draws)
    assert within_four_sigma(outside, masses), (outside, sum(masses))
