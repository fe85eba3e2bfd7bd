"""TEMPO on tiny random models of many architectures (tests/helpers.py): greedy equivalence with
``model.generate`` (TEMPO_SPEC invariant 1), candidate isolation, sliding windows by position, tree search,
and the refusal of state-space hybrids."""

import pytest
import torch
from torch.testing import assert_close

from tempo.engine.batch import Batch
from tempo.errors import ModelLoadError
from helpers import REFUSED, SUPPORTED, WINDOW, last_logits, save_tiny, spy_distributions

pytestmark = pytest.mark.slow  # builds and runs a tiny model of every architecture

PROMPTS = ["the cat sat on the", "a big red dog ran to the house and the bird"]


@pytest.fixture(scope="module")
def arch_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("architectures")
    return {kind: save_tiny(root / kind, kind) for kind in SUPPORTED + REFUSED}


@pytest.fixture(scope="module")
def arch_engines(arch_dirs):
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    return {kind: Tempo(load_model(str(arch_dirs[kind]))) for kind in SUPPORTED}


def hf_greedy(engine, prompt, n, min_new=0):
    model, tok = engine.loaded.model, engine.loaded.tokenizer
    ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=n, min_new_tokens=min_new, eos_token_id=engine.eos_ids,
                             pad_token_id=engine.pad_id)
    hf = out[0, len(ids):].tolist()
    return hf[:-1] if hf and hf[-1] in engine.eos_ids else hf


@pytest.mark.parametrize("kind", SUPPORTED)
def test_greedy_equivalence_with_hf_generate(arch_engines, kind):
    """EOS is suppressed for the first 10 steps on both sides (``min_steps`` / ``min_new_tokens``), so every
    sequence runs well past the sliding window of mistral and qwen2_sliding (WINDOW = 6)."""
    engine = arch_engines[kind]
    for prompt in PROMPTS:
        result = engine.generate(prompt, max_tokens=14, temperature=0.0, min_steps=10)
        ours = [s.candidates[0].token_id for s in result.steps]
        assert ours == hf_greedy(engine, prompt, 14, min_new=10)
        assert len(ours) >= 10 > WINDOW


@pytest.mark.parametrize("kind", SUPPORTED)
def test_isolation_each_candidate_equals_a_pass_with_it_alone(arch_engines, kind):
    """A parallel set after a prompt longer than the window: every candidate's row is the library's own
    forward over the prompt and that candidate alone."""
    engine = arch_engines[kind]
    tok = engine.loaded.tokenizer
    for prompt in PROMPTS[::-1]:
        batch = Batch(engine.adapter, tok, engine.eos_ids, engine.pad_id)
        batch.add([engine.request(prompt, selection_threshold=0.02, max_tokens=5, min_steps=2)])
        batch.step()
        if batch.rows and len(batch.rows[0].token_sets[0]) >= 2:
            break
    else:
        pytest.fail("no parallel set for this model")
    row = batch.rows[0]
    for i, token in enumerate(row.token_sets[0]):
        assert_close(batch.logits[0, i], last_logits(engine, row.prompt_ids + [token]), atol=1e-4, rtol=0)


def window_hand_mask(n_prompt, sets, window):
    """TEMPO_SPEC section 2 (isolated candidates) with the sliding window by position: [1, 1, N, N]."""
    step_of = [-1] * n_prompt + [s for s, members in enumerate(sets) for _ in members]
    pos = list(range(n_prompt)) + [n_prompt + s for s, members in enumerate(sets) for _ in members]
    n = len(step_of)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(n):
            prompt_key = step_of[k] == -1 and (step_of[q] >= 0 or k <= q)
            earlier = 0 <= step_of[k] < step_of[q]
            allowed[q, k] = (prompt_key or earlier or k == q) and pos[q] - pos[k] < window
    return torch.where(allowed, 0.0, torch.finfo(torch.float32).min)[None, None], torch.tensor([pos])


def test_sliding_window_counts_a_set_as_one_position(arch_engines):
    """Mistral (every layer sliding): the cached, windowed steps equal one uncached pass over the layout with
    the window written by hand in position ids."""
    engine = arch_engines["mistral"]
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    batch.add([engine.request(PROMPTS[1], selection_threshold=0.05, max_tokens=8)])
    for _ in range(5):
        batch.step()
    row = batch.rows[0]
    assert sum(len(s) for s in row.token_sets) > len(row.token_sets)  # parallel sets: slots > positions
    ids = row.prompt_ids + [t for s in row.token_sets for t in s]
    mask, positions = window_hand_mask(len(row.prompt_ids), row.token_sets, WINDOW)
    with torch.no_grad():
        full = engine.loaded.model(input_ids=torch.tensor([ids]), attention_mask=mask,
                                   position_ids=positions).logits[0].float()
    last = len(row.token_sets[-1])
    assert_close(batch.logits[0, :last], full[-last:], atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["mistral", "deepseek_v2"])
def test_tree_search_distributions_match_a_plain_forward(arch_engines, kind, monkeypatch):
    """MCTS repeats, selects and crops the cache (sliding-window positions travel with it)."""
    engine = arch_engines[kind]
    seen = spy_distributions(monkeypatch)
    engine.generate(PROMPTS[1], mode="mcts", max_tokens=3, mcts_simulations=4, mcts_depth=2, mcts_batch=2,
                    temperature=1.0, seed=5)
    assert len(seen) > 4 and any(len(path) >= 2 for _, path, _ in seen)
    for context, path, logits in seen:
        assert_close(logits, last_logits(engine, context + path), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["mistral", "deepseek_v2"])
def test_batched_rows_of_different_lengths_and_set_sizes(arch_engines, kind):
    """Rows padded to each other's length and set size (filler slots skip the head) generate as alone."""
    engine = arch_engines[kind]
    requests = [engine.request(PROMPTS[0], selection_threshold=0.1, max_tokens=10),
                engine.request(PROMPTS[1], selection_threshold=0.2, max_tokens=12)]
    together = engine.run(requests)
    for request, batched in zip(requests, together):
        alone = engine.run([request])[0]
        assert [[c.token_id for c in s.candidates] for s in batched.steps] == \
               [[c.token_id for c in s.candidates] for s in alone.steps]


@pytest.mark.parametrize("kind", REFUSED)
def test_state_space_hybrids_are_refused_with_the_reason(arch_dirs, kind):
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    with pytest.raises(ModelLoadError) as info:
        Tempo(load_model(str(arch_dirs[kind])))
    message = str(info.value)
    assert "one after another" in message and "cannot be cropped or rolled back" in message
    assert "\n" not in message


def test_cli_refuses_a_state_space_hybrid_in_one_line(arch_dirs, capsys):
    from tempo.cli.main import main

    assert main(["generate", "--model", str(arch_dirs["bamba"]), "--prompt", "the cat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: TEMPO cannot run this model: bamba has mamba2 layers (0, 2)") and err.endswith("not isolated")


@pytest.mark.parametrize("kind", ["mistral", "deepseek_v2"])
def test_retroactive_pruning_reads_attention_on_windowed_and_latent_layers(arch_engines, kind):
    """Pruning's explicit attention (the sliding window's own mask; MLA's value dim != key dim) runs and prunes."""
    engine = arch_engines[kind]
    result = engine.generate(PROMPTS[1], selection_threshold=0.05, max_tokens=10, min_steps=10,
                             use_retroactive_pruning=True, attention_threshold=0.2)
    assert len(result.steps) == 10
    statuses = {c.status for s in result.steps for c in s.candidates}
    assert "kept" in statuses and statuses & {"pruned", "removed"}
