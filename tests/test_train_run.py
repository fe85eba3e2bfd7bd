"""Short training runs on a tiny model: the loss falls, the model reloads and runs TEMPO, resume continues."""
import json

import pytest
import torch
import yaml

from tempo.train.config import TrainConfig, TrainConfigError, resolve_config
from tempo.train.data import prepare
from tempo.train.trainer import CHECKPOINT_FILE, load_checkpoint, train
from train_corpus import SMALL_MODEL, write_corpus


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = resolve_config({}, {}, {**SMALL_MODEL, "corpus_dir": str(write_corpus(root / "corpus")),
                                     "data_dir": str(root / "data"), "val_fraction": 0.2})
    prepare(config)
    return root / "data"


def run_config(data_dir, tmp_path, **values):
    base = {**SMALL_MODEL, "data_dir": str(data_dir), "output_dir": str(tmp_path / "model"),
            "checkpoint_dir": str(tmp_path / "ckpt"), "learning_rate": 1e-2, "warmup_steps": 2, "batch_size": 4,
            "grad_accumulation_steps": 1, "max_steps": 24, "eval_interval": 4, "eval_batches": 2,
            "checkpoint_interval": 8, "model_name": "test-model"}
    return resolve_config({}, {}, {**base, **values})


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trained")
    config = run_config(data_dir, tmp_path)
    return config, train(config, progress=False)


def test_a_few_steps_lower_the_loss(trained):
    _, summary = trained
    history = summary["history"]
    assert [h["step"] for h in history] == [4, 8, 12, 16, 20, 24]
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.5
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert summary["steps"] == 24 and summary["tokens_seen"] == 24 * 4 * 32
    assert summary["tokens_per_s"] > 0


def test_saved_model_reloads_and_generates_with_tempo(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    config, summary = trained
    out = config.path("output_dir")
    assert (out / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM"
    ids = tokenizer("def read_config(path):", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], model.config.vocab_size)
    result = Tempo(load_model(str(out))).generate("def read_config(path):", max_tokens=8, selection_threshold=0.1)
    assert result.text and len(result.steps) >= 1
    card = (out / "README.md").read_text()
    assert "unigram baseline" in card and f"{summary['val_loss']:.4f}" in card
    saved = json.loads((out / "training_summary.json").read_text())
    assert saved["steps"] == 24 and saved["data"]["train_file_count"] > 0
    assert TrainConfig(**yaml.safe_load((out / "training_config.yaml").read_text())) == config


def test_resume_continues_from_the_checkpoint_step(data_dir, tmp_path):
    first = train(run_config(data_dir, tmp_path, max_steps=8), progress=False)
    checkpoint = load_checkpoint(tmp_path / "ckpt" / CHECKPOINT_FILE)
    assert checkpoint["state"]["step"] == 8
    resumed = train(run_config(data_dir, tmp_path, max_steps=12, resume=True), progress=False)
    assert resumed["resumed_from_step"] == 8 and resumed["steps"] == 12
    assert resumed["tokens_seen"] == 12 * 4 * 32
    assert [h["step"] for h in resumed["history"]] == [4, 8, 12]  # history carried over from the checkpoint
    assert resumed["history"][:2] == first["history"]


def test_resume_refuses_a_different_model(data_dir, tmp_path):
    train(run_config(data_dir, tmp_path, max_steps=2), progress=False)
    with pytest.raises(TrainConfigError, match=r"cannot resume: the checkpoint's model differs \(d_model"):
        train(run_config(data_dir, tmp_path, max_steps=4, resume=True, d_model=64), progress=False)


def test_init_from_fine_tunes_a_saved_model(data_dir, trained, tmp_path):
    config, _ = trained
    summary = train(run_config(data_dir, tmp_path, stage="code", init_from=str(config.path("output_dir")),
                               max_steps=2, warmup_steps=1), progress=False)
    assert summary["steps"] == 2
    assert summary["history"][0]["val_loss"] < 5.0  # starts trained, not from ln(vocab) ~ 5.8


def test_init_from_a_missing_folder_is_a_clear_error(data_dir, tmp_path):
    with pytest.raises(TrainConfigError, match="init_from: cannot load a model from '/no/such/model'"):
        train(run_config(data_dir, tmp_path, init_from="/no/such/model", max_steps=1), progress=False)


def test_amp_and_gradient_checkpointing_run(data_dir, tmp_path):
    summary = train(run_config(data_dir, tmp_path, max_steps=2, use_amp=True, gradient_checkpointing=True),
                    progress=False)
    assert summary["steps"] == 2 and summary["val_loss"] == summary["val_loss"]  # finite, not NaN


def test_use_compile_compiles_the_model(data_dir, tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    train(run_config(data_dir, tmp_path, max_steps=1, use_compile=True), progress=False)
    assert len(compiled) == 1


@pytest.mark.parametrize("values", [dict(use_rmsnorm=False, use_rope=True), dict(use_rmsnorm=False, use_rope=False)])
def test_other_architectures_train_and_save(data_dir, tmp_path, values):
    from transformers import AutoModelForCausalLM

    config = run_config(data_dir, tmp_path, max_steps=2, **values)
    train(config, progress=False)
    assert AutoModelForCausalLM.from_pretrained(config.path("output_dir")).config.model_type in ("gpt_neox", "gpt2")


def test_command_line_prepare_then_train(tmp_path, capsys):
    from tempo.cli.main import main

    corpus = write_corpus(tmp_path / "corpus")
    model = ["--vocab-size", "300", "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--d-ff", "64",
             "--max-seq-len", "32", "--data-dir", str(tmp_path / "data")]
    assert main(["train", "prepare", "--corpus-dir", str(corpus), "--file-patterns", "*.py",
                 "--exclude-dirs", "skipped,pkg", "--val-fraction", "0.3", "--min-frequency", "1", *model]) == 0
    prepared = json.loads(capsys.readouterr().out)
    assert prepared["seq_length"] == 32 and prepared["train_files"] + prepared["val_files"] == 6
    assert main(["train", *model, "--max-steps", "2", "--batch-size", "2", "--num-threads", "1", "--quiet",
                 "--no-use-amp", "--output-dir", str(tmp_path / "model"),
                 "--checkpoint-dir", str(tmp_path / "ckpt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and (tmp_path / "model" / "model.safetensors").exists()
