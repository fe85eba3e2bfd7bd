"""Monte Carlo tree search (TEMPO_SPEC section 7) on models whose distributions the test knows."""
import math

import pytest
import torch

from tempo.engine.mcts import MctsSearch, puct
from tempo.errors import RequestError
from tempo.engine.runner import Tempo
from tempo.models.loading import load_model
from helpers import last_logits, run_cli, spy_distributions

PROMPT = "the cat sat on the"
EXACT = dict(temperature=1.0, top_k=0, top_p=1.0, selection_threshold=0.0)


@pytest.fixture(scope="module")
def bigram(tiny_model_dir, tmp_path_factory):
    """A Llama whose attention and MLP outputs are zero: the next-token distribution depends on the
    current token alone, so the test can tabulate it."""
    loaded = load_model(str(tiny_model_dir["llama"]))
    with torch.no_grad():
        # the padding embedding starts at zero (a uniform row, all ties): give it a direction of its own
        embeddings = loaded.model.model.embed_tokens.weight
        embeddings[0] = torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(0))
        for layer in loaded.model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    engine = Tempo(loaded)
    vocab = loaded.model.config.vocab_size
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.arange(vocab)[:, None]).logits[:, 0]
    engine.table = torch.softmax(logits.float(), -1)  # [V, V]: p(next | current)
    return engine


def reference_search(table, last, sims, c_puct, expand, depth):
    """PUCT written out plainly over the known table (greedy rollouts, as at temperature 0, whose
    priors are the plain softmax): child visit counts."""
    def children(token):
        p, ids = table[token].sort(descending=True)
        return [{"token": int(ids[i]), "prior": float(p[i]), "n": 0, "w": 0.0, "kids": None} for i in range(expand)]

    root = {"n": 0, "kids": children(last)}
    for _ in range(sims):
        node, path = root, []
        while node["kids"] is not None:
            parent = node
            node = max(parent["kids"], key=lambda c: (
                (c["w"] / c["n"] if c["n"] else 0.0) + c_puct * c["prior"] * math.sqrt(parent["n"]) / (1 + c["n"]),
                c["prior"]))
            path.append(node)
        node["kids"] = children(node["token"])
        logps = [math.log(n["prior"]) for n in path]
        token = node["token"]
        for _ in range(depth):
            p, nxt = table[token].max(-1)
            logps.append(math.log(float(p)))
            token = int(nxt)
        value = sum(logps) / len(logps)
        root["n"] += 1
        for n in path:
            n["n"] += 1
            n["w"] += value
    return {c["token"]: c["n"] for c in root["kids"]}


@pytest.mark.parametrize("sims,c_puct,expand,depth", [(3, 1.0, 2, 0), (12, 1.0, 4, 0), (20, 2.5, 3, 2),
                                                      (15, 0.5, 5, 3)])
def test_visits_match_the_hand_calculation(bigram, sims, c_puct, expand, depth):
    request = bigram.request(PROMPT, mode="mcts", max_tokens=1, mcts_simulations=sims, mcts_c_puct=c_puct,
                             mcts_expand=expand, mcts_depth=depth, **{**EXACT, "temperature": 0.0})
    row = MctsSearch(bigram.adapter, bigram.loaded.tokenizer, [], bigram.pad_id, request).run()
    got = dict(zip(row.sets[0].tokens, row.sets[0].visits))
    last = row.prompt_ids[-1]
    expected = reference_search(bigram.table, last, sims, c_puct, expand, depth)
    assert got == {t: n for t, n in expected.items() if n > 0}
    assert row.sets[0].tokens[0] == max(expected, key=lambda t: (expected[t], bigram.table[last, t]))


def test_three_simulations_by_hand(bigram):
    """Two children a (prior pa) and b (pb < pa), c_puct 1, depth 0, written out step by step."""
    request = bigram.request(PROMPT, mode="mcts", max_tokens=1, mcts_simulations=3, mcts_expand=2, mcts_depth=0,
                             **EXACT)
    search = MctsSearch(bigram.adapter, bigram.loaded.tokenizer, [], bigram.pad_id, request)
    row = search.run()
    p, ids = bigram.table[row.prompt_ids[-1]].sort(descending=True)
    pa, pb = float(p[0]), float(p[1])
    # sim 1: N = 0, both scores 0 -> the higher prior, a. Q(a) = log pa.
    # sim 2: a scores log pa + pa * 1 / 2, b scores 0 + pb * 1 / 1.
    second = "a" if math.log(pa) + pa / 2 > pb else "b"
    visits = {"a": 1, "b": 0}
    visits[second] += 1
    # sim 3 (N = 2) when b was visited: a scores log pa + pa*sqrt2/2, b scores log pb + pb*sqrt2/2.
    if second == "b":
        third = "a" if (math.log(pa) + pa * math.sqrt(2) / 2, pa) > (math.log(pb) + pb * math.sqrt(2) / 2, pb) else "b"
    else:
        third = "a" if math.log(pa) + pa * math.sqrt(2) / 3 > pb * math.sqrt(2) else "b"
    visits[third] += 1
    got = dict(zip(row.sets[0].tokens, row.sets[0].visits))
    assert got.get(int(ids[0]), 0) == visits["a"] and got.get(int(ids[1]), 0) == visits["b"]
    assert puct(type("N", (), {"q": -1.0, "prior": 0.5, "visits": 1})(), 4, 2.0) == pytest.approx(-1.0 + 2 * 0.5 * 2 / 2)


def test_one_simulation_depth_zero_is_greedy(engine):
    model, tok = engine.loaded.model, engine.loaded.tokenizer
    result = engine.generate(PROMPT, mode="mcts", max_tokens=12, mcts_simulations=1, mcts_depth=0, temperature=0.0)
    ids = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=12, eos_token_id=engine.eos_ids,
                             pad_token_id=engine.pad_id)
    hf = [t for t in out[0, len(ids):].tolist() if t not in engine.eos_ids]
    assert [s.candidates[0].token_id for s in result.steps] == hf


@pytest.mark.slow
def test_prompt_prefilled_once_and_forward_budget(engine, monkeypatch):
    calls = []
    original = engine.adapter.forward

    def counting(input_ids, position_ids, mask, cache, **options):
        calls.append((int(position_ids[0, 0]), input_ids.shape[1]))
        return original(input_ids, position_ids, mask, cache, **options)

    monkeypatch.setattr(engine.adapter, "forward", counting)
    sims, depth, steps = 6, 3, 5
    result = engine.generate(PROMPT, mode="mcts", max_tokens=steps, mcts_simulations=sims, mcts_depth=depth,
                             selection_threshold=0.1)
    prompt_tokens = result.settings["prompt_tokens"]
    assert [c for c in calls if c[0] == 0] == [(0, prompt_tokens)]  # the prompt once, never again
    assert all(start >= prompt_tokens for start, _ in calls[1:])
    assert len(calls) - 1 <= len(result.steps) * sims * (depth + 1)
    for step in result.steps:
        visits = [c.visits for c in step.candidates]
        assert visits[0] == max(visits) and all(v / sims >= 0.1 for v in visits)
        assert all(c.value is not None and c.value <= 0 for c in step.candidates)
    assert result.mode == "mcts" and result.clean_text == "".join(s.candidates[0].text for s in result.steps)


@pytest.mark.slow
def test_determinism_with_seed(engine):
    settings = dict(mode="mcts", max_tokens=6, temperature=1.2, mcts_simulations=8, mcts_depth=3)
    runs = [engine.generate(PROMPT, seed=seed, **settings) for seed in (1, 1, 2, 3, 4)]
    strip = [[(c.token_id, c.visits, c.value) for s in r.steps for c in s.candidates] for r in runs]
    assert strip[0] == strip[1]
    assert any(strip[0] != other for other in strip[2:])


@pytest.mark.parametrize("fields,field,allowed", [
    ({"mcts_simulations": 0}, "mcts_simulations", "[1, 1000]"),
    ({"mcts_c_puct": -1.0}, "mcts_c_puct", "[0.0, 100.0]"),
    ({"mcts_depth": 33}, "mcts_depth", "[0, 32]"),
    ({"mcts_expand": 0}, "mcts_expand", "[1, 256]"),
])
def test_bad_mcts_values(engines, fields, field, allowed):
    with pytest.raises(RequestError) as info:
        engines["llama"].generate(PROMPT, mode="mcts", **fields)
    assert info.value.field == field and allowed in str(info.value)


def test_configured_depth_limit(monkeypatch):
    from tempo.settings.loader import load_settings
    from tempo.request import build_request

    monkeypatch.setenv("TEMPO_MCTS__MAX_DEPTH", "4")
    monkeypatch.setenv("TEMPO_MCTS__SIMULATIONS", "3")
    settings = load_settings()
    assert build_request("x", settings, mode="mcts", mcts_depth=4).mcts_simulations == 3
    with pytest.raises(RequestError, match=r"mcts_depth: must be an integer in \[0, 4\], got 5"):
        build_request("x", settings, mode="mcts")  # the default depth 5 is above this maximum


def test_compare_runs_every_mode(engine):
    results = engine.compare(PROMPT, max_tokens=6, selection_threshold=0.05, attention_threshold=0.2,
                             mcts_simulations=4, mcts_depth=1)
    assert list(results) == ["tempo", "tempo_pruning", "mcts", "default"]
    assert [r.mode for r in results.values()] == ["tempo", "tempo", "mcts", "default"]
    assert results["tempo_pruning"].settings["use_retroactive_pruning"] is True
    assert any(c.status == "pruned" for s in results["tempo_pruning"].steps for c in s.candidates)
    assert all(len(s.candidates) == 1 for s in results["default"].steps)
    greedy = engine.generate(PROMPT, max_tokens=6, temperature=0.0)
    assert results["default"].clean_text == greedy.clean_text
    assert results["tempo"].text == engine.generate(PROMPT, max_tokens=6, selection_threshold=0.05).text


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_use_mcts_and_compare(tiny_model_dir):
    import json

    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--json", "--use-mcts",
               "--max-tokens", "3", "--mcts-simulations", "4", "--mcts-c-puct", "2", "--mcts-depth", "1",
               "--mcts-expand", "3")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "mcts" and len(result["steps"]) == 3
    assert result["settings"] | {"mcts_simulations": 4, "mcts_c_puct": 2.0, "mcts_depth": 1,
                                 "mcts_expand": 3} == result["settings"]
    assert all(sum(c["visits"] for c in s["candidates"]) <= 4 for s in result["steps"])
    done = run_cli("compare", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--max-tokens", "3",
               "--mcts-simulations", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)) == ["tempo", "tempo_pruning", "mcts", "default"]
    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--use-mcts",
               "--mcts-simulations", "0")
    assert done.returncode == 2 and done.stderr.strip() == \
        "error: mcts_simulations: must be an integer in [1, 1000], got 0"


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_every_evaluated_distribution_matches_a_plain_forward(engine, batch, monkeypatch):
    """Waves evaluate right-padded paths and rollouts together: each row's logits must equal a plain
    forward over the context and that row's tokens alone."""
    seen = spy_distributions(monkeypatch)
    engine.generate(PROMPT, mode="mcts", max_tokens=3, mcts_simulations=8, mcts_depth=3, mcts_batch=batch,
                    temperature=1.0, seed=5)
    assert len(seen) > 8 and any(len(path) >= 2 for _, path, _ in seen)
    for context, path, logits in seen:
        torch.testing.assert_close(logits, last_logits(engine, context + path), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_waves_cut_forward_calls_and_stay_deterministic(engine, monkeypatch):
    calls = []
    original = engine.adapter.forward

    def counting(input_ids, position_ids, mask, cache, **options):
        calls.append(input_ids.shape)
        return original(input_ids, position_ids, mask, cache, **options)

    monkeypatch.setattr(engine.adapter, "forward", counting)
    settings = dict(mode="mcts", max_tokens=4, mcts_simulations=10, mcts_depth=3, temperature=1.0, seed=3)
    sequential = engine.generate(PROMPT, **settings)
    sequential_calls = len(calls)
    calls.clear()
    batched = engine.generate(PROMPT, mcts_batch=5, **settings)
    assert len(calls) < sequential_calls / 2 and max(shape[0] for shape in calls) == 5
    assert all(sum(c.visits for c in s.candidates) <= 10 for s in batched.steps)
    again = engine.generate(PROMPT, mcts_batch=5, **settings)
    assert [[(c.token_id, c.visits) for c in s.candidates] for s in batched.steps] == \
        [[(c.token_id, c.visits) for c in s.candidates] for s in again.steps]
    assert sequential.steps and batched.steps
