"""The layer view (TEMPO_SPEC section 12): every layer's distribution equals ``softmax(lm_head(norm(h_l)))`` read
from a Hugging Face forward with ``output_hidden_states`` (Llama, Qwen2 and a mixture-of-experts model),
``exit_layer`` on constructed cases, the contexts of a result's step, and the refusal of other models."""
import pytest
import torch
from torch.testing import assert_close

from tempo.engine.lens import exit_layer
from tempo.errors import RequestError, TempoError
from helpers import build_model, build_tokenizer

PROMPT = "the cat sat on the"
ARCHITECTURES = ("llama", "qwen2", "qwen2_moe", "mistral", "mixtral", "deepseek_v2")
"""Llama, Qwen2 and an MoE as the issue asks, and the other families the engine runs (sliding window, MLA)."""


def tiny_engine(kind: str, seed: int = 0):
    from tempo.engine.runner import Tempo
    from tempo.models.loading import LoadedModel

    tokenizer = build_tokenizer()
    model = build_model(kind, len(tokenizer), seed=seed)
    return Tempo(LoadedModel(model, tokenizer, f"tiny-{kind}", torch.device("cpu"), torch.float32))


@pytest.fixture(scope="module")
def lens_engines():
    return {kind: tiny_engine(kind) for kind in ARCHITECTURES}


def reference(engine, ids: list[int]) -> torch.Tensor:
    """``[L, V]``: softmax(lm_head(norm(hidden_states[l]))) at the last position, l = 1 ... L, from the library's
    own forward. Its ``hidden_states[L]`` is already normed (it is ``last_hidden_state``), so layer L is
    softmax of the model's own logits."""
    model = engine.loaded.model
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        hs = out.hidden_states
        layers = [model.lm_head(model.model.norm(hs[l][0, -1])) for l in range(1, len(hs) - 1)]
        layers.append(out.logits[0, -1])
        assert_close(model.lm_head(hs[-1][0, -1]), out.logits[0, -1])  # what the reference relies on
    return torch.softmax(torch.stack(layers).float(), dim=-1)


def check_view(view: dict, probs: torch.Tensor, top_k: int) -> None:
    assert [layer["layer"] for layer in view["layers"]] == list(range(1, probs.shape[0] + 1))
    for layer, expected in zip(view["layers"], probs):
        values, ids = expected.topk(top_k)
        assert [t["token_id"] for t in layer["top"]] == ids.tolist()
        assert_close(torch.tensor([t["probability"] for t in layer["top"]]), values, atol=1e-5, rtol=0)
    assert view["exit_layer"] == exit_layer(probs.argmax(-1).tolist())


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_every_layer_equals_the_logit_lens_of_a_hf_forward(lens_engines, kind):
    engine = lens_engines[kind]
    ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    view = engine.lens(PROMPT, top_k=4).to_dict()
    probs = reference(engine, ids)
    assert probs.shape[0] == engine.adapter.num_layers
    check_view(view, probs, 4)
    assert view["candidates"] == [] and view["step"] is None
    # the last layer is the model's own next-token distribution
    assert view["layers"][-1]["top"][0]["token_id"] == int(engine.loaded.model(torch.tensor([ids])).logits[0, -1].argmax())


def test_a_step_reads_each_kept_candidate_of_the_step_before(lens_engines):
    engine = lens_engines["llama"]
    result = engine.generate(PROMPT, max_tokens=8, temperature=1.0, selection_threshold=0.05, min_steps=8)
    step = next(s.step for s in result.steps[1:] if len(result.steps[s.step - 1].kept) >= 2)
    view = engine.lens(result=result, step=step, top_k=3).to_dict()
    ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    path = [s.kept[0].token_id for s in result.steps[:step - 1]]
    before = result.steps[step - 1].kept
    assert [c["token_id"] for c in view["candidates"]] == [c.token_id for c in before]
    assert [c["text"] for c in view["candidates"]] == [c.text for c in before]
    for candidate, shown in zip(before, view["candidates"]):
        check_view(shown, reference(engine, ids + path + [candidate.token_id]), 3)
    assert view["layers"] == view["candidates"][0]["layers"]  # the top candidate's view on top
    # step 0 reads the prompt's end
    assert engine.lens(result=result, step=0, top_k=3).to_dict()["layers"] == engine.lens(PROMPT, top_k=3).to_dict()["layers"]


def test_exit_layer_by_hand():
    assert exit_layer([4, 4, 4]) == 1
    assert exit_layer([9, 4, 4]) == 2
    assert exit_layer([4, 9, 4]) == 3  # agreeing early, then not: the later disagreement counts
    assert exit_layer([7]) == 1


def test_exit_layer_of_constructed_models():
    """Layers whose outputs add nothing to the residual stream predict what the layer before predicts: with every
    layer silenced all layers read the embedding (exit 1); with only the last silenced, the model could have
    stopped one layer earlier."""
    engine = tiny_engine("llama", seed=3)
    model = engine.loaded.model
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    assert engine.lens(PROMPT).to_dict()["exit_layer"] == 1
    engine = tiny_engine("qwen2", seed=3)
    model = engine.loaded.model
    with torch.no_grad():
        model.model.layers[-1].self_attn.o_proj.weight.zero_()
        model.model.layers[-1].mlp.down_proj.weight.zero_()
    view = engine.lens(PROMPT).to_dict()
    tops = [layer["top"][0]["token_id"] for layer in view["layers"]]
    assert tops[-1] == tops[-2] and view["exit_layer"] <= len(tops) - 1
    assert view["exit_layer"] == exit_layer(tops)


def test_refused_models_and_bad_values(lens_engines):
    from tempo.engine.adapter import final_norm_and_head

    with pytest.raises(TempoError, match="layer view cannot read bamba"):
        final_norm_and_head(build_model("bamba", 60))
    engine = lens_engines["llama"]
    with pytest.raises(RequestError) as err:
        engine.lens(PROMPT, top_k=0)
    assert err.value.field == "top_k"
    result = engine.generate(PROMPT, max_tokens=3, temperature=0.0)
    with pytest.raises(RequestError) as err:
        engine.lens(result=result, step=7)
    assert err.value.field == "step" and "[0, 2]" in str(err.value)
