"""TEMPO_SPEC section 9 on tiny random Llama and Qwen2 models: greedy equivalence, isolation,
positions, batch independence, mixture, determinism."""
import pytest
import torch
from torch.testing import assert_close

from tempo.engine.batch import Batch
from helpers import alone, last_logits, same, tokens
from reference import hand_mask  # TEMPO_SPEC section 2 slot by slot, shared with the reference

PROMPTS = ["the cat sat on the", "a big red dog ran to the house and", "bird"]


@pytest.mark.parametrize("setting", [{"selection_threshold": 0.6}, {"max_parallel_tokens": 1},
                                     {"temperature": 0.0}])
@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_equivalence_with_hf_generate(engine, setting, penalty):
    model, tok = engine.loaded.model, engine.loaded.tokenizer
    for prompt in PROMPTS[:2]:
        result = engine.generate(prompt, max_tokens=24, repetition_penalty=penalty, **setting)
        assert all(len(step.candidates) == 1 for step in result.steps)
        ids = tok(prompt)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=24, repetition_penalty=penalty,
                                 eos_token_id=engine.eos_ids, pad_token_id=engine.pad_id)
        hf = out[0, len(ids):].tolist()
        if hf and hf[-1] in engine.eos_ids:
            hf = hf[:-1]
            assert result.stop_reason == "eos"
        assert [t[0] for t in tokens(result)] == hf


def test_isolation_each_candidate_row_equals_a_pass_with_it_alone(engine):
    tok = engine.loaded.tokenizer
    request = engine.request(PROMPTS[0], selection_threshold=0.05, max_tokens=5)
    batch = Batch(engine.adapter, tok, engine.eos_ids, engine.pad_id)
    batch.add([request])
    batch.step()  # selects step 0's set and runs the forward over it
    candidates = batch.rows[0].token_sets[0]
    assert len(candidates) >= 2, "the test needs a parallel set"
    prompt_ids = batch.rows[0].prompt_ids
    for i, token in enumerate(candidates):
        assert_close(batch.logits[0, i], last_logits(engine, prompt_ids + [token]), atol=1e-4, rtol=0)




@pytest.mark.parametrize("intraset", [False, True])
def test_cached_steps_equal_one_uncached_pass_over_the_layout(engine, intraset):
    """The step-by-step cache gives the rows of one full forward with the spec's mask written by hand."""
    tok, model = engine.loaded.tokenizer, engine.loaded.model
    request = engine.request(PROMPTS[1], selection_threshold=0.05, max_tokens=6, min_steps=6,
                             allow_intraset_token_visibility=intraset)
    batch = Batch(engine.adapter, tok, engine.eos_ids, engine.pad_id)
    batch.add([request])
    for _ in range(4):
        batch.step()
    row = batch.rows[0]
    assert max(len(s) for s in row.token_sets) >= 2
    ids = row.prompt_ids + [t for s in row.token_sets for t in s]
    mask, positions = hand_mask(len(row.prompt_ids), row.token_sets, intraset)
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids]), attention_mask=mask, position_ids=positions).logits[0].float()
    last = len(row.token_sets[-1])
    assert_close(batch.logits[0, :last], full[-last:], atol=1e-4, rtol=0)


def test_intraset_visibility_changes_the_rows(engine):
    rows = {}
    for intraset in (False, True):
        request = engine.request(PROMPTS[0], selection_threshold=0.05, allow_intraset_token_visibility=intraset)
        batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
        batch.add([request])
        batch.step()
        rows[intraset] = batch.logits[0, : len(batch.rows[0].token_sets[0])]
    assert rows[False].shape[0] >= 2
    # with visibility every candidate sees the whole set, so every row changes
    assert ((rows[False] - rows[True]).abs().amax(-1) > 1e-3).all()


def test_positions_every_token_of_step_s_sits_at_p_plus_s(engine, monkeypatch):
    seen = []
    original = engine.adapter.forward

    def recording(input_ids, position_ids, mask, cache, **options):
        seen.append(position_ids.clone())
        return original(input_ids, position_ids, mask, cache, **options)

    monkeypatch.setattr(engine.adapter, "forward", recording)
    results = engine.generate_batch(PROMPTS[:2], selection_threshold=0.05, max_tokens=6, min_steps=6)
    prompt_lengths = [r.settings["prompt_tokens"] for r in results]
    assert seen[0].shape[0] == 2
    for s, positions in enumerate(seen[1:]):
        for row, length in enumerate(prompt_lengths):
            assert positions[row].tolist() == [length + s] * positions.shape[1]
    for result, length in zip(results, prompt_lengths):
        assert [step.position for step in result.steps] == [length + s for s in range(len(result.steps))]
        assert any(len(step.candidates) > 1 for step in result.steps)


def test_batch_independence_different_lengths_and_settings(engine):
    requests = [
        engine.request(PROMPTS[0], selection_threshold=0.1, max_tokens=8),
        engine.request(PROMPTS[1], selection_threshold=0.2, max_tokens=12, repetition_penalty=1.2),
        engine.request(PROMPTS[2], selection_threshold=0.05, max_tokens=5, next_logits_mode="top",
                       allow_intraset_token_visibility=True),
        engine.request(PROMPTS[2], mode="default", temperature=0.9, seed=7, max_tokens=10),
    ]
    together = engine.run(requests)
    assert len({len(r.steps) for r in together}) > 1  # rows left the batch at different steps
    for request, batched in zip(requests, together):
        same(batched, alone(engine, request))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_mixture_after_a_two_candidate_step_by_hand(engine, temperature):
    threshold = 0.02
    result = engine.generate(PROMPTS[0], selection_threshold=threshold, max_parallel_tokens=2, max_tokens=2,
                             temperature=temperature, top_k=0, top_p=1.0)
    first, second = result.steps
    assert len(first.candidates) == 2
    prompt_ids = engine.loaded.tokenizer(PROMPTS[0])["input_ids"]
    (a, b) = first.candidates
    q_a = torch.softmax(last_logits(engine, prompt_ids + [a.token_id]) / temperature, -1)
    q_b = torch.softmax(last_logits(engine, prompt_ids + [b.token_id]) / temperature, -1)
    w_a = a.probability / (a.probability + b.probability)
    mixture = w_a * q_a + (1 - w_a) * q_b
    expected = mixture.argsort(descending=True)[:2]
    expected = [int(t) for t in expected if mixture[t] >= threshold] or [int(expected[0])]
    assert [c.token_id for c in second.candidates] == expected
    for c in second.candidates:
        assert c.probability == pytest.approx(float(mixture[c.token_id]), abs=1e-5)


@pytest.mark.parametrize("mode", ["top", "last"])
def test_top_and_last_modes_use_one_row(engine, mode):
    result = engine.generate(PROMPTS[0], selection_threshold=0.02, max_parallel_tokens=3, max_tokens=2,
                             temperature=1.0, top_k=0, top_p=1.0, next_logits_mode=mode)
    first, second = result.steps
    assert len(first.candidates) >= 2
    chosen = first.candidates[0] if mode == "top" else first.candidates[-1]
    prompt_ids = engine.loaded.tokenizer(PROMPTS[0])["input_ids"]
    q = torch.softmax(last_logits(engine, prompt_ids + [chosen.token_id]), -1)
    for c in second.candidates:
        assert c.probability == pytest.approx(float(q[c.token_id]), abs=1e-5)


def strip_timing(result):
    data = result.to_dict()
    data.pop("timing")
    return data


def test_determinism_same_request_same_result(engine):
    for settings in ({"selection_threshold": 0.1}, {"mode": "default", "temperature": 1.0, "seed": 11}):
        first = engine.generate(PROMPTS[1], max_tokens=12, **settings)
        again = engine.generate(PROMPTS[1], max_tokens=12, **settings)
        assert strip_timing(first) == strip_timing(again)


def test_default_mode_samples_with_the_seed(engine):
    runs = {seed: tokens(engine.generate(PROMPTS[0], mode="default", temperature=1.5, top_k=0, top_p=1.0,
                                          max_tokens=12, seed=seed)) for seed in range(4)}
    assert all(len(step) == 1 for run in runs.values() for step in run)
    assert len({str(run) for run in runs.values()}) > 1  # the seed matters
    greedy = tokens(engine.generate(PROMPTS[0], mode="default", temperature=0.0, max_tokens=12))
    assert greedy == tokens(engine.generate(PROMPTS[0], selection_threshold=0.6, max_tokens=12))


def test_filler_slots_skip_the_head_but_real_slots_do_not_change(engine):
    """Rows padded to the batch's largest set get no logits for filler slots; real slots match the full head."""
    requests = [engine.request(PROMPTS[0], selection_threshold=0.05, max_tokens=3),
                engine.request(PROMPTS[1], temperature=0.0, max_tokens=3)]
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    batch.add(requests)
    batch.step()
    sizes = [len(row.sets[-1].tokens) for row in batch.rows]
    assert sizes[1] == 1 and sizes[0] > 1
    assert (batch.logits[1, 1:] == 0).all()  # filler: no head computed
    for b, row in enumerate(batch.rows):
        for i, token in enumerate(row.sets[-1].tokens):
            assert_close(batch.logits[b, i], last_logits(engine, row.prompt_ids + [token]), atol=1e-4, rtol=0)
