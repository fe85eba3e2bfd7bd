"""``train prepare``: a folder of source files -> tokenizer + int32 arrays (num_sequences, seq_length).

The split is by file, so no text of a validation file is ever trained on; the
tokenizer is trained on the training files only. Each file becomes
``<bos> tokens <eos>``; the files are concatenated and cut into sequences of
``seq_length`` tokens (the incomplete tail is dropped).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tempo.train.config import SPECIAL_TOKENS, TrainConfig, TrainDataError

log = logging.getLogger(__name__)

META_FILE, TOKENIZER_DIR = "meta.json", "tokenizer"


def array_path(config: TrainConfig, key: str) -> Path:
    """Where the array of ``key`` (data_file or val_file) lies: a bare file name inside data_dir (the seeds'
    ``--data-dir data/processed --data-file code_train_large.npy``), a name with a folder as the path it is."""
    name = Path(getattr(config, key)).expanduser()
    if name.is_absolute() or len(name.parts) > 1:
        return name
    return config.path("data_dir") / name


def load_array(config: TrainConfig, key: str) -> np.ndarray:
    """The array of ``key``, memory-mapped: 2-D, integer token ids (the seeds allow int32 and int64)."""
    path = array_path(config, key)
    if not path.is_file():
        raise TrainDataError(f"{key}: no array at {path}; run `python -m tempo train prepare` with the same "
                             f"--data-dir / --{key.replace('_', '-')}, or name an existing .npy file")
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as exc:
        raise TrainDataError(f"{key}: {path} is not a NumPy array file: {exc}") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer) or len(array) == 0:
        raise TrainDataError(f"{key}: {path} must be a non-empty integer array of shape (num_sequences, "
                             f"seq_length), got {array.dtype} {array.shape}")
    return array


def default_corpus_dir() -> Path:
    """The running interpreter's standard library source: on every machine with Python, offline."""
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path, patterns: list[str], exclude_dirs: list[str], max_files: int = 0) -> list[Path]:
    """Files under ``root`` matching any pattern, outside excluded folder names, sorted by relative path."""
    if not root.is_dir():
        raise TrainDataError(f"corpus_dir: {root} is not a folder")
    excluded = set(exclude_dirs)
    found = {p for pattern in patterns for p in root.rglob(pattern)
             if p.is_file() and not excluded.intersection(p.relative_to(root).parts[:-1])}
    files = sorted(found, key=lambda p: p.relative_to(root).as_posix())
    if max_files:
        files = files[:max_files]
    if len(files) < 2:
        raise TrainDataError(f"corpus_dir: {root} holds {len(files)} file(s) matching {', '.join(patterns)}; "
                             "need at least 2 (one for training, one for validation)")
    return files


def split_files(files: list[Path], root: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    """A stable split by file: a file goes to validation when the hash of its relative path falls below
    ``val_fraction``; adding files to the corpus never moves another file between the splits."""
    def bucket(path: Path) -> float:
        digest = hashlib.sha256(path.relative_to(root).as_posix().encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    val = [p for p in files if bucket(p) < val_fraction]
    train = [p for p in files if bucket(p) >= val_fraction]
    if not val:  # a tiny corpus: take the file with the smallest hash
        val = [min(files, key=bucket)]
        train = [p for p in files if p != val[0]]
    if not train:
        train = [max(files, key=bucket)]
        val = [p for p in files if p != train[0]]
    return train, val


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(texts: list[str], vocab_size: int, min_frequency: int) -> Any:
    """A byte-level BPE trained with ``tokenizers``, wrapped as a ``PreTrainedTokenizerFast``.

    Encoding adds ``<bos>`` in front (as the training files start), decoding restores bytes exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <sep> $B",
                                                       special_tokens=[("<bos>", bos), ("<sep>", tok.token_to_id("<sep>"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        sep_token="<sep>", additional_special_tokens=list(SPECIAL_TOKENS[5:]), clean_up_tokenization_spaces=False,
    )


def encode_files(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """One int32 stream: ``<bos> file <eos>`` for every file in order."""
    encoded = tokenizer(texts, add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    return np.fromiter((t for ids in encoded for t in (*ids, eos)), dtype=np.int32)


def pack(stream: np.ndarray, seq_length: int) -> np.ndarray:
    """``[num_sequences, seq_length]`` int32: consecutive slices of the stream, tail dropped."""
    n = len(stream) // seq_length
    return np.ascontiguousarray(stream[: n * seq_length].reshape(n, seq_length), dtype=np.int32)


def unigram_loss(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of the validation tokens under the training tokens' unigram
    frequencies (add-one smoothed): the loss of a model that ignores context."""
    counts = np.bincount(train.ravel(), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[val.ravel()].mean())


@dataclass
class PreparedData:
    train: np.ndarray  # [N_train, L] int32
    val: np.ndarray    # [N_val, L] int32
    tokenizer: Any
    meta: dict[str, Any]


def prepare(config: TrainConfig) -> dict[str, Any]:
    """Tokenize the corpus into ``config.data_dir``; return the metadata written to meta.json."""
    start = time.time()
    root = config.path("corpus_dir") if config.corpus_dir else default_corpus_dir()
    files = corpus_files(root, config.file_patterns, config.exclude_dirs, config.max_files)
    train_files, val_files = split_files(files, root, config.val_fraction)
    train_texts = [read_text(p) for p in train_files]
    val_texts = [read_text(p) for p in val_files]
    log.info("corpus %s: %d training files, %d validation files", root, len(train_files), len(val_files))
    tokenizer = train_tokenizer(train_texts, config.vocab_size, config.min_frequency)
    seq_length = config.sequence_length
    train = pack(encode_files(tokenizer, train_texts), seq_length)
    val = pack(encode_files(tokenizer, val_texts), seq_length)
    if len(train) == 0 or len(val) == 0:
        raise TrainDataError(f"the corpus is too small for seq_length {seq_length}: {len(train)} training and "
                             f"{len(val)} validation sequences; add files or lower seq_length")
    out = config.path("data_dir")
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"train": array_path(config, "data_file"), "val": array_path(config, "val_file")}
    for kind, array in (("train", train), ("val", val)):
        arrays[kind].parent.mkdir(parents=True, exist_ok=True)
        np.save(arrays[kind], array)
    tokenizer.save_pretrained(out / TOKENIZER_DIR)
    train_bytes = sum(len(t.encode("utf-8")) for t in train_texts)
    meta = {
        "corpus_dir": str(root),
        "corpus": "Python standard library source" if not config.corpus_dir else str(root),
        "python": sys.version.split()[0],
        "file_patterns": config.file_patterns,
        "exclude_dirs": config.exclude_dirs,
        "train_files": [p.relative_to(root).as_posix() for p in train_files],
        "val_files": [p.relative_to(root).as_posix() for p in val_files],
        "train_bytes": train_bytes,
        "arrays": {kind: str(path.resolve()) for kind, path in arrays.items()},
        "vocab_size": len(tokenizer),
        "seq_length": seq_length,
        "train_sequences": int(train.shape[0]),
        "val_sequences": int(val.shape[0]),
        "train_tokens": int(train.size),
        "val_tokens": int(val.size),
        "bytes_per_token": round(train_bytes / max(1, train.size), 3),
        "unigram_val_loss": round(unigram_loss(train, val, len(tokenizer)), 4),
        "prepare_seconds": round(time.time() - start, 1),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    log.info("prepared %s: train %s, val %s, vocab %d, unigram val loss %.3f", out, train.shape, val.shape,
             len(tokenizer), meta["unigram_val_loss"])
    return meta


def load_prepared(config: TrainConfig) -> PreparedData:
    """The arrays (memory-mapped), tokenizer and metadata in ``config.data_dir``."""
    from transformers import PreTrainedTokenizerFast

    data_dir = config.path("data_dir")
    missing = [name for name in (META_FILE, TOKENIZER_DIR) if not (data_dir / name).exists()]
    if missing:
        raise TrainDataError(f"no prepared data in {data_dir} (missing {', '.join(missing)}); "
                             "run `python -m tempo train prepare` first")
    meta = json.loads((data_dir / META_FILE).read_text(encoding="utf-8"))
    train, val = load_array(config, "data_file"), load_array(config, "val_file")
    if train.shape[1] > config.max_seq_len:
        raise TrainDataError(f"prepared sequences have {train.shape[1]} tokens but max_seq_len is "
                             f"{config.max_seq_len}; prepare again with a smaller seq_length")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(data_dir / TOKENIZER_DIR))
    for key, array in (("data_file", train), ("val_file", val)):
        if int(np.min(array)) < 0 or int(np.max(array)) >= len(tokenizer):
            raise TrainDataError(f"{key}: {array_path(config, key)} holds token ids outside [0, {len(tokenizer)}) "
                                 f"of the tokenizer in {data_dir / TOKENIZER_DIR}")
    meta = describe_arrays(meta, config, train, val)
    if len(tokenizer) > config.vocab_size:
        raise TrainDataError(f"the prepared tokenizer has {len(tokenizer)} tokens but vocab_size is "
                             f"{config.vocab_size}; prepare again with this vocab_size")
    return PreparedData(train=train, val=val, tokenizer=tokenizer, meta=meta)


def describe_arrays(meta: dict[str, Any], config: TrainConfig, train: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    """``meta`` with the array counts and unigram baseline of the arrays actually named (data_file, val_file),
    measured again when they are not the ones ``prepare`` wrote."""
    arrays = {kind: str(array_path(config, key).resolve())
              for kind, key in (("train", "data_file"), ("val", "val_file"))}
    written = meta.get("arrays")
    if written is None and (config.data_file, config.val_file) == ("train.npy", "val.npy"):
        return meta  # prepared before the arrays had names: the default names are the ones it wrote
    if written == arrays:
        return meta
    unigram = unigram_loss(np.asarray(train), np.asarray(val), int(meta["vocab_size"]))
    return {**meta, "arrays": arrays, "seq_length": int(train.shape[1]), "train_sequences": int(train.shape[0]),
            "val_sequences": int(val.shape[0]), "train_tokens": int(train.size), "val_tokens": int(val.size),
            "bytes_per_token": "n/a", "unigram_val_loss": round(unigram, 4)}


def batches_per_epoch(num_sequences: int, batch_size: int) -> int:
    return max(1, num_sequences // batch_size)


def batch_indices(micro_step: int, num_sequences: int, batch_size: int, seed: int) -> np.ndarray:
    """Rows of the ``micro_step``-th micro-batch: a fresh seeded shuffle each epoch, so a resumed run
    sees exactly the batches an uninterrupted run would have seen."""
    per_epoch = batches_per_epoch(num_sequences, batch_size)
    epoch, within = divmod(micro_step, per_epoch)
    order = np.random.default_rng(seed + epoch).permutation(num_sequences)
    rows = order[within * batch_size:(within + 1) * batch_size]
    if len(rows) < batch_size:  # fewer sequences than batch_size: repeat
        rows = np.resize(order, batch_size)
    return np.sort(rows)


def epochs_to_steps(num_sequences: int, config: TrainConfig) -> int:
    """Optimizer steps for ``num_epochs`` passes (max_steps wins when set)."""
    if config.max_steps:
        return config.max_steps
    micro = config.num_epochs * batches_per_epoch(num_sequences, config.batch_size)
    return max(1, math.ceil(micro / config.grad_accumulation_steps))
