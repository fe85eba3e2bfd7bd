"""Placement (tempo/models/placement.py): a device map over CPU and disk through accelerate, quantized
weights through torchao, and the refusals of what this machine or build cannot do. Tokens are checked against
Hugging Face ``generate()`` on the same checkpoint loaded whole."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers import save_tiny
from tempo.engine.runner import Tempo
from tempo.errors import ModelLoadError
from tempo.models.loading import load_from_settings, load_model
from tempo.models.placement import Placement, placement_arguments, tensor_bytes, weight_bytes
from tempo.settings.loader import load_settings

PROMPT = "def read ( path ) :"
STEPS = 10


def hf_greedy(path, prompt: str = PROMPT, steps: int = STEPS) -> list[int]:
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def tempo_greedy(loaded) -> list[int]:
    result = Tempo(loaded).generate(PROMPT, temperature=0.0, max_tokens=STEPS, min_steps=STEPS)
    assert all(len(step.candidates) == 1 for step in result.steps)
    return [step.candidates[0].token_id for step in result.steps]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("mixtral"), "mixtral")


def test_device_map_over_cpu_and_disk_gives_generate_s_tokens(llama_dir, tmp_path):
    """max_memory leaves the CPU room for a few layers only: the rest goes to disk, read back layer by layer
    (accelerate's hooks) under TEMPO's own masks and positions."""
    placement = Placement(device_map="auto", max_memory={"cpu": "200KiB"}, offload_folder=str(tmp_path / "off"))
    loaded = load_model(str(llama_dir), device="cpu", placement=placement)
    placed = loaded.model.hf_device_map
    assert "disk" in placed.values() and "cpu" in placed.values(), placed
    weights = loaded.weights()
    assert weights["weight_bytes"]["offloaded"] > 0 and weights["weight_bytes"]["memory"] > 0
    assert weights["device_map"] == "auto" and weights["max_memory"] == {"cpu": "200KiB"}
    assert loaded.device == torch.device("cpu")
    assert tempo_greedy(loaded) == hf_greedy(llama_dir)


def test_weights_that_change_at_loading_land_in_the_offload_folder(moe_dir, tmp_path):
    """A MoE checkpoint's experts are fused at loading, so transformers cannot read them in place: the
    offloaded ones are written to model.offload_folder (a dense safetensors checkpoint is read in place)."""
    folder = tmp_path / "offload"
    settings = load_settings(overrides={"model.model_id": str(moe_dir), "model.device": "cpu",
                                        "model.device_map": "auto", "model.max_memory": {"cpu": "150KiB"},
                                        "model.offload_folder": str(folder)})
    loaded = load_from_settings(settings)
    written = sorted(p.name for p in folder.iterdir())
    assert any(name.endswith(".safetensors") for name in written), written
    assert tempo_greedy(loaded) == hf_greedy(moe_dir)


def test_int8_weights_generate_and_take_less_memory(llama_dir):
    full = load_model(str(llama_dir), device="cpu")
    quantized = load_model(str(llama_dir), device="cpu", placement=Placement(quantization="int8"))
    weight = quantized.model.model.layers[0].mlp.down_proj.weight
    assert tensor_bytes(weight) < weight.numel() * 4 / 2  # int8 data and per-row scales, not float32
    linear = lambda model: sum(tensor_bytes(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert linear(full.model) >= 2 * linear(quantized.model) * 0.99  # the quantized matrices: at least 2x smaller
    assert weight_bytes(quantized.model)["memory"] < weight_bytes(full.model)["memory"]
    assert quantized.weights()["quantization"] == "int8"
    result = Tempo(quantized).generate(PROMPT, temperature=0.0, max_tokens=STEPS, min_steps=STEPS)
    assert len(result.steps) == STEPS
    # Weight-only int8 keeps the model's choices on this sharp tiny model.
    assert [s.candidates[0].token_id for s in result.steps] == hf_greedy(llama_dir)


def test_int4_weights_on_the_cpu_generate(llama_dir):
    quantized = load_model(str(llama_dir), device="cpu", placement=Placement(quantization="int4"))
    result = Tempo(quantized).generate(PROMPT, temperature=0.0, max_tokens=4, min_steps=4)
    assert len(result.steps) == 4 and quantized.weights()["quantization"] == "int4"


@pytest.mark.parametrize("placement,message", [
    (Placement(quantization="bnb-4bit"), "needs a CUDA device"),
    (Placement(quantization="4bit"), "needs a CUDA device"),
    (Placement(max_memory={"cpu": "1GiB"}), "need model.device_map"),
    (Placement(offload_folder="/tmp/x"), "need model.device_map"),
    (Placement(tp_plan="auto"), "torchrun"),
    (Placement(tp_plan="auto", device_map="auto"), "exclude each other"),
    (Placement(quantization="3bit"), "model.quantization must be one of"),
])
def test_what_cannot_run_here_is_refused_naming_the_setting(placement, message):
    with pytest.raises(ModelLoadError, match=message):
        placement_arguments(placement, torch.device("cpu"))


def test_a_device_map_table_from_the_settings(llama_dir, tmp_path):
    """A layer map as a settings table: the decoder layers and the head on disk, the rest on the CPU."""
    table = {"model.embed_tokens": "cpu", "model.layers": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu",
             "lm_head": "disk"}
    settings = load_settings(overrides={"model.model_id": str(llama_dir), "model.device": "cpu",
                                        "model.device_map": table, "model.offload_folder": str(tmp_path)})
    loaded = load_from_settings(settings)
    assert loaded.model.hf_device_map == table
    assert tempo_greedy(loaded) == hf_greedy(llama_dir)


def test_info_estimates_the_quantized_weights(llama_dir, capsys):
    """``info --quantization int8`` (config and safetensors header only): the linear layers at one byte."""
    import json

    from tempo.cli.main import main

    assert main(["info", "--model", str(llama_dir), "--dtype", "float32", "--compact"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["info", "--model", str(llama_dir), "--dtype", "float32", "--quantization", "int8", "--compact"]) == 0
    int8 = json.loads(capsys.readouterr().out)
    embedding = full["vocab_size"] * full["hidden_size"]
    assert full["memory"]["weights_bytes"] == full["parameters"] * 4 and full["quantization"] is None
    assert int8["quantization"] == "int8"
    assert int8["memory"]["weights_bytes"] == (full["parameters"] - embedding) * 1 + embedding * 4


def test_health_reports_the_weights(llama_dir):
    """/health names the quantization and the bytes the weights hold."""
    from tempo.serve.rest import health_report
    from tempo.serve.scheduler import Scheduler

    quantized = load_model(str(llama_dir), device="cpu", placement=Placement(quantization="int8"))
    engine = Tempo(quantized)
    scheduler = Scheduler(engine)
    try:
        report = health_report(engine, scheduler)
    finally:
        scheduler.close()
    assert report["weights"]["quantization"] == "int8"
    assert report["weights"]["weight_bytes"] == weight_bytes(quantized.model)
