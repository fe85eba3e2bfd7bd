"""Branch (TEMPO_SPEC section 12): the parent's first s sets as given, the chosen token alone at s, then the
rules — against the full-recompute reference (tests/reference.py) with those sets given."""
import pytest

import reference
from helpers import tokens
from tempo.engine.prompt_cache import PromptCache
from tempo.engine.runner import Tempo
from tempo.errors import RequestError
from tempo.result import GenerationResult

PROMPT = "the cat sat on the"
SETTINGS = dict(selection_threshold=0.05, max_tokens=10, min_steps=10, temperature=1.0, top_k=0, top_p=1.0)


@pytest.mark.parametrize("intraset", [False, True])
def test_a_branch_keeps_the_parents_sets_then_follows_the_reference(engine, intraset):
    settings = {**SETTINGS, "allow_intraset_token_visibility": intraset}
    parent = engine.generate(PROMPT, **settings)
    s = next((i for i, step in enumerate(parent.steps) if i >= 2 and len(step.candidates) > 1), 3)
    token = next(t for t in range(4, engine.adapter.vocab_size) if t not in tokens(parent)[s])
    child = engine.branch(parent, s, token)
    assert tokens(child)[:s] == tokens(parent)[:s]
    assert tokens(child)[s] == [token]
    assert [c.probability for c in child.steps[s - 1].candidates] == pytest.approx(
        [c.probability for c in parent.steps[s - 1].candidates], abs=1e-5)
    assert any(len(ids) > 1 for ids in tokens(child)[:s]), "the check needs a given parallel set"
    request = engine.request(PROMPT, forced_sets=tokens(child)[: s + 1], **settings)
    ref = reference.generate(engine, engine.loaded.tokenizer(PROMPT)["input_ids"], request)
    assert tokens(child) == ref.token_sets
    assert tokens(child)[s + 1:] != tokens(parent)[s + 1:]  # the other road led elsewhere
    assert child.parent == {"prompt": PROMPT, "step": s, "token_id": token}
    assert child.settings["forced_sets"] == tokens(child)[: s + 1]


@pytest.mark.parametrize("settings", [{"temperature": 0.0}, {"mode": "default", "temperature": 0.0},
                                      {"mode": "mcts", "temperature": 0.0, "mcts_simulations": 4, "mcts_depth": 2}])
def test_branching_at_step_0_with_the_greedy_token_reproduces_the_parent(engine, settings):
    parent = engine.generate(PROMPT, max_tokens=8, **settings)
    child = engine.branch(parent, 0, parent.steps[0].candidates[0].token_id)
    if settings.get("mode") == "mcts":  # step 0 shows its visited children
        assert tokens(child)[0] == tokens(parent)[0][:1] and tokens(child)[1:] == tokens(parent)[1:]
    else:
        assert tokens(child) == tokens(parent) and child.text == parent.text
    assert child.stop_reason == parent.stop_reason


def test_a_branch_of_a_branch_and_overrides(engine):
    parent = engine.generate(PROMPT, **SETTINGS)
    child = engine.branch(parent.to_dict(), 2, 7, max_tokens=12, selection_threshold=0.2)  # the JSON works too
    assert len(child.steps) <= 12 and child.settings["selection_threshold"] == 0.2
    grandchild = engine.branch(child, 4, 9)
    assert tokens(grandchild)[:4] == tokens(child)[:4] and tokens(grandchild)[2] == [7]
    assert grandchild.parent["step"] == 4 and grandchild.settings["max_tokens"] == 12
    again = GenerationResult.from_json(grandchild.to_json())
    assert again.parent == grandchild.parent


def test_a_branch_after_the_parents_last_step(engine):
    parent = engine.generate(PROMPT, max_tokens=4, min_steps=4, temperature=0.0)
    child = engine.branch(parent, 4, 7, max_tokens=6)
    assert tokens(child)[:5] == tokens(parent) + [[7]]


@pytest.mark.parametrize("step, token_id, overrides, field, message", [
    (-1, 7, {}, "step", ">= 0"),
    ("2", 7, {}, "step", ">= 0"),
    (9, 7, {}, "step", r"\[0, 6\]"),
    (6, 7, {}, "step", "below max_tokens"),
    (1, -3, {}, "token_id", ">= 0"),
    (1, 10**6, {}, "token_id", "for this model"),
    (1, 7, {"forced_sets": [[1]]}, "forced_sets", "cannot be set"),
    (1, 7, {"temperature": -1.0}, "temperature", "must be in"),
])
def test_bad_branches_name_the_field(engine, step, token_id, overrides, field, message):
    parent = engine.generate(PROMPT, max_tokens=6, min_steps=6, temperature=0.0)
    with pytest.raises(RequestError, match=message) as caught:
        engine.branch(parent, step, token_id, **overrides)
    assert caught.value.field == field


def test_a_parent_that_is_no_result_is_refused(engine):
    with pytest.raises(RequestError, match="must be a result") as caught:
        engine.branch({"prompt": PROMPT}, 0, 7)
    assert caught.value.field == "parent"


def test_a_branch_reuses_the_prompt_cache(engine):
    cached = Tempo(engine.loaded)
    cached.prompt_cache = PromptCache(size=4)
    parent = cached.generate(PROMPT, **SETTINGS)
    before = cached.adapter.forward_calls
    cached.branch(parent, 3, 7, max_tokens=4)  # steps 0-3 given: a forward after each but the last, none for the prompt
    assert cached.adapter.forward_calls - before == 3
    assert cached.prompt_cache.stats()["hits"] == 1
