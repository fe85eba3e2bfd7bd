"""Forks on the tiny models (TEMPO_SPEC section 12): greedy rollouts checked against Hugging Face ``generate()``
and the score's 1 / 0 rule, sampled outcome counts that sum to ``samples`` and repeat with the seed, outcome
regexes, batching in chunks of ``app.max_batch_size``, and bad values named."""
import math
from collections import Counter

import pytest
import torch

from tempo.engine.forks import outcome, plan_rollouts
from tempo.errors import RequestError
from tempo.forks_request import build_forks

PROMPT = "the cat sat on the"


@pytest.fixture(scope="module")
def parent(engines):
    """A result with several parallel sets (temperature 1 and a low threshold make them)."""
    engine = engines["llama"]
    result = engine.generate(PROMPT, max_tokens=5, temperature=1.0, selection_threshold=0.06, min_steps=5,
                             max_parallel_tokens=3, top_k=0, top_p=1.0)
    assert sum(len(s.candidates) >= 2 for s in result.steps) >= 2
    return result


def hf_continuation(engine, ids: list[int], horizon: int) -> str:
    """The greedy continuation of ``ids`` by ``generate()``, as text (EOS ends it and is not shown)."""
    tok = engine.loaded.tokenizer
    with torch.no_grad():
        out = engine.loaded.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                           do_sample=False, max_new_tokens=horizon, eos_token_id=engine.eos_ids,
                                           pad_token_id=engine.pad_id)
    new = out[0, len(ids):].tolist()
    if any(t in engine.eos_ids for t in new):
        new = new[:min(new.index(t) for t in engine.eos_ids if t in new)]
    return tok.decode(ids + new)[len(tok.decode(ids)):]


def test_greedy_rollouts_equal_generate_and_score_one_or_zero(engines, parent):
    engine = engines["llama"]
    found = engine.forks(parent, samples=3, horizon=4, rollout_temperature=0.0)
    prompt_ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    assert [f.step for f in found.forks] == [s.step for s in parent.steps if len(s.candidates) >= 2]
    for fork in found.forks:
        path = [s.kept[0].token_id for s in parent.steps[:fork.step]]
        expected = [hf_continuation(engine, prompt_ids + path + [c.token_id], 4) for c in fork.candidates]
        assert [c.outcomes for c in fork.candidates] == [{text: 3} for text in expected]
        differ = [e != expected[0] for e in expected[1:]]
        weights = [c.probability for c in fork.candidates[1:]]
        if all(differ):
            assert fork.score == pytest.approx(1.0)
        elif not any(differ):
            assert fork.score == 0.0
        assert fork.score == pytest.approx(sum(w for w, d in zip(weights, differ) if d) / sum(weights))
        assert fork.fork == (fork.score >= 0.5)


def test_sampled_counts_sum_to_samples_and_repeat_with_the_seed(engines, parent):
    engine = engines["llama"]
    first = engine.forks(parent, samples=4, horizon=3, rollout_temperature=1.0).to_dict()
    for fork in first["forks"]:
        for candidate in fork["candidates"]:
            assert sum(candidate["outcomes"].values()) == 4
    assert engine.forks(parent, samples=4, horizon=3, rollout_temperature=1.0).to_dict()["forks"] == first["forks"]
    assert first["options"]["rollout_temperature"] == 1.0 and first["result"] == parent.to_dict()


def test_an_outcome_regex_groups_the_continuations(engines, parent):
    engine = engines["llama"]
    pattern = r"\b(the|a|and)\b"
    raw = engine.forks(parent, samples=3, horizon=4, rollout_temperature=1.0)
    grouped = engine.forks(parent, samples=3, horizon=4, rollout_temperature=1.0, outcome_pattern=pattern)
    import re

    compiled = re.compile(pattern)
    for raw_step, step in zip(raw.forks, grouped.forks):
        for raw_c, c in zip(raw_step.candidates, step.candidates):
            expected = Counter()
            for text, count in raw_c.outcomes.items():
                expected[outcome(text, compiled)] += count
            assert c.outcomes == dict(expected)


def test_rollouts_run_batched_in_chunks_of_max_batch_size(engines, parent, monkeypatch):
    from tempo.engine.runner import Tempo
    from tempo.settings.schema import Settings

    engine = Tempo(engines["llama"].loaded, Settings.defaults().replace({"app.max_batch_size": 4}))
    sizes = []
    run = Tempo.run

    def counting(self, requests, on_step=None):
        sizes.append(len(requests))
        return run(self, requests, on_step)

    monkeypatch.setattr(Tempo, "run", counting)
    progress = []
    engine.forks(parent, samples=2, horizon=2, rollout_temperature=1.0, progress=lambda d, t: progress.append((d, t)))
    total = sum(len(s.candidates) * 2 for s in parent.steps if len(s.candidates) >= 2)
    assert sum(sizes) == total and max(sizes) == 4 and len(sizes) == math.ceil(total / 4)
    assert progress[0] == (0, total) and progress[-1] == (total, total)


def test_the_rollout_requests(engines, parent):
    """Ordinary default-mode requests: the clean path and the candidate forced, min_steps 0, seeds seed + j."""
    plan = plan_rollouts(parent, build_forks(samples=2, horizon=5), None)
    step = next(s for s in parent.steps if len(s.candidates) >= 2)
    path = [[s.kept[0].token_id] for s in parent.steps[:step.step]]
    mine = [(r, q) for r, q in zip(plan.rollouts, plan.requests) if r.step == step.step]
    assert len(mine) == 2 * len(step.candidates)
    for spec, request in mine:
        assert [list(s) for s in request.forced_sets] == path + [[step.candidates[spec.candidate].token_id]]
        assert (request.mode, request.min_steps, request.max_tokens) == ("default", 0, step.step + 1 + 5)
        assert (request.temperature, request.seed) == (parent.settings["temperature"], parent.settings["seed"] + spec.sample)
    greedy = plan_rollouts(parent, build_forks(samples=8, rollout_temperature=0.0), None)
    assert all(r.copies == 8 and r.sample == 0 for r in greedy.rollouts)


def test_bad_values_name_the_field(engines, parent):
    engine = engines["llama"]
    for values, field in [({"samples": 0}, "samples"), ({"horizon": 65}, "horizon"),
                          ({"outcome_pattern": "a(b"}, "outcome_pattern")]:
        with pytest.raises(RequestError) as err:
            engine.forks(parent, **values)
        assert err.value.field == field


def test_a_rollout_past_max_tokens_limit_names_the_horizon(parent):
    from tempo.settings.schema import Settings

    settings = Settings.defaults().replace({"generation.max_tokens_limit": 6})
    with pytest.raises(RequestError) as err:
        plan_rollouts(parent, build_forks(horizon=5), settings)
    assert err.value.field == "horizon" and "max_tokens" in str(err.value)
