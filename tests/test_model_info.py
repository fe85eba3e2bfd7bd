"""``python -m tempo info`` / tempo.models.info: layer types per architecture, memory estimates against the
bytes a cache really holds, parameter counts, clear one-line errors on broken configs."""
import json
from types import SimpleNamespace

import pytest
import torch

from tempo.cli.main import main
from tempo.engine import layout
from tempo.engine.adapter import ModelAdapter
from tempo.models.info import ModelInspectionError, allocated_cache_bytes, describe, inspect_model
from helpers import EXPECTED, KINDS, SUPPORTED, WINDOW, build_model, config, save_tiny

VOCAB = 48
SHIPPED = "assets/models/tempo-tiny-code"


@pytest.mark.parametrize("kind", KINDS)
def test_layer_types_and_support(kind):
    info = describe(config(kind, VOCAB))
    supported, groups = EXPECTED[kind]
    assert [(g["type"], g["layers"]) for g in info["layer_types"]] == groups
    assert info["tempo_support"]["supported"] is supported
    for group in info["layer_types"]:
        assert group["honours_tempo_masks"] is not group["mixer"].startswith("mamba")
        assert group["reason"]
    if not supported:
        assert "one after another" in info["tempo_support"]["reason"]


@pytest.mark.parametrize("kind", KINDS)
def test_experts_found_on_the_layers_that_have_them(kind):
    """The config-only reading of mixture-of-experts layers agrees with the model transformers builds."""
    model = build_model(kind, VOCAB)
    layers = model.model.layers
    built = [any("experts" in name for name, _ in layer.named_modules()) for layer in layers]
    info = describe(model.config)
    assert [t.endswith("/moe") for t in info["layer_type_per_layer"]] == built


def prefill(model, n, through_tempo):
    """The cache after a prefill of ``n`` tokens: through ModelAdapter (what TEMPO allocates) or the library."""
    ids = torch.randint(4, VOCAB, (1, n))
    if through_tempo:
        visible = torch.ones(1, n, dtype=torch.bool)
        _, cache = ModelAdapter(model).forward(ids, torch.arange(n)[None], layout.prefill_mask(visible, model.dtype),
                                               None, last_only=True)
        return cache
    with torch.no_grad():
        return model(input_ids=ids, use_cache=True).past_key_values


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_kv_estimate_matches_the_allocated_cache(kind, dtype):
    n = 24
    model = build_model(kind, VOCAB).to(dtype)
    info = describe(model.config, dtype=str(dtype), max_seq_len=n, parallel_tokens=3)
    memory = info["memory"]
    cache = prefill(model, n, through_tempo=kind in SUPPORTED)
    held = allocated_cache_bytes(cache)
    assert held["kv_bytes"] == pytest.approx(memory["kv_bytes_per_token"] * n, rel=0.05)
    assert held["kv_bytes"] == pytest.approx(memory["kv_bytes_at_max_seq_len"], rel=0.05)
    assert held["state_bytes"] == pytest.approx(memory["state_bytes_per_sequence"], rel=0.05)
    assert memory["kv_bytes_with_parallel_tokens"] == memory["kv_bytes_per_token"] * n * 3
    if kind in ("mistral", "qwen2_sliding"):  # the library's own cache keeps window - 1 slots of sliding layers
        native = allocated_cache_bytes(prefill(model, n, through_tempo=False))
        assert native["kv_bytes"] == pytest.approx(memory["kv_bytes_at_max_seq_len_windowed"], rel=0.05)
        assert native["kv_bytes"] < held["kv_bytes"]
    if kind.startswith("deepseek"):  # MLA caches the latent; the decompressed figure is larger
        mla = info["layer_types"][0]
        assert mla["mla_decompressed_bytes_per_token"] > mla["mla_latent_bytes_per_token"]


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_estimate_and_safetensors_count(kind, tmp_path):
    model = build_model(kind, VOCAB)
    real = sum(p.numel() for p in model.parameters())
    assert describe(model.config)["parameters"] == pytest.approx(real, rel=0.05)
    if kind in ("mistral", "deepseek_v2", "bamba"):
        info = inspect_model(str(save_tiny(tmp_path / kind, kind)))
        assert info["parameters_source"] == "safetensors header"
        assert info["parameters"] == sum(p.numel() for p in build_model(kind, info["vocab_size"]).parameters())


def test_info_on_the_shipped_model_through_the_cli(capsys):
    from tempo.models.loading import load_model

    assert main(["info", "--model", SHIPPED, "--max-seq-len", "128", "--parallel-tokens", "3", "--compact"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    loaded = load_model(SHIPPED)
    assert info["parameters"] == loaded.parameters and info["parameters_source"] == "safetensors header"
    assert info["architecture"] == "LlamaForCausalLM" and info["dtype"] == "float32"
    assert [(g["type"], g["count"]) for g in info["layer_types"]] == [("full_attention/multi-head/dense", 4)]
    assert info["tempo_support"]["supported"] and info["tempo_support"]["verified"]
    memory = info["memory"]
    cfg = loaded.model.config
    per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim * 4
    assert memory["kv_bytes_per_token"] == per_token
    assert memory["kv_bytes_with_parallel_tokens"] == per_token * 128 * 3
    assert memory["weights_bytes"] == loaded.parameters * 4
    cache = prefill(loaded.model, 20, through_tempo=True)
    assert allocated_cache_bytes(cache)["kv_bytes"] == pytest.approx(per_token * 20, rel=0.05)
    assert set(memory["formulas"]) >= {"weights_bytes", "kv_bytes_per_token", "kv_bytes_with_parallel_tokens"}


BROKEN = {
    "missing vocab": (lambda c: c.pop("vocab_size"), "config field vocab_size is missing"),
    "missing layers": (lambda c: c.pop("num_hidden_layers"), "config field num_hidden_layers is missing"),
    "more kv heads than heads": (lambda c: c.update(num_key_value_heads=8), "num_key_value_heads (8) is larger"),
    "heads not a multiple": (lambda c: c.update(num_key_value_heads=3), "not a multiple of num_key_value_heads"),
    "hidden not divisible": (lambda c: (c.pop("head_dim"), c.update(hidden_size=250)), "hidden size (250)"),
    "layer_types length": (lambda c: c.update(layer_types=["full_attention"] * 3), "layer_types"),
    "negative vocab": (lambda c: c.update(vocab_size=-3), "vocab_size must be a positive integer"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_config_is_one_clear_line(case, tmp_path, capsys):
    edit, message = BROKEN[case]
    raw = json.loads((__import__("tempo.settings.loader", fromlist=["PROJECT_ROOT"]).PROJECT_ROOT / SHIPPED /
                      "config.json").read_text())
    edit(raw)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert main(["info", "--model", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert "Traceback" not in captured.err and captured.out == ""


def test_missing_folder_and_bad_json(tmp_path, capsys):
    assert main(["info", "--model", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "config.json").write_text('{"vocab_size": ')
    assert main(["info", "--model", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "no such folder" in lines[-2] and "not readable JSON" in lines[-1]


def test_describe_rejects_contradictions_in_a_config_object():
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64)
    cfg.num_key_value_heads = 8
    with pytest.raises(ModelInspectionError, match="num_key_value_heads"):
        describe(cfg)
    cfg.num_key_value_heads = 2
    bare = SimpleNamespace(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
    with pytest.raises(ModelInspectionError, match="vocab_size is missing"):
        describe(bare)
    with pytest.raises(ModelInspectionError, match="max_seq_len"):
        describe(cfg, max_seq_len=10 ** 9)
    with pytest.raises(ModelInspectionError, match="parallel_tokens"):
        describe(cfg, parallel_tokens=0)
    with pytest.raises(ModelInspectionError, match="dtype"):
        describe(cfg, dtype="int3")


def test_sliding_window_layers_are_listed_with_their_window():
    info = describe(config("qwen2_sliding", VOCAB))
    sliding = [g for g in info["layer_types"] if g["mixer"] == "sliding_attention"]
    assert sliding and all(g["sliding_window"] == WINDOW for g in sliding)


def test_model_tab_and_model_info_endpoint_carry_the_inspection(engines):
    """The app's Model tab: the summary line and the layer-type table; /model_info's ``inspection``."""
    from tempo.settings.loader import load_settings
    from tempo.serve.endpoints import Endpoints
    from tempo.serve.scheduler import Scheduler
    from tempo.ui.app import create_demo

    engine = engines["llama"]
    settings = load_settings()
    scheduler = Scheduler(engine)
    try:
        info = Endpoints(scheduler, settings).model_info()
        inspection = info["inspection"]
        assert inspection["parameters"] == info["parameters"] and inspection["parameters_source"] == "loaded model"
        assert [g["type"] for g in inspection["layer_types"]] == ["full_attention/grouped-query/dense"]
        assert inspection["memory"]["parallel_tokens"] == settings.generation.max_parallel_tokens
        demo = create_demo(scheduler, settings)
        ids = {getattr(block, "elem_id", None): block for block in demo.blocks.values()}
        assert "layer-types" in ids and "model-summary" in ids
        assert ids["layer-types"].value["data"][0][0] == "full_attention/grouped-query/dense"
        assert "TEMPO runs this model" in ids["model-summary"].value
    finally:
        scheduler.close()


@pytest.mark.parametrize("name, supported, words", [
    ("Mamba2Config", False, "mamba2 layers"),
    ("Zamba2Config", False, "mamba2 layers"),
    ("FalconH1Config", False, "mamba2 layers"),
    ("Qwen3NextConfig", False, "linear_attention layers"),
    ("Llama4TextConfig", False, "chunked_attention layers"),
    ("Gemma2Config", False, "soft-capping"),
    ("GptOssConfig", False, "attention sinks"),
    ("Gemma3TextConfig", True, "not in TEMPO's tested list"),
    ("Qwen3MoeConfig", True, "tested on a tiny random model"),
])
def test_support_decision_on_default_configs_of_other_families(name, supported, words):
    """Config-only decisions (no model is built): the reason names what TEMPO cannot honour."""
    import transformers

    info = describe(getattr(transformers, name)())
    assert info["tempo_support"]["supported"] is supported and words in info["tempo_support"]["reason"]
    if name == "Mamba2Config":  # (8192 + 2*8*128) * 4 conv * 4 B + 128 heads * 64 * 128 * 4 B, 64 layers
        assert info["memory"]["state_bytes_per_sequence"] == 64 * ((8192 + 2048) * 4 * 4 + 128 * 64 * 128 * 4)
