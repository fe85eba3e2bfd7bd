"""Context limits (TEMPO_SPEC section 13, docs/limits.md) and the prefill of long prompts without a [P, P] mask."""
import pytest
import torch
from torch.testing import assert_close

from tempo.engine import layout, prefill
from tempo.engine.adapter import ModelAdapter
from tempo.engine.runner import Tempo
from tempo.errors import RequestError
from tempo.settings.schema import Settings
from helpers import WORDS, build_model, build_tokenizer, same

CONTEXT = 256  # the tiny models' max_position_embeddings (helpers.COMMON)


def words(n: int, start: int = 0) -> str:
    """``n`` words of the tiny vocabulary: ``n`` tokens after the tokenizer's <s>."""
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def old_prefill(adapter, prompts, pad_id):
    """The prefill before the fix: one forward with the whole [B, 1, P, P] mask."""
    input_ids, visible, positions = layout.left_pad(prompts, pad_id)
    return adapter.forward(input_ids, positions, layout.prefill_mask(visible, adapter.dtype), None, last_only=True)


@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2_sliding"])
@pytest.mark.parametrize("lengths", [(23, 9, 17), (21, 21)])
def test_chunked_prefill_equals_the_whole_explicit_mask(kind, lengths):
    """Rows of different lengths (left padding) in chunks of 4 queries, windowed models too (their window is
    applied by position id), and rows without padding on the library's causal path: the same last logits and
    the same cache as one forward with the whole [P, P] mask, to 1e-5."""
    adapter = ModelAdapter(build_model(kind, 64))
    generator = torch.Generator().manual_seed(len(lengths))
    prompts = [torch.randint(4, 64, (n,), generator=generator).tolist() for n in lengths]
    expected_logits, expected_cache = old_prefill(adapter, prompts, 0)
    logits, cache = prefill.prefill(adapter, prompts, 0, chunk=4)
    assert_close(logits, expected_logits, atol=1e-5, rtol=0)
    for got, want in zip(cache.layers, expected_cache.layers):
        assert_close(got.keys, want.keys, atol=1e-5, rtol=0)
        assert_close(got.values, want.values, atol=1e-5, rtol=0)
    if adapter.windows:
        assert torch.equal(cache.tempo_positions, expected_cache.tempo_positions)


def test_prefill_mask_rows_are_the_whole_masks_rows():
    visible = torch.tensor([[False, False, True, True, True], [True, True, True, True, True]])
    whole = layout.prefill_mask(visible, torch.float32)  # [2, 1, 5, 5]
    assert torch.equal(layout.prefill_mask(visible, torch.float32, 1, 4), whole[:, :, 1:4, :4])


def test_a_short_prompt_takes_one_forward_and_a_long_one_never_builds_the_whole_mask(engines, monkeypatch):
    engine = engines["llama"]
    shapes = []
    real = layout.prefill_mask
    monkeypatch.setattr(layout, "prefill_mask", lambda *a, **k: shapes.append(tuple(real(*a, **k).shape)) or
                        real(*a, **k))
    prompts = [list(range(4, 40)), list(range(4, 30))]
    prefill.prefill(engine.adapter, prompts, engine.pad_id)
    assert shapes == [(2, 1, 36, 36)]
    shapes.clear()
    prefill.prefill(engine.adapter, prompts, engine.pad_id, chunk=8)
    assert shapes == [(2, 1, 8, 8), (2, 1, 8, 16), (2, 1, 8, 24), (2, 1, 8, 32), (2, 1, 4, 36)]


def test_a_prompt_over_the_context_is_refused_naming_the_context_and_the_counts(engines):
    engine = engines["llama"]
    with pytest.raises(RequestError) as caught:
        engine.generate(words(250), max_tokens=10)
    assert caught.value.field == "prompt"
    message = str(caught.value)
    assert "251 prompt tokens" in message and "10 (max_tokens)" in message and "261" in message
    assert f"context of {CONTEXT}" in message and "truncate_prompt" in message
    with pytest.raises(RequestError) as check:  # the CLI's --dry-run asks the same question
        engine.check(engine.request(words(250), max_tokens=10))
    assert str(check.value) == message


def test_max_tokens_beyond_the_context_is_refused_naming_max_tokens(engines):
    with pytest.raises(RequestError) as caught:
        engines["llama"].generate("the cat", max_tokens=300)
    assert caught.value.field == "max_tokens" and f"context of {CONTEXT}" in str(caught.value)
    assert "at most 254" in str(caught.value)  # <s> + one prompt token + 254 steps = 256 positions


def test_a_tree_search_counts_its_rollouts(engines):
    engine = engines["llama"]
    request = engine.request(words(245), mode="mcts", max_tokens=4, mcts_simulations=6, mcts_depth=3)
    with pytest.raises(RequestError) as caught:
        engine.run([request])
    assert caught.value.field == "prompt" and "246 prompt tokens + 13" in str(caught.value)
    truncated = engine.run([engine.request(words(245), mode="mcts", max_tokens=4, mcts_simulations=6,
                                           mcts_depth=3, truncate_prompt="left")])[0]
    assert truncated.prompt_truncated == 246 + 13 - CONTEXT and len(truncated.steps) >= 1


def test_truncate_left_drops_the_oldest_tokens_and_says_so(engines):
    engine = engines["llama"]
    fields = dict(max_tokens=12, min_steps=12, selection_threshold=0.05)
    result = engine.generate(words(260), truncate_prompt="left", **fields)
    dropped = 261 + 12 - CONTEXT
    assert result.prompt_truncated == dropped and result.to_dict()["prompt_truncated"] == dropped
    assert result.settings["prompt_tokens"] == CONTEXT - 12 and result.prompt == words(260)
    # The run on the truncated prompt: <s> stays, the oldest words go.
    reference = engine.generate(words(260 - dropped, start=dropped), **fields)
    assert reference.prompt_truncated == 0
    same(result, reference, atol=1e-5)


def test_a_batch_refuses_only_the_row_that_does_not_fit(engines):
    engine = engines["llama"]
    batch = engine.new_batch()
    with pytest.raises(RequestError):
        batch.add([engine.request("the cat", max_tokens=5), engine.request(words(255), max_tokens=5)])
    assert batch.rows == []  # refused before any forward: nothing joined


def test_max_prompt_tokens_and_max_context_come_from_the_settings(engines):
    loaded = engines["llama"].loaded
    engine = Tempo(loaded, Settings().replace({"generation.max_prompt_tokens": 20, "generation.max_context": 64}))
    with pytest.raises(RequestError) as caught:
        engine.generate(words(25), max_tokens=5)
    assert caught.value.field == "prompt" and "26 tokens" in str(caught.value) and "20" in str(caught.value)
    assert "generation.max_prompt_tokens" in str(caught.value)
    with pytest.raises(RequestError) as context:
        engine.generate(words(15), max_tokens=50)
    assert "16 prompt tokens + 50 (max_tokens) = 66 positions exceed the model's context of 64" in str(context.value)
    assert engine.generate(words(15), max_tokens=48).stop_reason in ("eos", "max_tokens")


def test_a_result_without_prompt_truncated_reads_as_none_dropped(engines):
    from tempo.result import GenerationResult

    data = engines["llama"].generate("the cat", max_tokens=2).to_dict()
    data.pop("prompt_truncated")
    assert GenerationResult.from_dict(data).prompt_truncated == 0


def test_build_tokenizer_prepends_bos():  # the truncation tests rely on it
    assert build_tokenizer()("the cat")["input_ids"] == [1, 4, 6]
