"""The fine-tuning stages' data: JSONL examples -> token ids and labels -> padded batches, and the model
they start from (``init_from``: a Hugging Face model folder or one of the trainer's checkpoints).

An example is ``prompt`` followed by a ``completion``: the prompt is encoded as the tokenizer encodes a text
(its ``<bos>`` included), the completion on its own and closed with ``<eos>``. The labels are ``IGNORE`` over
the prompt and the completion's ids over the completion, so the loss covers the completion only.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from tempo.train.config import TrainConfig, TrainConfigError, TrainDataError
from tempo.train.objectives import IGNORE

log = logging.getLogger(__name__)

TOOL_TOKENS = ("<tool_call>", "</tool_call>")
"""The seeds' special tokens that open and close a tool call."""

Encoded = tuple[list[int], list[int]]
"""Token ids and labels of one prompt + completion (same length)."""


def project_path(value: str) -> Path:
    """A path as given, or under the project root when only there (the shipped ``assets/train/...`` files and
    ``assets/models/...`` work from any folder, as ``model.model_id`` does)."""
    from tempo.models.loading import resolve_model_path

    return Path(resolve_model_path(value))


def read_jsonl(path: Path, key: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The records of a JSONL file, each an object with the string ``fields``; errors name ``key`` and the line."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TrainDataError(f"{key}: cannot read {path}: {exc.strerror}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainDataError(f"{key}: {path} line {number} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
            raise TrainDataError(f"{key}: {path} line {number} must be an object with string fields "
                                 f"{', '.join(fields)}")
        records.append({f: record[f] for f in fields})
    if not records:
        raise TrainDataError(f"{key}: {path} holds no examples")
    return records


def encode(tokenizer: Any, prompt: str, completion: str, max_length: int) -> Encoded:
    """Ids and labels of ``prompt + completion + <eos>``, cut to ``max_length`` tokens (the prompt keeps its
    end, the completion its start, and at least one completion token stays)."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    completion_ids = completion_ids[:max_length - 1]
    prompt_ids = prompt_ids[-(max_length - len(completion_ids)):]
    return prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids


def collate(rows: list[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` [B, L] (padding: mask 0, label IGNORE)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(rows):
        ids[row, :len(row_ids)] = torch.tensor(row_ids)
        labels[row, :len(row_labels)] = torch.tensor(row_labels)
        mask[row, :len(row_ids)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def add_tool_tokens(tokenizer: Any, model: torch.nn.Module) -> list[str]:
    """Add ``<tool_call>`` / ``</tool_call>`` as special tokens where the tokenizer lacks them and grow the
    embeddings to the tokenizer's size; the tokens added."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in TOOL_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
        log.info("added the special tokens %s to the tokenizer (%d tokens now)", " ".join(missing), len(tokenizer))
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    return missing


def load_start(config: TrainConfig) -> tuple[torch.nn.Module, Any]:
    """The model and tokenizer of ``init_from``: a model folder (save_pretrained), or a checkpoint file of this
    trainer (``checkpoint_dir/last.pt``) with the tokenizer prepared in ``data_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = project_path(config.init_from)
    try:
        if source.is_file():
            return _from_checkpoint(source, config)
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainConfigError(f"init_from: cannot load a model from {config.init_from!r}: {reason}") from None
    if tokenizer.eos_token_id is None:
        raise TrainConfigError(f"init_from: the tokenizer of {config.init_from!r} has no eos token to close a "
                               "completion with")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _from_checkpoint(path: Path, config: TrainConfig) -> tuple[torch.nn.Module, Any]:
    from dataclasses import replace

    from transformers import PreTrainedTokenizerFast

    from tempo.train.modeling import build_model

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if "model" not in checkpoint or "model_config" not in checkpoint:
        raise ValueError("not a checkpoint of `python -m tempo train` (no model or model_config)")
    tokenizer_dir = config.path("data_dir") / "tokenizer"
    if not tokenizer_dir.is_dir():
        raise ValueError(f"a checkpoint needs the tokenizer it was trained with; none in {tokenizer_dir} "
                         "(set data_dir to the prepared data of that run)")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    ids = {"pad": tokenizer.pad_token_id, "bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id}
    model = build_model(replace(config, **checkpoint["model_config"]), checkpoint["vocab_size"], ids)
    model.load_state_dict(checkpoint["model"])
    return model, tokenizer
