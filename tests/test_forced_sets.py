"""The request field ``forced_sets`` (TEMPO_SPEC section 12: a branch's given sets): the first steps take the
given sets — every candidate, in order, each with its probability read from the step's distribution — and the
generation continues by the rules; checked against the full-recompute reference (tests/reference.py)."""
import pytest
import torch
from torch.testing import assert_close

import reference
from helpers import alone, last_logits, tokens
from tempo.errors import RequestError
from tempo.request import FIELDS, GenerationRequest, build_request

PROMPT = "the cat sat on the"


def check_against_reference(engine, request):
    result = alone(engine, request)
    ref = reference.generate(engine, engine.loaded.tokenizer(request.prompt)["input_ids"], request)
    assert tokens(result) == ref.token_sets
    assert result.stop_reason == ref.stop_reason
    for step, expected in zip(result.steps, ref.steps):
        assert_close([c.probability for c in step.candidates], expected.probs, atol=1e-5, rtol=0)
    return result, ref


@pytest.mark.parametrize("intraset", [False, True])
@pytest.mark.parametrize("filters", [{"top_k": 0, "top_p": 1.0}, {"top_k": 5, "top_p": 0.9}])
def test_given_sets_then_the_rules_equal_the_full_recompute_reference(engine, intraset, filters):
    free = engine.generate(PROMPT, selection_threshold=0.05, max_tokens=8, temperature=1.0, **filters)
    vocab = engine.adapter.vocab_size
    outside = next(t for t in range(4, vocab) if all(t not in ids for ids in tokens(free)[:3]))
    # step 0: two tokens in reverse order of probability; step 1: a token no threshold would pick (with top-k
    # it lies outside the filter: probability 0, so the mixture weighs it alone); step 2: two plain words
    forced = [list(reversed(tokens(free)[0][:2])) if len(tokens(free)[0]) > 1 else tokens(free)[0], [outside],
              [5, 9]]
    request = engine.request(PROMPT, selection_threshold=0.05, max_tokens=8, min_steps=8, temperature=1.0,
                             allow_intraset_token_visibility=intraset, forced_sets=forced, **filters)
    result, _ = check_against_reference(engine, request)
    assert tokens(result)[:3] == forced
    assert len(result.steps) == 8


def test_without_given_sets_the_reference_is_the_engine(engine):
    request = engine.request(PROMPT, selection_threshold=0.05, max_tokens=6, temperature=1.0, top_k=0, top_p=1.0)
    result, ref = check_against_reference(engine, request)
    assert any(len(ids) > 1 for ids in ref.token_sets), "the check needs parallel sets"


def test_the_parents_own_sets_reproduce_the_parent(engine):
    parent = engine.generate(PROMPT, selection_threshold=0.05, max_tokens=10, temperature=1.0)
    for s in (0, 3, 7):
        child = engine.generate(PROMPT, selection_threshold=0.05, max_tokens=10, temperature=1.0,
                                forced_sets=tokens(parent)[: s + 1])
        assert tokens(child) == tokens(parent) and child.text == parent.text


def test_a_sampled_default_row_draws_on_through_given_steps(engine):
    """Default mode sampled: a given step still draws (and drops) its token, so the parent's own tokens give
    the parent back, and a different token changes only what follows it."""
    settings = dict(mode="default", temperature=1.0, seed=11, max_tokens=12, top_k=0, top_p=1.0)
    parent = engine.generate(PROMPT, **settings)
    assert tokens(engine.generate(PROMPT, forced_sets=tokens(parent)[:4], **settings)) == tokens(parent)


def test_given_rows_share_a_batch_with_free_rows(engine):
    requests = [engine.request(PROMPT, selection_threshold=0.05, max_tokens=6, forced_sets=[[7], [8, 9]]),
                engine.request("a big red dog ran", selection_threshold=0.1, max_tokens=9),
                engine.request(PROMPT, selection_threshold=0.05, max_tokens=6, forced_sets=[[10]])]
    together = engine.run(requests)
    for request, batched in zip(requests, together):
        assert tokens(batched) == tokens(alone(engine, request))
    assert tokens(together[0])[:2] == [[7], [8, 9]] and tokens(together[2])[0] == [10]


def test_a_forced_eos_first_ends_the_generation(engine):
    result = engine.generate(PROMPT, max_tokens=6, forced_sets=[[7], [engine.eos_ids[0], 8]])
    assert tokens(result) == [[7]] and result.stop_reason == "eos"


def test_the_tree_search_takes_given_sets_then_searches_from_them(engine):
    """MCTS: the given steps run no search; the search after them is the search of a prompt that ends with
    the given tokens (temperature 0: rollouts are greedy, so nothing else differs)."""
    settings = dict(mode="mcts", temperature=0.0, mcts_simulations=4, mcts_depth=2, selection_threshold=0.3)
    forced = [[7, 8], [9]]
    result = engine.generate(PROMPT, max_tokens=5, forced_sets=forced, **settings)
    assert tokens(result)[:2] == forced and result.steps[0].candidates[0].visits is None
    words = " ".join([PROMPT] + [engine.loaded.tokenizer.decode([ids[0]]) for ids in forced])
    direct = engine.generate(words, max_tokens=3, **settings)
    assert tokens(result)[2:] == tokens(direct)
    unfiltered = engine.generate(PROMPT, max_tokens=1, forced_sets=forced, top_k=0, top_p=1.0, **settings)
    p = torch.softmax(last_logits(engine, engine.loaded.tokenizer(PROMPT)["input_ids"]), -1)
    assert_close([c.probability for c in unfiltered.steps[0].candidates], [float(p[7]), float(p[8])],
                 atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad, message", [
    ([[]], "non-empty"), ([[3, -1]], ">= 0"), ([[3, 3]], "repeat"), ([[True]], ">= 0"), (5, "list of token-id"),
    ([7], "non-empty token-id lists"), ([[1.5]], ">= 0"),
])
def test_bad_given_sets_name_the_field(bad, message):
    with pytest.raises(RequestError, match=message) as caught:
        build_request("p", forced_sets=bad)
    assert caught.value.field == "forced_sets"


def test_more_sets_than_the_step_limit_are_refused():
    with pytest.raises(RequestError, match="at most 3 sets"):
        FIELDS["forced_sets"].check([[1]] * 4, max_tokens_limit=3)


def test_a_token_past_the_vocabulary_is_refused_naming_it(engine):
    vocab = engine.adapter.vocab_size
    with pytest.raises(RequestError, match=rf"\[0, {vocab - 1}\].*got {vocab}") as caught:
        engine.check(engine.request(PROMPT, forced_sets=[[1], [vocab]]))
    assert caught.value.field == "forced_sets"


def test_json_lists_become_the_same_request():
    built = build_request("p", forced_sets=[[1, 2], [3]])
    assert built.forced_sets == ((1, 2), (3,)) and built == GenerationRequest(prompt="p", forced_sets=((1, 2), (3,)))
    hash(built)
