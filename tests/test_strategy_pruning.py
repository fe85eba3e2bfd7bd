"""Strategy pruning (TEMPO_SPEC section 10, issue 15): coherence, diversity and hybrid refine each new set right
after its forward. Pure functions against hand computations; on the models against plain Hugging Face forwards
of each candidate alone (isolated mode) and Hugging Face greedy generation; batches against each request alone."""
import json
import math

import pytest
import torch
from torch.testing import assert_close

from tempo.engine import strategy
from tempo.engine.batch import Batch
from tempo.engine.runner import compare_requests
from tempo.errors import RequestError
from tempo.request import build_request
from tempo.result import GenerationResult, pruned_by
from tempo.ui.plots import fates
from tempo.ui.render import candidates_table
from helpers import alone, last_logits, same, serving, tokens

PROMPT = "the cat sat on the"
COHERENCE = dict(use_pruning=True, pruning_strategy="coherence", selection_threshold=0.05, temperature=1.0)


def fate(result):
    """(token, status, pruned_at_step) of every candidate, by step."""
    return [[(c.token_id, c.status, c.pruned_at_step) for c in s.candidates] for s in result.steps]


def coherences(result):
    return [c.coherence for s in result.steps for c in s.candidates]


def same_coherence(result, reference):
    ours, theirs = coherences(result), coherences(reference)
    assert [c is None for c in ours] == [c is None for c in theirs]
    assert_close(torch.tensor([c for c in ours if c is not None]), torch.tensor([c for c in theirs if c is not None]),
                 atol=1e-4, rtol=0)


# --- pure functions against hand computations -------------------------------------------------

def test_coherence_keeps_candidates_at_the_threshold_else_the_most_coherent():
    assert strategy.coherence_keep([0.5, 0.2, 0.35, 0.3], 0.3) == [0, 2, 3]  # 0.3 >= 0.3 stays
    assert strategy.coherence_keep([0.1, 0.25, 0.2], 0.3) == [1]  # none passes: the most coherent alone
    assert strategy.coherence_keep([0.2, 0.2, 0.1], 0.9) == [0]  # a tie: the more probable (earlier) one
    assert strategy.coherence_keep([0.0], 1.0) == [0]  # a set of one always keeps its token


def test_processed_rows_by_hand():
    logits = torch.tensor([[[2.0, -1.0, 0.5, 3.0], [1.0, 1.0, -2.0, 0.0]]])  # [R=1, K=2, V=4]; token 3 is EOS
    seen = torch.tensor([[False, True, True, False]])
    q = strategy.processed_rows(logits, [True], [3], seen, torch.tensor([2.0]), torch.tensor([0.5]))
    by_hand = []
    for row in logits[0].tolist():
        row = [row[0], row[1] * 2.0 if row[1] < 0 else row[1] / 2.0, row[2] * 2.0 if row[2] < 0 else row[2] / 2.0,
               -math.inf]  # penalty on seen 1 and 2 (negative: times, positive: divided), EOS suppressed
        exp = [math.exp(v / 0.5) for v in row]
        by_hand.append([e / sum(exp) for e in exp])
    assert_close(q[0], torch.tensor(by_hand))
    q = strategy.processed_rows(logits, [False], [3], None, torch.tensor([2.0]), torch.tensor([1.0]))
    assert_close(q[0], torch.softmax(logits[0], -1))  # not early, no penalty, temperature 1: a plain softmax


def test_pathways_on_constructed_hidden_states_by_hand():
    hidden = torch.tensor([
        [1.0, 0.0, 0.0],  # 0 starts pathway 0
        [0.95, 0.3122, 0.0],  # 1: cos 0.95 with 0 -> pathway 0
        [0.0, 2.0, 0.0],  # 2: cos 0 with 0 -> starts pathway 1 (the length does not matter)
        [0.6, 0.8, 0.0],  # 3: cos 0.6 with 0, 0.8 with 2: the FIRST similar pathway (0) at similarity 0.5
        [0.0, 0.0, 1.0],  # 4: similar to no first member -> starts pathway 2
        [0.1, 0.0, -1.0],  # 5: similar to none, no room left (3 pathways) -> the most similar first member: 0
    ])
    assigned = strategy.pathways(hidden, 0.5, 3)
    assert assigned == [0, 0, 1, 0, 2, 0]
    assert strategy.first_of_each(assigned) == [0, 2, 4]
    assert strategy.pathways(hidden, 0.9, 6) == [0, 0, 1, 2, 3, 4]  # at 0.9 only 1 joins; room for every other


def test_pathways_when_full_join_the_most_similar_first_member():
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.1]])
    # 2: cos 0.8 with 0 and 0.6 with 1, below 0.9: no room (2 pathways) -> pathway 0; 3: cos -0.995 / 0.0995 -> 1
    assert strategy.pathways(hidden, 0.9, 2) == [0, 1, 0, 1]
    assert strategy.pathways(hidden, -1.0, 3) == [0, 0, 0, 0]  # every cosine is >= -1: one pathway
    assert strategy.pathways(hidden, 0.9, 1) == [0, 0, 0, 0]  # one pathway at most
    assert strategy.first_of_each([0, 0, 0, 0]) == [0]


def request(**fields):
    return build_request("x", **{"use_pruning": True, **fields})


def test_hybrid_switches_to_coherence_at_diversity_steps():
    hybrid = request(pruning_strategy="hybrid", diversity_steps=3)
    assert [strategy.strategy_at(hybrid, s) for s in range(5)] == ["diversity"] * 3 + ["coherence"] * 2
    assert strategy.strategy_at(request(pruning_strategy="hybrid", diversity_steps=0), 0) == "coherence"
    assert strategy.strategy_at(request(pruning_strategy="diversity"), 50) == "diversity"
    assert strategy.strategy_at(request(pruning_strategy="coherence"), 0) == "coherence"
    assert strategy.strategy_at(request(use_pruning=False), 0) is None
    assert strategy.strategy_at(request(mode="default"), 0) is None  # sets of one: nothing to refine


@pytest.mark.parametrize("fields,field,allowed", [
    ({"pruning_strategy": "entropy"}, "pruning_strategy", "coherence, diversity, hybrid"),
    ({"coherence_threshold": 1.5}, "coherence_threshold", "[0.0, 1.0]"),
    ({"diversity_clusters": 0}, "diversity_clusters", "[1, 256]"),
    ({"diversity_similarity": 1.2}, "diversity_similarity", "[-1.0, 1.0]"),
    ({"diversity_steps": -1}, "diversity_steps", "[0, 1024]"),
    ({"mode": "mcts"}, "use_pruning", "not available with mode mcts"),
])
def test_bad_values_name_the_field(fields, field, allowed):
    with pytest.raises(RequestError) as info:
        build_request(PROMPT, use_pruning=True, **fields)
    assert info.value.field == field and allowed in str(info.value) and str(info.value).startswith(f"{field}:")


def test_compare_runs_mcts_without_strategy_pruning():
    requests = compare_requests(PROMPT, None, use_pruning=True, pruning_strategy="diversity")
    assert requests["mcts"].use_pruning is False
    assert requests["tempo"].use_pruning and requests["tempo_pruning"].use_pruning and requests["default"].use_pruning


def test_what_pruned_each_candidate_in_the_table_and_the_plot():
    from tempo.result import Candidate, ModelInfo, Step, Timing
    from tempo.ui.plots import set_sizes_figure

    steps = [
        Step(0, 5, 0.1, strategy="coherence", candidates=[
            Candidate(1, "a", 0.5, coherence=0.6), Candidate(2, "b", 0.3, coherence=0.4),
            Candidate(3, "c", 0.2, status="pruned", pruned_at_step=0, coherence=0.1)]),
        Step(1, 6, 0.1, strategy="diversity", candidates=[
            Candidate(4, "d", 0.7), Candidate(5, "e", 0.3, status="pruned", pruned_at_step=1)]),
        Step(2, 7, 0.1, candidates=[Candidate(6, "f", 0.9)]),
    ]
    steps[0].candidates[1].status, steps[0].candidates[1].pruned_at_step = "pruned", 2  # by attention, later
    result = GenerationResult("p", "tempo", "", "", steps, {}, Timing(), ModelInfo("m", "cpu", "float32"))
    assert fates(result) == {"kept": [1, 1, 1], "coherence": [1, 0, 0], "diversity": [0, 1, 0],
                             "attention": [1, 0, 0]}
    table = candidates_table(result)
    assert list(table["pruned_by"].fillna("")) == ["", "attention", "coherence", "", "diversity", ""]
    assert list(table["coherence"][:3]) == [0.6, 0.4, 0.1] and table["coherence"][3:].isna().all()
    legend = [t.get_text() for t in set_sizes_figure(result).axes[0].get_legend().get_texts()]
    assert legend == ["kept", "pruned by coherence", "pruned by diversity", "pruned by attention"]
    assert GenerationResult.from_json(result.to_json()) == result  # the new fields round-trip


def test_the_fields_sit_in_the_pruning_accordion():
    from tempo.ui import controls

    assert {"use_pruning", "pruning_strategy", "coherence_threshold", "diversity_clusters", "diversity_similarity",
            "diversity_steps"} <= set(controls.grouped_fields()["Pruning"])


# --- on the models: coherence ------------------------------------------------------------------

def processed_by_hand(logits, seen_ids, penalty, temperature, eos_ids, early):
    """One processed row (TEMPO_SPEC section 3) from a plain forward's logits, written out here."""
    x = logits.clone()
    if early:
        x[eos_ids] = -math.inf
    seen = torch.tensor(sorted(set(seen_ids)))
    x[seen] = torch.where(x[seen] < 0, x[seen] * penalty, x[seen] / penalty)
    return torch.softmax(x / temperature, -1)


def test_coherence_is_the_top_of_each_candidates_own_row_and_drops_leave_context_and_mixture(engine):
    """Threshold 1.0: only the most coherent candidate of each set stays (the fallback), so each step's context is
    one plain sequence a Hugging Face forward can recompute: every candidate's coherence is the top of its own
    processed row, and the next step's probabilities are the kept candidate's row alone — the dropped ones are
    neither in the context (the mask) nor in the mixture nor in the repetition penalty."""
    fields = dict(COHERENCE, coherence_threshold=1.0, temperature=0.8, repetition_penalty=1.3, min_steps=3,
                  top_k=0, top_p=1.0, max_tokens=7)
    result = alone(engine, PROMPT, **fields)
    prompt_ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    kept: list[int] = []
    dropped_somewhere = False
    for s, step in enumerate(result.steps[:-1]):
        assert step.strategy == "coherence"
        q = [processed_by_hand(last_logits(engine, prompt_ids + kept + [c.token_id]),
                               prompt_ids + kept + [d.token_id for d in step.candidates], 1.3, 0.8, engine.eos_ids,
                               s + 1 < 3) for c in step.candidates]
        assert_close(torch.tensor([c.coherence for c in step.candidates]), torch.stack([r.max() for r in q]),
                     atol=1e-4, rtol=0)
        best = max(range(len(q)), key=lambda i: float(q[i].max()))
        assert [c.status for c in step.candidates] == ["kept" if i == best else "pruned"
                                                      for i in range(len(step.candidates))]
        assert all(c.pruned_at_step == s for c in step.candidates if c.status == "pruned")
        dropped_somewhere |= len(step.candidates) > 1
        kept.append(step.candidates[best].token_id)
        # The next set was selected from the kept candidate's row alone, penalised over the kept tokens only.
        following = result.steps[s + 1].candidates
        p = processed_by_hand(last_logits(engine, prompt_ids + kept), prompt_ids + kept, 1.3, 0.8, engine.eos_ids,
                              s + 1 < 3)
        assert_close(torch.tensor([c.probability for c in following]), p[[c.token_id for c in following]],
                     atol=1e-4, rtol=0)
    assert dropped_somewhere
    last = result.steps[-1]  # stopped by max_tokens: its set had no forward, nothing refined it
    assert result.stop_reason == "max_tokens" and last.strategy is None
    assert all(c.coherence is None and c.status == "kept" for c in last.candidates)


def test_coherence_threshold_rule_on_the_model(engine):
    result = alone(engine, PROMPT, **COHERENCE, coherence_threshold=0.25, max_tokens=10, min_steps=10)
    pruned = 0
    for step in result.steps[:-1]:
        scores = [c.coherence for c in step.candidates]
        passing = [i for i, c in enumerate(scores) if c >= 0.25] or [scores.index(max(scores))]
        assert [c.status == "kept" for c in step.candidates] == [i in passing for i in range(len(scores))]
        assert all(pruned_by(step, c) == "coherence" and c.pruned_at_step == step.step and c.attention is None
                   for c in step.candidates if c.status != "kept")
        pruned += len(scores) - len(passing)
    assert pruned > 0
    counts = fates(result)  # what the set-size plot stacks
    assert sum(counts["coherence"]) == pruned and counts["diversity"] == [0] * len(result.steps)
    table = candidates_table(result)
    assert [None if math.isnan(c) else c for c in table["coherence"]] == coherences(result)  # pandas: None -> nan
    assert (table["pruned_by"] == "coherence").sum() == pruned


# --- on the models: diversity -------------------------------------------------------------------

def hf_generate(engine, prompt, steps):
    ids = engine.loaded.tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        out = engine.loaded.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                           do_sample=False, max_new_tokens=steps, min_new_tokens=steps,
                                           eos_token_id=engine.eos_ids, pad_token_id=engine.pad_id)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("one_pathway", [{"diversity_similarity": -1.0}, {"diversity_clusters": 1}])
def test_diversity_one_pathway_keeps_one_token_a_step_the_greedy_one(engine, one_pathway):
    result = alone(engine, PROMPT, use_pruning=True, pruning_strategy="diversity", selection_threshold=0.05,
                   max_tokens=10, min_steps=10, **one_pathway)
    assert any(len(step.candidates) > 1 for step in result.steps[:-1])
    for step in result.steps[:-1]:
        assert step.strategy == "diversity" and [c.status for c in step.candidates] == \
            ["kept"] + ["pruned"] * (len(step.candidates) - 1)
        assert all(c.coherence is None for c in step.candidates)
    # One kept token a step, the argmax of a distribution that holds it alone: Hugging Face's greedy tokens.
    assert [step.candidates[0].token_id for step in result.steps] == hf_generate(engine, PROMPT, 10)


def final_hidden(engine, ids):
    with torch.no_grad():
        return engine.loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0, -1]


def test_diversity_pathways_follow_each_candidates_final_hidden_state(engine):
    """Step 0's candidates' final hidden states recomputed by a forward of each alone; a similarity between two of
    their cosines (far from both) gives pathways, and the engine keeps the first of each."""
    fields = dict(use_pruning=True, pruning_strategy="diversity", selection_threshold=0.03, max_tokens=2,
                  min_steps=2, diversity_clusters=256)
    candidates = alone(engine, PROMPT, **{**fields, "use_pruning": False}).steps[0].candidates
    prompt_ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    hidden = torch.stack([final_hidden(engine, prompt_ids + [c.token_id]) for c in candidates])
    unit = torch.nn.functional.normalize(hidden, dim=-1)
    cosines = sorted((unit @ unit.T)[torch.triu_indices(len(candidates), len(candidates), 1).unbind()].tolist())
    splits = [((a + b) / 2, b - a) for a, b in zip(cosines, cosines[1:])]
    chosen = None
    for similarity, gap in sorted(splits, key=lambda split: -split[1]):
        keep = strategy.first_of_each(strategy.pathways(hidden, similarity, 256))
        if 1 < len(keep) < len(candidates) and gap > 1e-3:
            chosen = similarity, keep
            break
    assert chosen is not None, cosines
    similarity, keep = chosen
    step = alone(engine, PROMPT, **fields, diversity_similarity=similarity).steps[0]
    assert [c.token_id for c in step.candidates] == [c.token_id for c in candidates]
    assert [c.status == "kept" for c in step.candidates] == [i in keep for i in range(len(candidates))]


@pytest.mark.parametrize("plain_head", [True, False])
def test_the_adapter_returns_final_hidden_states_only_on_request(engine, monkeypatch, plain_head):
    monkeypatch.setattr(engine.adapter, "plain_head", plain_head)  # False: through the model's own forward
    ids = torch.tensor([engine.loaded.tokenizer(PROMPT)["input_ids"]])
    positions = torch.arange(ids.shape[1])[None]
    plain = engine.adapter.forward(ids, positions, None, None)
    logits, _, hidden = engine.adapter.forward(ids, positions, None, None, hidden=True)
    assert len(plain) == 2
    with torch.no_grad():
        reference = engine.loaded.model(input_ids=ids, output_hidden_states=True)
    assert_close(hidden, reference.hidden_states[-1], atol=1e-5, rtol=0)
    assert_close(logits, plain[0], atol=1e-5, rtol=0)
    assert_close(logits, reference.logits.float(), atol=1e-5, rtol=0)


# --- hybrid, modes, batches, retroactive pruning -------------------------------------------------

def test_hybrid_runs_diversity_then_coherence_on_the_model(engine):
    result = alone(engine, PROMPT, **{**COHERENCE, "pruning_strategy": "hybrid"}, diversity_steps=3, max_tokens=7,
                   min_steps=7)
    assert [s.strategy for s in result.steps] == ["diversity"] * 3 + ["coherence"] * 3 + [None]
    assert all((c.coherence is not None) == (s.strategy == "coherence") for s in result.steps for c in s.candidates)


def test_default_mode_has_nothing_to_prune(engine):
    fields = dict(mode="default", temperature=0.0, max_tokens=6)
    with_pruning = alone(engine, PROMPT, use_pruning=True, pruning_strategy="diversity", **fields)
    same(with_pruning, alone(engine, PROMPT, **fields))
    assert all(s.strategy is None and s.candidates[0].coherence is None for s in with_pruning.steps)


MIXED = [
    dict(prompt=PROMPT, **COHERENCE, coherence_threshold=0.25, max_tokens=8, repetition_penalty=1.3),
    dict(prompt="a big red dog ran to the house and", use_pruning=True, pruning_strategy="diversity",
         diversity_similarity=0.2, diversity_clusters=2, selection_threshold=0.05, max_tokens=10),
    dict(prompt="bird", use_pruning=True, pruning_strategy="hybrid", diversity_steps=2, diversity_clusters=1,
         coherence_threshold=0.2, selection_threshold=0.04, max_tokens=7, allow_intraset_token_visibility=True),
    dict(prompt=PROMPT, selection_threshold=0.05, max_tokens=6),
    dict(prompt="the cat", **COHERENCE, use_retroactive_pruning=True, attention_threshold=0.05, max_tokens=9),
    dict(prompt="bird", mode="default", temperature=0.9, seed=3, max_tokens=5, use_pruning=True),
]


def test_strategy_pruning_is_batch_independent(engine):
    requests = [engine.request(fields.pop("prompt"), **fields) for fields in map(dict, MIXED)]
    together = engine.run(requests)
    assert any(c.status == "pruned" for r in together[:3] for s in r.steps for c in s.candidates)
    for request, batched in zip(requests, together):
        reference = alone(engine, request)
        same(batched, reference)
        assert fate(batched) == fate(reference)
        assert [s.strategy for s in batched.steps] == [s.strategy for s in reference.steps]
        same_coherence(batched, reference)


def strategy_dropped_slots(row):
    return [slot for s, record in enumerate(row.sets) for slot, at in zip(record.slots, record.pruned_at) if at == s]


def test_beside_retroactive_pruning_dropped_candidates_get_no_attention(engine):
    request = engine.request(PROMPT, **COHERENCE, coherence_threshold=0.2, use_retroactive_pruning=True,
                             attention_threshold=0.1, max_tokens=10, min_steps=10)
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    batch.add([request])
    while not strategy_dropped_slots(batch.rows[0]):
        batch.step()
    gone = strategy_dropped_slots(batch.rows[0])
    batch.step()  # the next forward: its queries must ignore the dropped slots
    for layer, weights in batch.attention.items():
        assert weights[0, :, gone].abs().max() == 0.0, f"layer {layer} attends a candidate strategy pruning dropped"
    result = alone(engine, request)
    reasons = {pruned_by(s, c) for s in result.steps for c in s.candidates}
    assert {"coherence", "attention"} <= reasons  # both kinds of pruning happened in one run
    for step in result.steps:
        for c in step.candidates:
            if pruned_by(step, c) == "coherence":
                assert c.attention is None  # never judged: retroactive pruning judges kept candidates only
            elif pruned_by(step, c) == "attention":
                assert c.pruned_at_step > step.step and c.attention is not None
    assert result.timing.pruning_s > 0


# --- the interfaces: CLI, REST, gradio_client ---------------------------------------------------

STRATEGY_FLAGS = ["--use-pruning", "--pruning-strategy", "hybrid", "--coherence-threshold", "0.2",
                  "--diversity-clusters", "2", "--diversity-similarity", "0.5", "--diversity-steps", "2"]
STRATEGY_FIELDS = dict(use_pruning=True, pruning_strategy="hybrid", coherence_threshold=0.2, diversity_clusters=2,
                       diversity_similarity=0.5, diversity_steps=2)


@pytest.fixture
def quiet_cli(monkeypatch, clean_tempo_env):
    monkeypatch.setenv("TEMPO_LOGGING__ENABLE_FILE_LOGGING", "false")


def test_cli_flags_reach_the_request_and_bad_values_name_the_field(tiny_model_dir, engines, capsys, quiet_cli):
    from tempo.cli.main import main

    model = str(tiny_model_dir["llama"])
    common = ["generate", "--model", model, "--prompt", PROMPT, "--max-tokens", "6", "--min-steps", "6",
              "--selection-threshold", "0.05", "--temperature", "1.0"]
    assert main([*common, "--json", *STRATEGY_FLAGS]) == 0
    result = GenerationResult.from_dict(json.loads(capsys.readouterr().out))
    assert {k: result.settings[k] for k in STRATEGY_FIELDS} == STRATEGY_FIELDS
    reference = alone(engines["llama"], PROMPT, max_tokens=6, min_steps=6, selection_threshold=0.05, temperature=1.0,
                      **STRATEGY_FIELDS)
    same(result, reference)
    assert fate(result) == fate(reference) and [s.strategy for s in result.steps] == ["diversity"] * 2 + \
        ["coherence"] * 3 + [None]
    for flags, field in ((["--use-pruning", "--coherence-threshold", "1.5"], "coherence_threshold"),
                         (["--use-pruning", "--diversity-clusters", "0"], "diversity_clusters"),
                         (["--use-pruning", "--use-mcts"], "use_pruning")):
        assert main([*common, *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"error: {field}:"), err
    with pytest.raises(SystemExit) as info:  # a choice argparse knows: refused before any model loads
        main([*common, "--pruning-strategy", "entropy"])
    assert info.value.code == 2 and "--pruning-strategy: invalid choice: 'entropy'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    from tempo.settings.loader import load_settings

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in __import__("os").environ if n.startswith("TEMPO_")]:
            patch.delenv(name)
        settings = load_settings(overrides={"app.stream_interval": 0.0})
    with serving(tiny_model_dir["llama"], settings) as served:
        yield served


@pytest.mark.slow
@pytest.mark.server
def test_rest_and_gradio_client_take_the_fields_and_refuse_bad_values_with_422(served):
    import httpx
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    engine, server = served
    fields = dict(selection_threshold=0.05, temperature=1.0, max_tokens=6, min_steps=6, **STRATEGY_FIELDS)
    reference = alone(engine, PROMPT, **fields)
    answer = httpx.post(server.url + "generate", json={"prompt": PROMPT, **fields}, timeout=60)
    assert answer.status_code == 200, answer.text
    rest = GenerationResult.from_dict(answer.json())
    same(rest, reference)
    assert fate(rest) == fate(reference)
    same_coherence(rest, reference)
    for body, field in (({"pruning_strategy": "entropy"}, "pruning_strategy"),
                        ({"coherence_threshold": 1.5}, "coherence_threshold"),
                        ({"diversity_clusters": 0}, "diversity_clusters"),
                        ({"mode": "mcts"}, "use_pruning")):
        bad = httpx.post(server.url + "generate", json={"prompt": PROMPT, "use_pruning": True, **body})
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
    client = Client(server.url, verbose=False)
    try:
        streamed = GenerationResult.from_dict(client.predict(PROMPT, fields, api_name="/generate"))
        same(streamed, reference)
        assert fate(streamed) == fate(reference)
        with pytest.raises(AppError, match="coherence_threshold"):
            client.predict(PROMPT, {**fields, "coherence_threshold": 1.5}, api_name="/generate")
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mistral", "qwen2_sliding", "deepseek_v2"])
def test_diversity_on_sliding_window_and_mla_models(tmp_path, kind):
    """The final hidden states come through the sliding-window path too (the window applied by position, past
    WINDOW steps): one pathway a step keeps Hugging Face's greedy tokens."""
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from helpers import save_tiny

    engine = Tempo(load_model(str(save_tiny(tmp_path / kind, kind))))
    result = alone(engine, PROMPT, use_pruning=True, pruning_strategy="diversity", diversity_similarity=-1.0,
                   selection_threshold=0.05, max_tokens=12, min_steps=12)
    assert any(len(step.candidates) > 1 for step in result.steps[:-1])
    assert all(len(step.kept) == 1 for step in result.steps[:-1])
    assert [step.candidates[0].token_id for step in result.steps] == hf_generate(engine, PROMPT, 12)
