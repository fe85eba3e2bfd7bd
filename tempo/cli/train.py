"""``python -m tempo train`` and ``python -m tempo train prepare``.

Every TrainConfig field is a flag (``--learning-rate``, ``--use-amp`` / ``--no-use-amp``); unset flags come
from ``--config file.yaml``, the presets, then the ``train`` settings section (see tempo.train.config).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from tempo.train.config import ALIASES, FIELDS, LR_DECAYS, MODEL_PRESETS, STAGE_PRESETS, load_yaml, resolve_config

log = logging.getLogger("tempo.train")

HELP = {
    "model_size": f"model preset: {', '.join(MODEL_PRESETS)}",
    "stage": f"training stage preset: {', '.join(STAGE_PRESETS)} (the seeds' learning rate, warmup, epochs); "
             "tools (SFT on --sft-file) and rlhf (DPO on --preference-file) fine-tune --init-from",
    "lr_decay": f"decay after warmup: {', '.join(LR_DECAYS)}",
    "max_steps": "optimizer steps (0 = num_epochs passes over the data)",
    "grad_clip": "clip the gradient norm to this (0 = off)",
    "num_threads": "torch CPU threads (0 = torch's default)",
    "resume": "continue from checkpoint_dir/last.pt",
    "init_from": "start from this saved model folder instead of a random init (tools, rlhf: or a checkpoint .pt)",
    "data_file": "the training array: a file name inside --data-dir, or a path",
    "val_file": "the validation array: a file name inside --data-dir, or a path",
    "sft_file": "stage tools: JSONL of {\"prompt\", \"completion\"}",
    "preference_file": "stage rlhf: JSONL of {\"prompt\", \"chosen\", \"rejected\"}",
    "dpo_beta": "stage rlhf: DPO's beta (default 0.1)",
    "corpus_dir": "folder of source files to prepare (default: this Python's standard library)",
    "file_patterns": "comma-separated file patterns, e.g. '*.py,*.txt'",
    "exclude_dirs": "comma-separated folder names to skip",
    "seq_length": "tokens a prepared sequence (0 = max_seq_len); tools, rlhf: tokens an example keeps",
    "use_amp": "bfloat16 autocast",
    "use_compile": "torch.compile the model",
}
FLAG_ALIASES = {name: [f"--{alias.replace('_', '-')}"] for alias, name in ALIASES.items()
                if alias not in ("name", "lr", "epochs", "grad_accum")}


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="a YAML file of options (flags override it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    group = p.add_argument_group("options (default: --config, presets, then the [train] settings)")
    for name, f in FIELDS.items():
        flags = [f"--{name.replace('_', '-')}"] + FLAG_ALIASES.get(name, [])
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": HELP.get(name)}
        if f.type == "bool":
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            group.add_argument(*flags, type=kind, **kwargs)


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a small code model (see `train prepare` for the data)",
                       description="Train a small causal LM on prepared data and save it as a Hugging Face model. "
                                   "Run `python -m tempo train prepare` first. --stage tools / rlhf fine-tune "
                                   "--init-from on --sft-file / --preference-file instead (no prepared data).")
    _add_config_flags(p)
    p.set_defaults(handler=run_train)
    stages = p.add_subparsers(dest="train_command", required=False, metavar="{prepare}")
    prep = stages.add_parser("prepare", help="train the tokenizer and tokenize a corpus into NumPy arrays",
                             description="Tokenize a folder of source files (default: this Python's standard "
                                         "library) into train.npy / val.npy of shape (num_sequences, seq_length).")
    _add_config_flags(prep)
    prep.set_defaults(handler=run_prepare)


def config_from_args(args: argparse.Namespace, settings: Any):
    section = settings.train.as_dict()
    yaml_values = load_yaml(args.config) if args.config else {}
    cli_values = {name: getattr(args, name, None) for name in FIELDS}
    return resolve_config(section, yaml_values, cli_values)


def run_prepare(args: argparse.Namespace, settings: Any) -> int:
    from tempo.train.data import prepare

    config = config_from_args(args, settings)
    meta = prepare(config)
    shown = {k: v for k, v in meta.items() if k not in ("train_files", "val_files")}
    print(json.dumps({"data_dir": str(config.path("data_dir")), **shown,
                      "train_files": len(meta["train_files"]), "val_files": len(meta["val_files"])}, indent=1))
    return 0


def run_train(args: argparse.Namespace, settings: Any) -> int:
    from tempo.train.trainer import train

    config = config_from_args(args, settings)
    summary = train(config, progress=not args.quiet)
    shown = {k: v for k, v in summary.items() if k != "history"}
    print(json.dumps({"output_dir": str(config.path("output_dir")), **shown}, indent=1))
    return 0
