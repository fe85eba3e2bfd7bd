"""The model card (README.md in the model folder), written from the run's summary and the data's metadata."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tempo.train.config import TrainConfig


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ppl(loss: float | None) -> str:
    return "n/a" if loss is None else f"{math.exp(loss):.1f}"


def model_card(config: TrainConfig, summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The card's Markdown: front matter and introduction, then its sections."""
    return "\n".join([_intro(config), _model_section(config, summary, meta), _data_section(meta),
                      _training_section(config, summary, meta), _results_section(summary, meta),
                      _reproduce_section(config)])


def _intro(config: TrainConfig) -> str:
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [tempo, code, python, tiny]
---

# {config.model_name}

A small causal language model for Python code, trained from scratch by TEMPO's own trainer
(`python -m tempo train`) so that TEMPO has a model that works offline. It writes Python-looking code
and hesitates often, which makes TEMPO's parallel token sets easy to see. It is far too small to write
*correct* code.
"""


def _model_section(config: TrainConfig, summary: dict[str, Any], meta: dict[str, Any]) -> str:
    return f"""## Model

| | |
|---|---|
| architecture | {summary['architecture']} (`{type_name(summary['architecture'])}`), preset `{config.model_size}` |
| parameters | {summary['parameters'] / 1e6:.2f}M ({'tied' if config.tie_embeddings else 'separate'} input/output embeddings) |
| d_model / n_layers / n_heads / d_ff | {config.d_model} / {config.n_layers} / {config.n_heads} / {config.d_ff} |
| context (max_seq_len) | {config.max_seq_len} tokens |
| tokenizer | byte-level BPE, {meta['vocab_size']} tokens, special tokens `<pad> <unk> <bos> <eos> <sep>` … |
"""


def _data_section(meta: dict[str, Any]) -> str:
    return f"""## Data

{meta['corpus']} of Python {meta['python']} (`{', '.join(meta['file_patterns'])}`, without the folders
{', '.join(f'`{d}`' for d in meta['exclude_dirs'])}), split by file: {len(meta['train_files'])} training files,
{len(meta['val_files'])} validation files. {meta['train_tokens']:,} training tokens and {meta['val_tokens']:,}
validation tokens in sequences of {meta['seq_length']} ({meta['bytes_per_token']} bytes a token).
{_arrays_line(meta)}"""


def _arrays_line(meta: dict[str, Any]) -> str:
    arrays = meta.get("arrays")
    return f"Arrays: `{arrays['train']}` (training), `{arrays['val']}` (validation).\n" if arrays else ""


def _training_section(config: TrainConfig, summary: dict[str, Any], meta: dict[str, Any]) -> str:
    minutes = summary["train_seconds"] / 60
    history = "\n".join(f"| {h['step']} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | {h['lr']:.2e} | "
                        f"{h['tokens_per_s']} |" for h in summary.get("history", []))
    return f"""## Training

{summary['steps']} optimizer steps of {config.batch_size} x {config.grad_accumulation_steps} sequences
({summary['tokens_seen']:,} tokens, {summary['tokens_seen'] / max(1, meta['train_tokens']):.2f} epochs) in
{minutes:.1f} minutes on {summary['device']} with {summary['threads']} thread(s), validation included:
{_fmt(summary.get('tokens_per_s'))} training tokens/s. AdamW, peak learning rate {config.learning_rate:g},
{config.warmup_steps} warmup steps, {config.lr_decay} decay to {config.min_lr_ratio:g} x peak, weight decay
{config.weight_decay:g}, gradient clipping {config.grad_clip:g}, seed {config.seed}. The table's validation
loss is measured on {config.eval_batches * config.batch_size} sequences spread over the validation set.

| step | train loss (moving average) | val loss (sample) | lr | tokens/s |
|---|---|---|---|---|
{history}
"""


def _results_section(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    val, unigram = summary.get("val_loss"), meta.get("unigram_val_loss")
    return f"""## Results

| on all {meta['val_tokens']:,} validation tokens | loss (nats/token) | perplexity |
|---|---|---|
| this model | {_fmt(val)} | {_ppl(val)} |
| unigram baseline (training token frequencies) | {_fmt(unigram)} | {_ppl(unigram)} |
"""


def _reproduce_section(config: TrainConfig) -> str:
    return f"""## Reproduce

```bash
python -m tempo train prepare --config {config.output_dir}/training_config.yaml
python -m tempo train --config {config.output_dir}/training_config.yaml
```

`training_config.yaml` in this folder holds every option of the run; `training_summary.json` the numbers above.
"""


def type_name(kind: str) -> str:
    return {"llama": "LlamaForCausalLM", "gpt_neox": "GPTNeoXForCausalLM", "gpt2": "GPT2LMHeadModel"}[kind]


def write_model_card(path: Path, config: TrainConfig, summary: dict[str, Any], meta: dict[str, Any]) -> None:
    path.write_text(model_card(config, summary, meta), encoding="utf-8")


STAGE_TEXT = {
    "tools": ("supervised fine-tuning on tool calls (the seeds' stage 3)",
              "The loss covers the completion tokens only (the prompt's labels are -100); `<tool_call>` and "
              "`</tool_call>` are special tokens of the tokenizer and mark each call.", "completion loss"),
    "rlhf": ("Direct Preference Optimization, Rafailov et al. 2023 (the seeds' stage 4, RLHF without a reward "
             "model)", "The reference is the initial model, frozen; the margin is (log π(chosen) − log "
             "π_ref(chosen)) − (log π(rejected) − log π_ref(rejected)) summed over each completion's tokens, the "
             "accuracy the share of pairs with a positive margin.", "DPO loss"),
}


def stage_card(config: TrainConfig, summary: dict[str, Any]) -> str:
    """The card of a tools or rlhf run: what it started from, the data, the before / after numbers."""
    what, how, metric = STAGE_TEXT[config.stage]
    keys = [k for k in summary["before"]]
    rows = "\n".join(f"| {k} | {_fmt(summary['before'][k])} | {_fmt(summary['after'][k])} |" for k in keys)
    added = ", ".join(f"`{t}`" for t in summary["added_tokens"]) or "none (the tokenizer had them)"
    beta = f", beta {config.dpo_beta:g}" if config.stage == "rlhf" else ""
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [tempo, {config.stage}]
---

# {config.model_name}

`{summary['init_from']}` after stage `{config.stage}` of TEMPO's trainer (`python -m tempo train --stage
{config.stage}`): {what}. {how}

## Model and data

| | |
|---|---|
| architecture | `{summary['architecture']}`, {summary['parameters'] / 1e6:.2f}M parameters |
| started from | `{summary['init_from']}` |
| data | `{summary['examples_file']}`, {summary['examples']} examples |
| tokens added | {added} |

## Training

{summary['steps']} optimizer steps of {config.batch_size} x {config.grad_accumulation_steps} examples in
{summary['train_seconds']} s on {summary['device']}: AdamW, peak learning rate {config.learning_rate:g},
{config.warmup_steps} warmup steps, {config.lr_decay} decay, weight decay {config.weight_decay:g}, gradient
clipping {config.grad_clip:g}{beta}, seed {config.seed}.

## Results

Measured on {summary['measured_on']} examples of the training file ({metric} and the rest), before the first
step and after the last:

| | before | after |
|---|---|---|
{rows}

## Reproduce

```bash
python -m tempo train --config {config.output_dir}/training_config.yaml
```
"""


def write_stage_card(path: Path, config: TrainConfig, summary: dict[str, Any]) -> None:
    path.write_text(stage_card(config, summary), encoding="utf-8")
