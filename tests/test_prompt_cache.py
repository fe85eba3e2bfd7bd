"""The prompt cache: a rerun of a prompt skips its prefill and gives the result of a run without the cache."""
import math
from types import SimpleNamespace

import pytest
import torch

from tempo.settings.loader import load_settings
from tempo.engine.prompt_cache import PromptCache, supports
from tempo.engine.batch import Batch
from tempo.engine.runner import Tempo
from tempo.serve.scheduler import Scheduler

PROMPT = "a big red dog ran to the house and"
OTHER = "the cat sat on the mat and the dog sat on the rug"


@pytest.fixture
def pair(engine):
    """Two engines on one model: with a fresh prompt cache, and without one."""
    cached, plain = Tempo(engine.loaded), Tempo(engine.loaded)
    cached.prompt_cache = PromptCache(size=16)
    assert plain.prompt_cache is None  # no settings: no prompt cache
    return cached, plain


def counted(engine, fn):
    """``fn()`` and the forward calls it made."""
    before = engine.adapter.forward_calls
    out = fn()
    return out, engine.adapter.forward_calls - before


def assert_same(a, b, atol=0.0):
    """Equal result JSON, timing aside; floats within ``atol``."""
    def walk(x, y, where):
        if isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                if k != "timing":
                    walk(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, list):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        elif isinstance(x, float) and isinstance(y, float):
            # entropy and varentropy sum over the whole vocabulary: the same float noise, relative to their size
            relative = atol if where.endswith("entropy") else 0
            assert math.isclose(x, y, rel_tol=relative, abs_tol=atol), f"{where}: {x} != {y}"
        else:
            assert x == y, f"{where}: {x!r} != {y!r}"
    walk(a.to_dict(), b.to_dict(), "result")


def test_a_rerun_with_other_thresholds_skips_the_prefill_and_is_identical(pair):
    cached, plain = pair
    first, first_calls = counted(cached, lambda: cached.generate(PROMPT, selection_threshold=0.05, max_tokens=8,
                                                                           min_steps=8))
    assert cached.prompt_cache.stats()["misses"] == 1 and len(cached.prompt_cache) == 1
    entry = cached.prompt_cache.get(cached.loaded.tokenizer(PROMPT)["input_ids"])
    snapshot = [t.clone() for t in (*entry.keys, *entry.values, entry.logits)]
    again = dict(selection_threshold=0.15, max_tokens=8, min_steps=8, repetition_penalty=1.3)
    second, second_calls = counted(cached, lambda: cached.generate(PROMPT, **again))
    reference, reference_calls = counted(plain, lambda: plain.generate(PROMPT, **again))
    # the prefill, then one forward a step but the last; the prefill is the one forward the rerun skips
    assert first_calls == len(first.steps) and reference_calls == len(reference.steps)
    assert second_calls == reference_calls - 1
    assert second.timing.prefill_s < reference.timing.prefill_s
    assert_same(second, reference)  # the same prefill, bit for bit: the same result exactly
    assert any(len(s.candidates) > 1 for s in second.steps)
    assert cached.prompt_cache.stats()["hits"] == 2
    # the loop's in-place cache operations never reach a stored entry
    for before, now in zip(snapshot, (*entry.keys, *entry.values, entry.logits)):
        assert torch.equal(before, now)


def test_a_batch_mixing_hits_and_misses_equals_the_uncached_batch(pair):
    cached, plain = pair
    cached.generate(PROMPT, max_tokens=2)  # PROMPT is held; OTHER and "bird" are not
    prompts = ["bird", PROMPT, OTHER, PROMPT]
    requests = [cached.request(p, selection_threshold=0.05, max_tokens=10, min_steps=10) for p in prompts]
    seen = []
    original = cached.adapter.forward

    def spy(input_ids, position_ids, mask, cache, **options):
        seen.append((input_ids.shape, cache is None))
        return original(input_ids, position_ids, mask, cache, **options)

    cached.adapter.forward = spy
    try:
        results = cached.run(requests)
    finally:
        del cached.adapter.forward
    references = plain.run(requests)
    # one prefill, of the two distinct prompts not held (the rows' shared PROMPT is not prefilled)
    assert [shape[0] for shape, fresh in seen if fresh] == [2]
    for result, reference in zip(results, references):
        # the held rows' keys were computed in another batch (without this one's padding): the same
        # candidates at every step, probabilities within float noise (measured: at most 4.2e-7)
        assert_same(result, reference, atol=1e-6)
    assert_same(results[1], results[3], atol=1e-6)  # twin rows of one batch: float noise too


def test_least_recently_used_entries_leave_first():
    cache = PromptCache(size=2)
    entry = {"keys": [torch.zeros(1, 2, 3, 4)], "values": [torch.zeros(1, 2, 3, 4)], "logits": torch.zeros(1, 1, 5)}
    cache.put([1], **entry)
    cache.put([2], **entry)
    assert cache.get([1]) is not None  # [1] is now the most recent
    cache.put([3], **entry)
    assert [1] in cache and [3] in cache and [2] not in cache
    assert cache.stats()["evictions"] == 1 and cache.stats()["hits"] == 1
    off = PromptCache(size=0)
    kept = off.put([1], **entry)
    assert kept.length == 3 and len(off) == 0 and off.get([1]) is None and off.bytes == 0


def test_the_byte_bound_evicts():
    one = {"keys": [torch.zeros(1, 2, 10, 4)], "values": [torch.zeros(1, 2, 10, 4)], "logits": torch.zeros(1, 1, 8)}
    nbytes = (2 * 2 * 10 * 4 + 8) * 4
    cache = PromptCache(size=10, max_bytes=2.5 * nbytes)
    for ids in ([1], [2], [3]):
        assert cache.put(ids, **one).nbytes == nbytes
    assert [1] not in cache and len(cache) == 2 and cache.bytes == 2 * nbytes
    big = {"keys": [torch.zeros(1, 2, 30, 4)], "values": [torch.zeros(1, 2, 30, 4)], "logits": torch.zeros(1, 1, 8)}
    cache.put([4], **big)  # larger than the whole bound: not kept, nothing evicted for it
    assert [4] not in cache and len(cache) == 2


def test_the_settings_turn_it_on_and_off(engine):
    cache = {"cache.enable_prompt_cache": True, "cache.prompt_cache_size": 3, "cache.max_cache_size_gb": 0.5}
    on = Tempo(engine.loaded, load_settings(overrides=cache))
    assert on.prompt_cache.size == 3 and on.prompt_cache.max_bytes == 2 ** 29
    assert Tempo(engine.loaded, load_settings(overrides={**cache, "cache.prompt_cache_size": 0})).prompt_cache is None
    off = Tempo(engine.loaded, load_settings(overrides={**cache, "cache.enable_prompt_cache": False}))
    assert off.prompt_cache is None
    _, first = counted(off, lambda: off.generate(PROMPT, max_tokens=4, min_steps=4))
    _, second = counted(off, lambda: off.generate(PROMPT, max_tokens=4, min_steps=4, selection_threshold=0.2))
    assert first == second == 4  # the prefill and three step forwards, both times


def test_the_scheduler_reuses_the_cache(engines):
    engine = engines["llama"]
    cached, plain = Tempo(engine.loaded), Tempo(engine.loaded)
    cached.prompt_cache = PromptCache()
    scheduler = Scheduler(cached, max_batch_size=4)
    try:
        first = scheduler.submit(cached.request(PROMPT, selection_threshold=0.05, max_tokens=6)).wait(60)
        request = cached.request(PROMPT, selection_threshold=0.2, max_tokens=6, min_steps=6)
        before = cached.adapter.forward_calls
        second = scheduler.submit(request).wait(60)
        assert cached.adapter.forward_calls - before == 5  # five step forwards for six steps, no prefill
    finally:
        scheduler.close()
    assert first.steps and cached.prompt_cache.stats()["hits"] == 1
    assert_same(second, plain.run([request])[0])


def test_a_tree_search_reuses_the_cache(pair):
    cached, plain = pair
    cached.generate(PROMPT, max_tokens=2)
    search = dict(mode="mcts", max_tokens=3, mcts_simulations=4, mcts_depth=2, temperature=0.0)
    result, calls = counted(cached, lambda: cached.generate(PROMPT, **search))
    reference, reference_calls = counted(plain, lambda: plain.generate(PROMPT, **search))
    assert calls == reference_calls - 1 and cached.prompt_cache.stats()["hits"] == 1
    assert_same(result, reference)
    # and a search stores its prefill for the next run
    cached.generate(OTHER, **search)
    assert cached.prompt_cache.stats()["misses"] == 2
    batch = Batch(cached.adapter, cached.loaded.tokenizer, cached.eos_ids, cached.pad_id,
                  prompt_cache=cached.prompt_cache)
    _, calls = counted(cached, lambda: batch.add([cached.request(OTHER)]))
    assert calls == 0


@pytest.mark.slow
def test_compare_prefills_the_prompt_once(pair):
    cached, plain = pair
    prefills = []
    original = cached.adapter.forward

    def spy(input_ids, position_ids, mask, cache, **options):
        if cache is None:
            prefills.append(input_ids.shape[0])
        return original(input_ids, position_ids, mask, cache, **options)

    cached.adapter.forward = spy
    try:
        results = cached.compare(PROMPT, max_tokens=4, mcts_simulations=3)
    finally:
        del cached.adapter.forward
    assert prefills == [1]  # one row, for the three batched modes; the search takes it from the cache
    assert cached.prompt_cache.stats() | {"bytes": 0} == {"entries": 1, "bytes": 0, "hits": 1, "misses": 1,
                                                          "evictions": 0, "size": 16,
                                                          "max_bytes": 2 * 1024 ** 3}
    references = plain.compare(PROMPT, max_tokens=4, mcts_simulations=3)
    for mode in references:
        assert_same(results[mode], references[mode], atol=1e-6)  # one row prefilled, not three: float noise


@pytest.fixture(scope="module")
def arch_pairs(tmp_path_factory):
    """Sliding-window and latent-attention models: (with a prompt cache, without) on one model each."""
    from tempo.models.loading import load_model
    from helpers import save_tiny

    root = tmp_path_factory.mktemp("prompt_cache_architectures")
    pairs = {}
    for kind in ARCHITECTURES:
        loaded = load_model(str(save_tiny(root / kind, kind)))
        cached, plain = Tempo(loaded), Tempo(loaded)
        cached.prompt_cache = PromptCache()
        pairs[kind] = cached, plain
    return pairs


ARCHITECTURES = ["mistral", "qwen2_sliding", "deepseek_v2"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_windowed_and_latent_attention_models_reuse_the_cache(arch_pairs, kind):
    """Past the sliding window (6) the engine keeps a full cache with each slot's position id; a held
    prompt's cache carries them too. Latent attention's keys and values differ in width."""
    cached, plain = arch_pairs[kind]
    assert supports(cached.adapter)
    cached.generate(PROMPT, max_tokens=2)
    again = dict(selection_threshold=0.1, max_tokens=10, min_steps=10)
    second, calls = counted(cached, lambda: cached.generate(PROMPT, **again))
    reference, reference_calls = counted(plain, lambda: plain.generate(PROMPT, **again))
    assert calls == reference_calls - 1
    assert_same(second, reference)
    requests = [cached.request(p, **again) for p in ("bird", PROMPT, OTHER)]
    for result, reference in zip(cached.run(requests), plain.run(requests)):
        assert_same(result, reference, atol=1e-6)
    search = dict(mode="mcts", max_tokens=3, mcts_simulations=4, mcts_depth=2, temperature=0.0)
    # OTHER is held from the batch above, prefilled beside a shorter prompt: float noise again
    assert_same(cached.generate(OTHER, **search), plain.generate(OTHER, **search), atol=1e-6)


def test_a_cache_of_the_library_s_sliding_layers_is_not_kept():
    from transformers import MistralConfig

    sliding = MistralConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, sliding_window=8)
    # an adapter that left the window to the library's sliding cache layers: no prompt cache
    assert not supports(SimpleNamespace(windows={}, model=SimpleNamespace(config=sliding)))
