"""Retroactive pruning (TEMPO_SPEC sections 5, 6 and invariant 4)."""
import copy

import pytest
import torch
from torch.testing import assert_close

from tempo.engine import layout, pruning
from tempo.engine.output import format_set
from tempo.engine.row import SetRecord
from tempo.engine.batch import Batch
from tempo.errors import RequestError
from tempo.request import GenerationRequest
from helpers import run_cli, same

PROMPT = "the cat sat on the"
PRUNE = dict(use_retroactive_pruning=True, selection_threshold=0.05)


# --- pure functions against hand computations -------------------------------------------------

def test_layer_plan_multi_scale_and_plain():
    layers, weights = pruning.layer_plan(6, 4, multi_scale=True)
    assert layers == [2, 3, 4, 5]
    raw = [0.2, 0.2 + 0.8 / 3, 0.2 + 1.6 / 3, 1.0]
    assert_close(weights, torch.tensor([w / sum(raw) for w in raw]))
    layers, weights = pruning.layer_plan(6, 0, multi_scale=True)
    assert layers == list(range(6)) and weights[0] < weights[-1]
    layers, weights = pruning.layer_plan(6, 2, multi_scale=False)  # plain mean of the last 3, whatever L says
    assert layers == [3, 4, 5]
    assert_close(weights, torch.full((3,), 1 / 3))


def test_attention_signal_by_hand():
    per_layer = torch.tensor([
        [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],  # layer 0: two queries over three keys
        [[0.2, 0.2, 0.6], [0.4, 0.4, 0.2]],  # layer 1
    ])
    layer_w = torch.tensor([0.25, 0.75])
    query_w = torch.tensor([0.6, 0.2])  # unnormalised candidate probabilities
    q0 = [0.25 * 0.5 + 0.75 * 0.2, 0.25 * 0.3 + 0.75 * 0.2, 0.25 * 0.2 + 0.75 * 0.6]
    q1 = [0.25 * 0.1 + 0.75 * 0.4, 0.25 * 0.1 + 0.75 * 0.4, 0.25 * 0.8 + 0.75 * 0.2]
    expected = torch.tensor([0.75 * a + 0.25 * b for a, b in zip(q0, q1)])
    assert_close(pruning.attention_signal(per_layer, layer_w, query_w), expected)


def test_judge_sigmoid_and_relative_by_hand():
    a = torch.tensor([0.05, 0.02, 0.011, 0.009])
    absolute, relative, sigma = pruning.judge(a, 0.01, True, 10.0, True, 0.5)
    assert_close(sigma, 1 / (1 + torch.exp(-10 * (a - 0.01))))
    assert absolute.tolist() == [True, True, True, False]
    assert relative.tolist() == [True, False, False, False]  # 0.5 * 0.05 = 0.025
    absolute, relative, sigma = pruning.judge(a, 0.015, False, 10.0, False, 0.5)
    assert absolute.tolist() == [True, True, False, False] and relative.all()
    assert sigma.tolist() == [1.0, 1.0, 0.0, 0.0]


def records():
    """Step 0: a set of three at slots 5-7; step 1: one token at slot 8; step 2 (the queries) at 9-10."""
    return [SetRecord([10, 11, 12], [0.5, 0.3, 0.2], 0.1, slots=[5, 6, 7]),
            SetRecord([13], [0.9], 0.1, slots=[8]),
            SetRecord([14, 15], [0.6, 0.4], 0.1, slots=[9, 10])]


def request(**kw):
    return GenerationRequest(prompt="x", use_retroactive_pruning=True, **kw)


def test_partial_pruning_marks_status_step_and_attention():
    sets = records()
    signal = torch.zeros(11)
    signal[[5, 6, 7, 8]] = torch.tensor([0.3, 0.001, 0.2, 0.0])
    change = pruning.prune_sets(sets, signal, 2, 0.01, request())
    assert sets[0].status == ["kept", "pruned", "kept"] and sets[0].pruned_at == [None, 2, None]
    assert sets[0].attention == pytest.approx([0.3, 0.001, 0.2])
    assert change.hidden == [6]
    assert sets[1].status == ["kept"] and sets[1].attention == [None]  # isolated tokens are not judged
    assert sets[2].status == ["kept", "kept"]  # the queries' own set is not judged


@pytest.mark.parametrize("mode", ["keep_token", "keep_unattended", "remove_position"])
def test_complete_pruning_modes_when_a_whole_set_fails(mode):
    sets = records()
    signal = torch.full((11,), 0.001)
    change = pruning.prune_sets(sets, signal, 2, 0.01, request(complete_pruning_mode=mode))
    if mode == "remove_position":
        assert sets[0].status == ["removed"] * 3 and sorted(change.hidden) == [5, 6, 7]
        assert not sets[0].unattended
    else:
        assert sets[0].status == ["kept", "pruned", "pruned"] and sorted(change.hidden) == [6, 7]
        assert sets[0].unattended == (mode == "keep_unattended")


def test_isolated_tokens_judged_when_preservation_is_off():
    sets = records()
    signal = torch.full((11,), 0.001)
    change = pruning.prune_sets(sets, signal, 2, 0.01, request(preserve_isolated_tokens=False,
                                                               complete_pruning_mode="remove_position"))
    assert sets[1].status == ["removed"] and 8 in change.hidden


def test_soft_pruning_biases_instead_of_cutting():
    sets = records()
    signal = torch.zeros(11)
    signal[[5, 6, 7]] = torch.tensor([0.3, 0.001, 0.2])
    change = pruning.prune_sets(sets, signal, 2, 0.01, request(soft_pruning=True, relative_threshold=0.0))
    assert sets[0].status == ["kept"] * 3 and change.hidden == []
    assert change.biases[6] == pytest.approx(float(torch.log(torch.sigmoid(torch.tensor(10 * (0.001 - 0.01))))))
    mask = layout.step_mask(torch.ones(1, 11, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool),
                            torch.tensor([False]), torch.float32,
                            key_bias=torch.tensor([[change.biases.get(j, 0.0) for j in range(11)]]))
    assert mask[0, 0, 0, 6] == pytest.approx(change.biases[6]) and mask[0, 0, 0, 0] == 0.0


# --- on the models ------------------------------------------------------------------------------

def pruned_slots(row):
    return [slot for record in row.sets for slot, status in zip(record.slots, record.status) if status != "kept"]


def test_pruned_tokens_get_zero_attention_and_match_a_physically_deleted_cache(engine):
    req = engine.request(PROMPT, attention_threshold=0.05, max_tokens=10, **PRUNE)
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    batch.add([req])
    while not pruned_slots(batch.rows[0]):
        batch.step()
    row = batch.rows[0]
    gone = pruned_slots(row)
    cache_before = copy.deepcopy(batch.cache)
    visible_before = batch.visible.clone()
    width = visible_before.shape[1]
    batch.step()  # the next forward: its queries must ignore the pruned slots
    for layer, weights in batch.attention.items():
        assert weights[0, :, gone].abs().max() == 0.0, f"layer {layer} attends a pruned token"
    assert len(batch.attention) == engine.adapter.num_layers  # num_layers_to_use 0 = all layers read
    # The same forward over a cache from which the pruned keys and values are deleted.
    keep = torch.tensor([j for j in range(width) if j not in gone])
    for layer in cache_before.layers:
        layer.keys, layer.values = layer.keys[:, :, keep], layer.values[:, :, keep]
    record = row.sets[-1]
    n = len(record.tokens)
    real = torch.ones(1, n, dtype=torch.bool)
    mask = layout.step_mask(visible_before[:, keep], real, torch.tensor([False]), torch.float32)
    positions = torch.full((1, n), len(row.prompt_ids) + len(row.sets) - 1)
    logits, _ = engine.adapter.forward(torch.tensor([record.tokens]), positions, mask, cache_before)
    assert_close(batch.logits[0, :n], logits[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["keep_token", "keep_unattended", "remove_position"])
def test_complete_pruning_modes_on_the_model(engine, mode):
    result = engine.generate(PROMPT, attention_threshold=1.0, relative_attention=False, max_tokens=8,
                             complete_pruning_mode=mode, **PRUNE)
    judged = result.steps[:-2]  # the last two sets are never judged: no later step's forward sees them
    assert any(len(s.candidates) > 1 for s in judged)
    plain = engine.generate(PROMPT, max_tokens=8, selection_threshold=0.05)
    assert [s.position for s in result.steps] == [s.position for s in plain.steps]  # no renumbering
    for step in judged:
        if len(step.candidates) == 1:
            assert step.kept and not step.unattended
        elif mode == "remove_position":
            assert {c.status for c in step.candidates} == {"removed"} and not step.kept
            assert all(c.pruned_at_step == step.step + 1 for c in step.candidates)
        else:
            assert [c.status for c in step.candidates] == ["kept"] + ["pruned"] * (len(step.candidates) - 1)
            assert step.unattended == (mode == "keep_unattended")
    for step in result.steps:
        for c in step.candidates:
            if c.status != "kept":
                assert c.attention is not None and c.attention < 1.0 and c.text not in ("",)
    shown = [s for s in result.steps if s.kept]
    assert result.text == "".join(format_set([c.text for c in s.kept]) for s in shown)
    assert len(shown) < len(result.steps) if mode == "remove_position" else len(shown) == len(result.steps)


def test_dynamic_threshold_collapses_late_steps(engine):
    result = engine.generate(PROMPT, attention_threshold=0.0, dynamic_threshold=True, final_threshold=1.0,
                             relative_attention=False, max_tokens=12, **PRUNE)
    thresholds = [s.attention_threshold for s in result.steps[:-1]]
    assert thresholds[0] == pytest.approx(0.0) and thresholds == sorted(thresholds)
    assert result.steps[-2].attention_threshold == pytest.approx(threshold_at_step(10, 12))
    assert all(len(s.kept) == 1 for s in result.steps[:-1])  # judged at the end at ~1.0: single tokens
    assert any(len(s.candidates) > 1 for s in result.steps[:-1])
    relu = engine.generate(PROMPT, attention_threshold=0.0, dynamic_threshold=True, use_relu=True,
                           relu_activation_point=0.5, final_threshold=1.0, max_tokens=12, **PRUNE)
    assert [s.attention_threshold for s in relu.steps[:5]] == [0.0] * 5  # flat before the activation point


@pytest.mark.parametrize("prompt,max_tokens", [(PROMPT, 12), ("bird", 8), ("the cat sat on the", 6)])
def test_the_second_to_last_set_is_judged(engine, prompt, max_tokens):
    """A row that stops at ``max_tokens`` still runs the forward over its last set, whose queries judge the
    set before it: with the threshold rising to 1.0 every judged step collapses to one kept token. The last
    set has no later query: nothing judges it."""
    result = engine.generate(prompt, attention_threshold=0.0, dynamic_threshold=True, final_threshold=1.0,
                             relative_attention=False, max_tokens=max_tokens, **PRUNE)
    assert result.stop_reason == "max_tokens" and len(result.steps) == max_tokens
    second_to_last, last = result.steps[-2], result.steps[-1]
    assert len(second_to_last.candidates) > 1 and len(second_to_last.kept) == 1
    assert all(len(s.kept) == 1 for s in result.steps[:-1])
    assert last.attention_threshold == pytest.approx(1.0)  # the threshold its queries judged with
    assert len(last.kept) == len(last.candidates)


def test_only_pruning_rows_pay_the_last_forward(engine):
    """One extra forward (over the last set) for a pruning row; none for a row that does not prune, whose
    result beside a pruning row finishing at the same step is the one it has alone."""
    def forwards(request):
        batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
        before = engine.adapter.forward_calls
        batch.run([request])
        return engine.adapter.forward_calls - before

    plain = engine.request(PROMPT, max_tokens=6, min_steps=6, selection_threshold=0.05)
    pruned = engine.request(PROMPT, max_tokens=6, min_steps=6, attention_threshold=0.05, **PRUNE)
    assert forwards(plain) == 6  # the prefill and one forward for each set but the last
    assert forwards(pruned) == 7  # and the one over the last set
    together = engine.run([pruned, plain])
    same(together[1], engine.run([plain])[0])
    assert together[1].timing.pruning_s == 0


def test_the_last_stream_update_follows_the_last_judgement(engine):
    updates = {}
    request = engine.request(PROMPT, attention_threshold=0.0, dynamic_threshold=True, final_threshold=1.0,
                             relative_attention=False, max_tokens=8, **PRUNE)

    def on_step(row):
        updates[row.key] = [list(record.status) for record in row.sets]

    result = engine.run([request, engine.request("bird", max_tokens=5, selection_threshold=0.05)], on_step)[0]
    assert updates[0] == [[c.status for c in step.candidates] for step in result.steps]


def threshold_at_step(step, max_tokens):
    from tempo.engine.schedules import threshold_at

    return threshold_at("bezier", step, max_tokens, 0.0, 1.0)


def test_pruning_in_a_batch_matches_each_alone(engine):
    requests = [
        engine.request(PROMPT, attention_threshold=0.05, max_tokens=8, **PRUNE),
        engine.request("a big red dog ran to the house and", max_tokens=10, selection_threshold=0.05),
        engine.request("bird", attention_threshold=0.03, max_tokens=6, allow_intraset_token_visibility=True,
                       complete_pruning_mode="remove_position", repetition_penalty=1.3, **PRUNE),
    ]
    together = engine.run(requests)
    for request, batched in zip(requests, together):
        alone = engine.run([request])[0]
        assert [[(c.token_id, c.status) for c in s.candidates] for s in batched.steps] == \
            [[(c.token_id, c.status) for c in s.candidates] for s in alone.steps]
    assert any(c.status != "kept" for s in together[0].steps for c in s.candidates)
    assert together[0].timing.pruning_s > 0 and together[1].timing.pruning_s == 0


def test_soft_pruning_changes_generation_without_cutting(engine):
    soft = engine.generate(PROMPT, attention_threshold=0.05, soft_pruning=True, relative_attention=False,
                           max_tokens=10, **PRUNE)
    plain = engine.generate(PROMPT, max_tokens=10, selection_threshold=0.05)
    assert all(c.status == "kept" for s in soft.steps for c in s.candidates)
    assert [[c.token_id for c in s.candidates] for s in soft.steps] != \
        [[c.token_id for c in s.candidates] for s in plain.steps]


@pytest.mark.parametrize("fields,field,allowed", [
    ({"relative_threshold": 1.5}, "relative_threshold", "[0.0, 1.0]"),
    ({"complete_pruning_mode": "drop"}, "complete_pruning_mode", "keep_token, keep_unattended, remove_position"),
    ({"attention_threshold": -0.1}, "attention_threshold", "[0.0, 1.0]"),
    ({"num_layers_to_use": 3}, "num_layers_to_use", "[0, 2] for this model"),
])
def test_bad_pruning_values(engines, fields, field, allowed):
    with pytest.raises(RequestError) as info:
        engines["llama"].generate(PROMPT, use_retroactive_pruning=True, **fields)
    assert info.value.field == field and allowed in str(info.value)


def test_pruning_off_reads_no_attention(engine):
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    batch.add([engine.request(PROMPT, max_tokens=3, selection_threshold=0.05)])
    batch.step()
    batch.step()
    assert batch.attention == {}


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_pruning_flags_reach_the_request(tiny_model_dir):
    import json

    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--json", "--max-tokens", "6",
               "--selection-threshold", "0.05", "--use-retroactive-pruning", "--attention-threshold", "0.2",
               "--relative-threshold", "0.3", "--no-relative-attention", "--no-multi-scale-attention",
               "--num-layers-to-use", "2", "--no-sigmoid-threshold", "--sigmoid-steepness", "5",
               "--complete-pruning-mode", "remove_position", "--no-preserve-isolated-tokens", "--dynamic-threshold",
               "--use-relu", "--final-threshold", "0.9", "--bezier-p1", "0.1", "--relu-activation-point", "0.4")
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)["settings"]
    assert settings | {
        "use_retroactive_pruning": True, "attention_threshold": 0.2, "relative_threshold": 0.3,
        "relative_attention": False, "multi_scale_attention": False, "num_layers_to_use": 2,
        "sigmoid_threshold": False, "sigmoid_steepness": 5.0, "complete_pruning_mode": "remove_position",
        "preserve_isolated_tokens": False, "dynamic_threshold": True, "use_relu": True, "final_threshold": 0.9,
        "bezier_p1": 0.1, "relu_activation_point": 0.4, "soft_pruning": False,
    } == settings
    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, "--use-retroactive-pruning",
               "--relative-threshold", "1.5")
    assert done.returncode == 2 and done.stderr.strip() == "error: relative_threshold: must be in [0.0, 1.0], got 1.5"


def test_pruning_settings_from_environment(monkeypatch):
    from tempo.settings.loader import load_settings
    from tempo.errors import SettingsError
    from tempo.request import build_request

    monkeypatch.setenv("TEMPO_PRUNING__ATTENTION_THRESHOLD", "0.07")
    monkeypatch.setenv("TEMPO_PRUNING__USE_RETROACTIVE_PRUNING", "true")
    request = build_request("x", load_settings())
    assert request.attention_threshold == 0.07 and request.use_retroactive_pruning is True
    monkeypatch.setenv("TEMPO_PRUNING__COMPLETE_PRUNING_MODE", "drop")
    with pytest.raises(SettingsError, match="pruning.complete_pruning_mode must be one of keep_token"):
        load_settings()
