"""Rows join a running batch at a step boundary and leave when cancelled, without changing the others."""
from tempo.engine.row import build_result
from tempo.engine.batch import Batch
from helpers import alone, same


def test_a_request_joins_a_running_batch(engine):
    first = engine.request("a big red dog ran to the house and", selection_threshold=0.05, max_tokens=10, min_steps=10)
    second = engine.request("bird", selection_threshold=0.1, max_tokens=6, min_steps=6, repetition_penalty=1.2,
                            allow_intraset_token_visibility=True)
    third = engine.request("the cat sat on the mat and the dog sat on the rug", max_tokens=4, min_steps=4, temperature=0.0)
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    batch.add([first], keys=["first"])
    for _ in range(3):
        batch.step()
    batch.add([second, third], keys=["second", "third"])  # shorter and longer prompts than the cache
    assert len(batch.rows) == 3
    while batch.rows:
        batch.step()
    results = {row.key: build_result(row, engine.loaded.tokenizer, engine.loaded.info()) for row in batch.finished}
    for key, request in (("first", first), ("second", second), ("third", third)):
        same(results[key], alone(engine, request))
    assert any(len(s.candidates) > 1 for s in results["first"].steps)


def test_cancelling_one_row_leaves_the_other_unchanged(engine):
    keep = engine.request("the cat sat on the", selection_threshold=0.05, max_tokens=8, min_steps=8)
    drop = engine.request("a big red dog ran to the house and", selection_threshold=0.05, max_tokens=8,
                          min_steps=8)
    steps_seen = []
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id,
                  on_step=lambda row: steps_seen.append((row.key, len(row.token_sets))))
    batch.add([keep, drop], keys=["keep", "drop"])
    batch.step()
    batch.step()
    assert batch.cancel("drop") and not batch.cancel("nobody")
    while batch.rows:
        batch.step()
    rows = {row.key: row for row in batch.finished}
    assert rows["drop"].stop_reason == "cancelled" and len(rows["drop"].token_sets) == 2
    same(build_result(rows["keep"], engine.loaded.tokenizer, engine.loaded.info()), alone(engine, keep))
    assert ("keep", 8) in steps_seen and ("drop", 3) not in steps_seen


def test_a_batch_that_never_empties_keeps_a_bounded_cache(engine):
    """A server under steady load: rows join and leave and the batch never empties. The slots of rows gone
    (and the padding before the oldest staying row) are dropped, so the cache stays as wide as the rows still
    there need; the rows' results do not change (a pruning row's slots move with the trim)."""
    steady_load(engine)


def test_a_sliding_window_batch_that_never_empties_keeps_a_bounded_cache(tmp_path):
    """The same with sliding-window layers: the cache's position ids (``tempo_positions``) are trimmed too."""
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from helpers import save_tiny

    steady_load(Tempo(load_model(str(save_tiny(tmp_path / "mistral", "mistral")))))


def steady_load(engine):
    prompts = ["the cat sat on the", "a big red dog ran to the house and", "bird", "the sun"]
    variants = [dict(selection_threshold=0.05, max_tokens=6, min_steps=6),
                dict(selection_threshold=0.05, max_tokens=6, min_steps=6, use_retroactive_pruning=True,
                     attention_threshold=0.02),
                dict(mode="default", temperature=0.0, max_tokens=6, min_steps=6)]
    requests = {}
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id)
    widths = []
    for n in range(40):  # a new row every other step, each lives about six steps: the batch never empties
        if n % 2 == 0:
            key = n // 2
            requests[key] = engine.request(prompts[key % len(prompts)], **variants[key % len(variants)])
            batch.add([requests[key]], keys=[key])
        batch.step()
        assert batch.rows
        width = batch.visible.shape[1]
        assert batch.cache.get_seq_length() == width == batch.key_bias.shape[1]
        if hasattr(batch.cache, "tempo_positions"):
            assert batch.cache.tempo_positions.shape == batch.visible.shape
        widths.append(width)
    longest = max(len(r.prompt_ids) for r in batch.rows + batch.finished)
    k = max(r.max_parallel_tokens for r in requests.values())
    # a row lives 6 steps; the rows beside it started at most ~6 steps before it: 2 lifetimes of sets at most
    assert max(widths[10:]) <= longest + 2 * 7 * k, widths
    while batch.rows:
        batch.step()
    for row in batch.finished:
        same(build_result(row, engine.loaded.tokenizer, engine.loaded.info()), alone(engine, requests[row.key]))
