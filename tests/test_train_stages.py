"""Issue 15, the trainer: --data-file / --val-file name the arrays, stage tools (SFT on completions) and stage
rlhf (DPO), each checked against a hand computation or an independent Hugging Face forward."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import ROOT, build_tokenizer, save_tiny
from tempo.train.config import STAGE_PRESETS, TrainConfigError, TrainDataError, resolve_config
from tempo.train.data import load_prepared, prepare
from tempo.train.examples import TOOL_TOKENS, collate, encode, read_jsonl
from tempo.train.objectives import IGNORE, dpo_loss, sequence_logps, sft_loss
from tempo.train.trainer import train
from train_corpus import SMALL_MODEL, TEMPLATE, write_corpus

FAST = dict(warmup_steps=0, batch_size=2, grad_accumulation_steps=1, eval_interval=4, num_threads=1)

SFT = [("the cat sat on", "<tool_call> the mat </tool_call>"), ("a dog ran to", "<tool_call> the house </tool_call>"),
       ("the bird was in", "<tool_call> the tree </tool_call>"), ("the fox jumps over", "the lazy dog")]
PAIRS = [("the cat sat on", "the mat", "the sky"), ("the dog ran to", "the house", "the moon"),
         ("a bird was in", "the tree", "the rug"), ("the fox jumps over", "the lazy dog", "the red sun")]


def write_jsonl(path, rows, keys):
    path.write_text("".join(json.dumps(dict(zip(keys, row))) + "\n" for row in rows))
    return path


def hand_logp(model, ids, labels):
    """sum and count of log p(label) over labelled positions, one position at a time (the reference)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    total, count = 0.0, 0
    for t in range(1, len(ids)):
        if labels[t] != IGNORE:
            total += float(torch.log_softmax(logits[t - 1].double(), -1)[labels[t]])
            count += 1
    return total, count


# --- the pure parts -----------------------------------------------------------------------------------------

def test_dpo_loss_equals_a_hand_computation():
    pc, pr = torch.tensor([-1.0, -2.0, -4.0]), torch.tensor([-3.0, -1.5, -4.0])
    rc, rr = torch.tensor([-1.5, -2.0, -3.0]), torch.tensor([-2.0, -1.0, -5.0])
    losses, margin = dpo_loss(pc, pr, rc, rr, beta=0.1)
    # margins: (-1 + 1.5) - (-3 + 2) = 1.5; (0) - (-0.5) = 0.5; (-1) - (1) = -2
    assert margin.tolist() == pytest.approx([1.5, 0.5, -2.0])
    expected = [-math.log(1 / (1 + math.exp(-0.1 * m))) for m in (1.5, 0.5, -2.0)]
    assert losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert float(dpo_loss(pc, pr, pc, pr, beta=0.5)[0].mean()) == pytest.approx(math.log(2))  # policy = ref


def test_the_label_mask_covers_the_completion_exactly():
    tokenizer = build_tokenizer()
    tokenizer.add_tokens(list(TOOL_TOKENS), special_tokens=True)
    vocab = tokenizer.get_vocab()
    ids, labels = encode(tokenizer, "the cat sat on", "<tool_call> the mat </tool_call>", 64)
    prompt = [vocab["<s>"], vocab["the"], vocab["cat"], vocab["sat"], vocab["on"]]
    completion = [vocab["<tool_call>"], vocab["the"], vocab["mat"], vocab["</tool_call>"], vocab["</s>"]]
    assert ids == prompt + completion
    assert labels == [IGNORE] * 5 + completion
    ids2, labels2 = encode(tokenizer, "the cat sat on", "the mat", 4)  # cut: the prompt keeps its end
    assert ids2 == [vocab["on"], vocab["the"], vocab["mat"], vocab["</s>"]] and labels2 == [IGNORE] + ids2[1:]
    batch = collate([(ids, labels), (ids2, labels2)], 0, torch.device("cpu"))
    assert batch["labels"][1].tolist() == labels2 + [IGNORE] * 6  # padding is not scored either
    assert batch["attention_mask"].tolist() == [[1] * 10, [1] * 4 + [0] * 6]
    assert batch["input_ids"][1].tolist() == ids2 + [0] * 6


def test_the_sft_loss_weighs_completion_tokens_only(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny(tmp_path / "m", "llama")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    rows = [encode(tokenizer, p, c, 64) for p, c in SFT[:3]]
    batch = collate(rows, tokenizer.pad_token_id, torch.device("cpu"))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    logits.requires_grad_(True)
    loss = sft_loss(logits, batch["labels"])
    sums = [hand_logp(model, ids, labels) for ids, labels in rows]
    assert loss.item() == pytest.approx(-sum(s for s, _ in sums) / sum(n for _, n in sums), rel=1e-5)
    assert loss.item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)  # Hugging Face's own masked loss
    loss.backward()
    for row, (ids, labels) in enumerate(rows):
        scored = [t - 1 for t in range(1, len(ids)) if labels[t] != IGNORE]  # logits that predict a completion
        touched = [t for t in range(logits.shape[1]) if logits.grad[row, t].abs().sum() > 0]
        assert touched == scored  # prompt and padding positions get exactly zero gradient
    logps = sequence_logps(logits.detach(), batch["labels"])
    assert logps.tolist() == pytest.approx([s for s, _ in sums], rel=1e-5)


# --- stage tools ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("init") / "llama", "llama")


def test_tools_stage_lowers_the_completion_loss_and_adds_the_call_tokens(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    sft = write_jsonl(tmp_path / "sft.jsonl", SFT, ("prompt", "completion"))
    config = resolve_config({}, {}, {"stage": "tools", "init_from": str(tiny_llama), "sft_file": str(sft),
                                     "output_dir": str(tmp_path / "out"), "learning_rate": 2e-3, "max_steps": 12,
                                     **FAST})
    assert config.weight_decay == 0.01 and STAGE_PRESETS["tools"]["learning_rate"] == 3e-6  # the seeds' stage 3
    summary = train(config, progress=False)
    assert summary["added_tokens"] == list(TOOL_TOKENS)
    out = tmp_path / "out"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == 49
    call = tokenizer("<tool_call>", add_special_tokens=False)["input_ids"]
    assert call == [tokenizer.convert_tokens_to_ids("<tool_call>")]
    # The saved model's completion loss, recomputed token by token, is the summary's and below the start's.
    sums = [hand_logp(model, *encode(tokenizer, p, c, 64)) for p, c in SFT]
    after = -sum(s for s, _ in sums) / sum(n for _, n in sums)
    assert after == pytest.approx(summary["after"]["completion_loss"], abs=1e-3)
    assert after < summary["before"]["completion_loss"] - 0.5
    card = (out / "README.md").read_text()
    assert "stage `tools`" in card and f"{after:.4f}" in card
    assert Tempo(load_model(str(out))).generate("the cat sat on", max_tokens=4, selection_threshold=0.1).text


# --- stage rlhf -----------------------------------------------------------------------------------------------

def test_rlhf_stage_raises_the_margin_over_the_frozen_reference(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prefs = write_jsonl(tmp_path / "prefs.jsonl", PAIRS, ("prompt", "chosen", "rejected"))
    config = resolve_config({}, {}, {"stage": "rlhf", "init_from": str(tiny_llama), "preference_file": str(prefs),
                                     "output_dir": str(tmp_path / "out"), "learning_rate": 5e-4, "max_steps": 8,
                                     **FAST})
    assert config.dpo_beta == 0.1 and STAGE_PRESETS["rlhf"]["learning_rate"] == 1e-6  # the seeds' stage 4
    summary = train(config, progress=False)
    assert summary["before"] == {"dpo_loss": pytest.approx(math.log(2), abs=1e-4), "margin": 0.0, "accuracy": 0.0}
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama)
    margins = []
    for prompt, chosen, rejected in PAIRS:
        c, r = encode(tokenizer, prompt, chosen, 64), encode(tokenizer, prompt, rejected, 64)
        margins.append((hand_logp(policy, *c)[0] - hand_logp(reference, *c)[0])
                       - (hand_logp(policy, *r)[0] - hand_logp(reference, *r)[0]))
    assert np.mean(margins) > 0.1
    assert np.mean(margins) == pytest.approx(summary["after"]["margin"], abs=1e-3)
    assert summary["after"]["dpo_loss"] < math.log(2)
    assert "stage `rlhf`" in (tmp_path / "out" / "README.md").read_text()


def test_stage_errors_name_the_key(tiny_llama, tmp_path):
    with pytest.raises(TrainConfigError, match="init_from"):
        resolve_config({}, {}, {"stage": "tools"})
    with pytest.raises(TrainConfigError, match="dpo_beta"):
        resolve_config({}, {}, {"stage": "rlhf", "init_from": str(tiny_llama), "dpo_beta": 0})
    with pytest.raises(TrainConfigError, match="output_dir must differ"):
        resolve_config({}, {}, {"stage": "rlhf", "init_from": str(tiny_llama), "output_dir": str(tiny_llama)})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(TrainDataError, match="sft_file: .* line 2 .*prompt, completion"):
        read_jsonl(bad, "sft_file", ("prompt", "completion"))


def test_the_shipped_example_files_parse():
    tools = read_jsonl(ROOT / "assets/train/tool_calls.jsonl", "sft_file", ("prompt", "completion"))
    pairs = read_jsonl(ROOT / "assets/train/preferences.jsonl", "preference_file", ("prompt", "chosen", "rejected"))
    assert len(tools) >= 100 and len(pairs) >= 32
    for record in tools:
        assert record["prompt"].startswith("### Tool: ")
        body = record["completion"].removeprefix("<tool_call>").removesuffix("</tool_call>")
        assert json.loads(body)["name"] in record["prompt"]
    assert all(p["chosen"] != p["rejected"] for p in pairs)


def test_the_example_files_are_what_the_script_makes(tmp_path):
    """make_tool_examples reproduces the shipped files on the Python that made them (docs/training.md)."""
    if sys.version.split()[0] != "3.11.7":
        pytest.skip("the shipped files were made with Python 3.11.7's standard library")
    from tempo.train.make_tool_examples import main

    assert main(["--out-dir", str(tmp_path)]) == 0
    for name in ("tool_calls.jsonl", "preferences.jsonl"):
        assert (tmp_path / name).read_text() == (ROOT / "assets/train" / name).read_text()


# --- --data-file / --val-file ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("arrays")
    config = resolve_config({}, {}, {**SMALL_MODEL, "corpus_dir": str(write_corpus(root / "corpus")),
                                     "data_dir": str(root / "data"), "val_fraction": 0.2,
                                     "data_file": "code_train.npy", "val_file": str(root / "elsewhere" / "v.npy")})
    meta = prepare(config)
    return root, config, meta


def test_prepare_writes_the_named_arrays(prepared):
    root, config, meta = prepared
    assert (root / "data" / "code_train.npy").is_file() and (root / "elsewhere" / "v.npy").is_file()
    assert not (root / "data" / "train.npy").exists() and not (root / "data" / "val.npy").exists()
    data = load_prepared(config)
    assert data.meta == meta  # the arrays prepare wrote: its metadata stands
    assert np.array_equal(np.load(root / "elsewhere" / "v.npy"), data.val)


def test_training_reads_the_named_arrays(prepared, tmp_path):
    root, config, _ = prepared
    constant = np.full((16, SMALL_MODEL["max_seq_len"]), 50, dtype=np.int64)  # one token, over and over
    np.save(root / "data" / "constant.npy", constant)
    np.save(tmp_path / "constant_val.npy", constant[:6])
    run = dict(SMALL_MODEL, data_dir=str(root / "data"), checkpoint_dir=str(tmp_path / "ckpt"), learning_rate=1e-2,
               max_steps=24, eval_batches=2, model_name="t", **{**FAST, "batch_size": 4})
    named = train(resolve_config({}, {}, {**run, "data_file": "constant.npy", "output_dir": str(tmp_path / "a"),
                                          "val_file": str(tmp_path / "constant_val.npy")}), progress=False)
    prepared_run = train(resolve_config({}, {}, {**run, "data_file": "code_train.npy", "val_file": config.val_file,
                                                 "output_dir": str(tmp_path / "b")}), progress=False)
    assert named["val_sequences"] == 6 and prepared_run["val_sequences"] == len(np.load(config.val_file))
    assert named["val_loss"] < 0.5 < 2.0 < prepared_run["val_loss"]  # a constant sequence is learnt at once
    saved = json.loads((tmp_path / "a" / "training_summary.json").read_text())["data"]
    assert saved["arrays"] == {"train": str((root / "data" / "constant.npy").resolve()),
                               "val": str((tmp_path / "constant_val.npy").resolve())}
    vocab = load_prepared(config).meta["vocab_size"]  # the baseline, measured again on the named arrays (add-one)
    assert saved["train_tokens"] == constant.size
    unigram = -math.log((constant.size + 1) / (constant.size + vocab))
    assert saved["unigram_val_loss"] == pytest.approx(unigram, abs=1e-4)
    assert "constant.npy" in (tmp_path / "a" / "README.md").read_text()


def test_tools_stage_starts_from_a_checkpoint_with_the_prepared_tokenizer(prepared, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, config, _ = prepared
    first = dict(SMALL_MODEL, data_dir=str(root / "data"), data_file="code_train.npy", val_file=config.val_file,
                 checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "first"), learning_rate=1e-2,
                 max_steps=4, eval_batches=1, **FAST)
    train(resolve_config({}, {}, first), progress=False)
    sft = write_jsonl(tmp_path / "sft.jsonl", [("def read(path):\n", "<tool_call>open(path)</tool_call>")] * 3,
                      ("prompt", "completion"))
    summary = train(resolve_config({}, {}, {**first, "stage": "tools", "init_from": str(tmp_path / "ckpt" / "last.pt"),
                                            "sft_file": str(sft), "output_dir": str(tmp_path / "tools"),
                                            "max_steps": 2}), progress=False)
    assert summary["added_tokens"] == []  # the trainer's tokenizer has the seeds' <tool_call> tokens
    # The checkpoint's weights are the first run's saved model: the loss before the first step is that model's.
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "first")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "first")
    ids, labels = encode(tokenizer, "def read(path):\n", "<tool_call>open(path)</tool_call>", 32)
    assert ids.count(tokenizer.convert_tokens_to_ids("<tool_call>")) == 1
    total, count = hand_logp(model, ids, labels)
    assert summary["before"]["completion_loss"] == pytest.approx(-total / count, abs=1e-3)


def test_a_missing_or_bad_array_names_its_key(prepared, tmp_path):
    root, config, _ = prepared
    base = dict(SMALL_MODEL, data_dir=str(root / "data"), val_file=config.val_file, data_file="code_train.npy")
    with pytest.raises(TrainDataError, match="data_file: no array at .*nope.npy"):
        load_prepared(resolve_config({}, {}, {**base, "data_file": "nope.npy"}))
    np.save(tmp_path / "floats.npy", np.zeros((2, 8), dtype=np.float32))
    with pytest.raises(TrainDataError, match="val_file: .*integer array"):
        load_prepared(resolve_config({}, {}, {**base, "val_file": str(tmp_path / "floats.npy")}))
    np.save(tmp_path / "big.npy", np.full((2, 8), 10_000, dtype=np.int32))
    with pytest.raises(TrainDataError, match="val_file: .*token ids outside"):
        load_prepared(resolve_config({}, {}, {**base, "val_file": str(tmp_path / "big.npy")}))


# --- the seeds' command lines ---------------------------------------------------------------------------------

SEED_DATA_FLAGS = """--data-dir data/processed
--data-file code_train_large.npy
--val-file code_val_large.npy"""
SEED_PREPARE_FLAGS = "--max-length 1024  # During data preparation"
TINY_FLAGS = ["--vocab-size", "320", "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--d-ff", "64",
              "--max-seq-len", "1024", "--num-threads", "1"]


def seed_flags(text: str) -> list[str]:
    """The flags of a seed code block, as a shell would read them (comments dropped)."""
    return [word for line in text.splitlines() for word in line.split("#")[0].split()]


def test_the_seeds_data_command_lines_run(tmp_path, monkeypatch, capsys):
    from tempo.cli.main import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):  # four files of about 4,000 tokens: one validation sequence of 1,024 at least
        (corpus / f"mod{i}.py").write_text("".join(TEMPLATE.format(i=j, name=f"n{j}", cls=f"C{j}") for j in range(20)))
    monkeypatch.chdir(tmp_path)  # the seeds' data/processed is relative to where the command runs
    assert main(["train", "prepare", *seed_flags(SEED_DATA_FLAGS), *seed_flags(SEED_PREPARE_FLAGS), *TINY_FLAGS,
                 "--corpus-dir", "corpus", "--val-fraction", "0.5", "--min-frequency", "1"]) == 0
    assert np.load("data/processed/code_train_large.npy").shape[1] == 1024
    assert np.load("data/processed/code_val_large.npy").shape[1] == 1024
    capsys.readouterr()
    assert main(["train", *seed_flags(SEED_DATA_FLAGS), *TINY_FLAGS, "--max-steps", "2", "--batch-size", "1",
                 "--grad-accumulation-steps", "1", "--eval-batches", "1", "--output-dir", "out",
                 "--checkpoint-dir", "ckpt", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2 and (tmp_path / "out" / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert saved["data"]["arrays"]["train"] == str((tmp_path / "data/processed/code_train_large.npy").resolve())


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_stages_run_from_the_command_line_on_the_shipped_examples(tiny_llama, tmp_path):
    """--stage tools then --stage rlhf on its output, with the shipped example files (the settings' defaults),
    from a folder that is not the project root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TEMPO_LOGGING__ENABLE_FILE_LOGGING": "false"}
    common = ["--max-steps", "2", "--eval-batches", "1", "--num-threads", "1", "--quiet", "--seq-length", "48"]
    for stage, start in (("tools", str(tiny_llama)), ("rlhf", "tools_out")):
        done = subprocess.run([sys.executable, "-m", "tempo", "train", "--stage", stage, "--init-from", start,
                               "--output-dir", f"{stage}_out", *common], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout)
        assert summary["stage"] == stage and summary["examples"] >= 32
        assert summary["examples_file"].startswith("assets/train/")
    assert (tmp_path / "rlhf_out" / "model.safetensors").is_file()
