"""``train prepare``: array shape and dtype, a split by file without overlap, tokenizer, batches, schedule."""
import json

import numpy as np
import pytest

from tempo.train.config import SPECIAL_TOKENS, TrainDataError, resolve_config
from tempo.train.data import (batch_indices, corpus_files, default_corpus_dir, epochs_to_steps, load_prepared,
                              prepare, split_files, unigram_loss)
from tempo.train.trainer import get_lr
from train_corpus import SMALL_MODEL, write_corpus


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    corpus = write_corpus(root / "corpus")
    config = resolve_config({}, {}, {**SMALL_MODEL, "corpus_dir": str(corpus), "data_dir": str(root / "data"),
                                     "val_fraction": 0.2, "exclude_dirs": ["skipped"]})
    meta = prepare(config)
    return config, meta, root


def test_arrays_have_the_promised_shape_and_dtype(prepared):
    config, meta, root = prepared
    data = load_prepared(config)
    for array, n in ((data.train, meta["train_sequences"]), (data.val, meta["val_sequences"])):
        assert array.dtype == np.int32
        assert array.ndim == 2 and array.shape == (n, config.max_seq_len) and n > 0
        assert 0 <= array.min() and array.max() < len(data.tokenizer)
    assert json.loads((root / "data" / "meta.json").read_text())["seq_length"] == config.max_seq_len


def test_split_is_by_file_and_does_not_overlap(prepared):
    config, meta, root = prepared
    train, val = set(meta["train_files"]), set(meta["val_files"])
    assert train and val and not train & val
    assert len(train | val) == len(list((root / "corpus").rglob("*.py"))) - 1  # all but the excluded file
    assert "skipped/ignored.py" not in train | val  # excluded folder
    data = load_prepared(config)
    train_rows = {row.tobytes() for row in np.asarray(data.train)}
    assert not any(row.tobytes() in train_rows for row in np.asarray(data.val))


def test_split_is_stable_when_files_are_added(tmp_path):
    files = [tmp_path / f"m{i}.py" for i in range(40)]
    train, val = split_files(files, tmp_path, 0.25)
    more_train, more_val = split_files(files + [tmp_path / f"n{i}.py" for i in range(10)], tmp_path, 0.25)
    assert set(val) <= set(more_val) and set(train) <= set(more_train)


def test_tokenizer_has_the_seeds_special_tokens_and_round_trips(prepared):
    config, meta, _ = prepared
    tokenizer = load_prepared(config).tokenizer
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(len(SPECIAL_TOKENS))] == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<bos>", "<eos>")
    text = "def read_config(path):\n    with open(path) as f:\n        return f.read()  # ünïcode\n"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_default_corpus_is_this_pythons_standard_library():
    files = corpus_files(default_corpus_dir(), ["*.py"], ["site-packages", "test", "tests"], max_files=5)
    assert len(files) == 5 and all(f.suffix == ".py" for f in files)
    assert (default_corpus_dir() / "os.py").exists()


def test_too_few_files_is_a_clear_error(tmp_path):
    (tmp_path / "only.py").write_text("x = 1\n")
    with pytest.raises(TrainDataError, match="holds 1 file"):
        corpus_files(tmp_path, ["*.py"], [])


def test_unigram_baseline_is_the_entropy_of_the_token_frequencies():
    train = np.array([[0, 0, 1, 1]], dtype=np.int32)
    assert unigram_loss(train, np.array([[0, 1]]), vocab_size=2) == pytest.approx(np.log(2))


def test_batches_cover_an_epoch_once_and_repeat_on_resume():
    n, bs = 10, 3
    epoch = np.concatenate([batch_indices(m, n, bs, seed=1) for m in range(3)])
    assert len(set(epoch.tolist())) == 9  # one shuffled pass, the tail of 1 dropped
    assert not np.array_equal(batch_indices(0, n, bs, 1), batch_indices(3, n, bs, 1))  # next epoch: new order
    assert np.array_equal(batch_indices(4, n, bs, 1), batch_indices(4, n, bs, 1))
    assert epochs_to_steps(10, resolve_config({}, {}, {"batch_size": 3, "grad_accumulation_steps": 2,
                                                        "num_epochs": 2})) == 3


@pytest.mark.parametrize("decay", ["cosine", "linear", "constant"])
def test_learning_rate_warms_up_then_decays(decay):
    config = resolve_config({}, {}, {"learning_rate": 1e-3, "warmup_steps": 10, "lr_decay": decay,
                                     "min_lr_ratio": 0.1})
    lrs = [get_lr(step, config, 100) for step in range(101)]
    assert lrs[0] < lrs[5] < lrs[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(1e-3 if decay == "constant" else 1e-4)
    if decay == "cosine":
        assert lrs[55] == pytest.approx(0.55e-3)
