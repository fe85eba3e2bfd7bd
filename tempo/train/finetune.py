"""Stages 3 and 4 of the seeds: fine-tune ``init_from`` on a JSONL file and save a Hugging Face model folder.

    tools  supervised fine-tuning on {"prompt", "completion"} (sft_file), loss on the completion tokens;
           <tool_call> / </tool_call> become special tokens of the tokenizer when it lacks them
    rlhf   Direct Preference Optimization (Rafailov et al. 2023) on {"prompt", "chosen", "rejected"}
           (preference_file); the reference is the initial model, frozen: its log-probabilities of every pair
           are computed once before the first step (they never change), so no second model stays in memory

Both use the trainer's optimizer, schedule and batching (AdamW, warmup then decay, ``batch_indices``); they
keep no checkpoint (a run is minutes on a small model: run it again instead of ``resume``).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import numpy as np
import torch

from tempo.train.card import write_stage_card
from tempo.train.config import TrainConfig
from tempo.train.data import batch_indices, epochs_to_steps
from tempo.train.examples import add_tool_tokens, collate, encode, load_start, project_path, read_jsonl
from tempo.train.modeling import count_parameters, enable_activation_checkpointing
from tempo.train.objectives import dpo_loss, sequence_logps, sft_loss, token_logps
from tempo.train.trainer import eval_rows

log = logging.getLogger(__name__)


class ToolsStage:
    """Supervised fine-tuning: the mean negative log-likelihood of the completion tokens."""

    file_key, fields, metric = "sft_file", ("prompt", "completion"), "completion_loss"

    def __init__(self, config: TrainConfig, model: torch.nn.Module, tokenizer: Any, device: torch.device,
                 max_length: int):
        self.device, self.pad_id = device, tokenizer.pad_token_id
        records = read_jsonl(project_path(getattr(config, self.file_key)), self.file_key, self.fields)
        self.examples = [encode(tokenizer, r["prompt"], r["completion"], max_length) for r in records]
        self.rows = eval_rows(len(self.examples), config.eval_batches * config.batch_size)  # measured every time

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        return collate([self.examples[r] for r in rows], self.pad_id, self.device)

    def loss(self, forward: Callable, rows: np.ndarray) -> torch.Tensor:
        batch = self.batch(rows)
        logits = forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return sft_loss(logits, batch["labels"])

    @torch.no_grad()
    def measure(self, model: torch.nn.Module, batch_size: int) -> dict[str, float]:
        """The completion loss over ``self.rows``, every completion token weighing the same (model in eval mode)."""
        was_training, total, count, rows = model.training, 0.0, 0, self.rows
        model.eval()
        for start in range(0, len(rows), batch_size):
            batch = self.batch(rows[start:start + batch_size])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            picked, mask = token_logps(logits, batch["labels"])
            total, count = total - float(picked.sum()), count + int(mask.sum())
        model.train(was_training)
        return {self.metric: round(total / max(count, 1), 4)}


class RlhfStage:
    """DPO against the frozen initial model, whose sequence log-probabilities are taken once at the start."""

    file_key, fields, metric = "preference_file", ("prompt", "chosen", "rejected"), "dpo_loss"

    def __init__(self, config: TrainConfig, model: torch.nn.Module, tokenizer: Any, device: torch.device,
                 max_length: int):
        self.device, self.pad_id, self.beta = device, tokenizer.pad_token_id, config.dpo_beta
        records = read_jsonl(project_path(getattr(config, self.file_key)), self.file_key, self.fields)
        self.examples = [(encode(tokenizer, r["prompt"], r["chosen"], max_length),
                          encode(tokenizer, r["prompt"], r["rejected"], max_length)) for r in records]
        self.reference = self.policy_logps(model, np.arange(len(self.examples)), config.batch_size)  # [N, 2]
        # The measured rows' reference, in the batches measure() uses: the same padding, the same numbers, so
        # the margin before the first step is exactly 0.
        self.rows = eval_rows(len(self.examples), config.eval_batches * config.batch_size)
        self.measured_reference = self.policy_logps(model, self.rows, config.batch_size)

    @torch.no_grad()
    def policy_logps(self, model: torch.nn.Module, rows: np.ndarray, batch_size: int) -> torch.Tensor:
        """log pi(chosen | prompt), log pi(rejected | prompt) of ``rows`` under ``model`` in eval mode, [n, 2]."""
        was_training = model.training
        model.eval()
        out = torch.cat([self.logps(model, rows[s:s + batch_size]) for s in range(0, len(rows), batch_size)])
        model.train(was_training)
        return out

    def logps(self, forward: Callable, rows: np.ndarray) -> torch.Tensor:
        """[n, 2]: chosen and rejected of each row, in one forward of 2n sequences."""
        rows_list = [self.examples[r][0] for r in rows] + [self.examples[r][1] for r in rows]
        batch = collate(rows_list, self.pad_id, self.device)
        logits = forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logps = sequence_logps(logits, batch["labels"])  # [2n]
        return torch.stack([logps[:len(rows)], logps[len(rows):]], dim=1)

    def loss(self, forward: Callable, rows: np.ndarray) -> torch.Tensor:
        policy, reference = self.logps(forward, rows), self.reference[torch.as_tensor(rows)]
        losses, _ = dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], self.beta)
        return losses.mean()

    def measure(self, model: torch.nn.Module, batch_size: int) -> dict[str, float]:
        """DPO loss, mean margin and accuracy (share of positive margins) over ``self.rows``."""
        policy, reference = self.policy_logps(model, self.rows, batch_size), self.measured_reference
        losses, margin = dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], self.beta)
        return {self.metric: round(float(losses.mean()), 4), "margin": round(float(margin.mean()), 4),
                "accuracy": round(float((margin > 0).float().mean()), 4)}


STAGES = {"tools": ToolsStage, "rlhf": RlhfStage}


def finetune(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run stage ``config.stage`` (tools or rlhf), save the model to output_dir, return the run's summary."""
    from tempo.train.trainer import autocast_context, pick_device

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    if config.resume:
        log.warning("resume: stage %s keeps no checkpoint; it starts again from init_from", config.stage)
    device = pick_device(config.device)
    model, tokenizer = load_start(config)
    added = add_tool_tokens(tokenizer, model) if config.stage == "tools" else []
    model.to(device).train()
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model)
    autocast, amp_dtype = autocast_context(config, device)
    with autocast():
        stage = STAGES[config.stage](config, model, tokenizer, device, max_length(config, model))
    total_steps = epochs_to_steps(len(stage.examples), config)
    log.info("stage %s from %s: %d examples, %d steps, device %s", config.stage, config.init_from,
             len(stage.examples), total_steps, device)
    with autocast():
        before = stage.measure(model, config.batch_size)
    start = time.time()
    history = _loop(config, model, stage, total_steps, autocast, amp_dtype, device, progress)
    summary = {"stage": config.stage, "init_from": config.init_from, "examples_file": getattr(config, stage.file_key),
               "examples": len(stage.examples), "measured_on": len(stage.rows), "steps": total_steps,
               "train_seconds": round(time.time() - start, 1), "before": before, "after": history[-1],
               "added_tokens": added, "parameters": count_parameters(model), "architecture": model.config.model_type,
               "device": str(device), "threads": torch.get_num_threads(), "history": history}
    save_stage_model(model, tokenizer, config, summary)
    return summary


def max_length(config: TrainConfig, model: torch.nn.Module) -> int:
    """Tokens an example keeps: seq_length when set, never more than the model's context."""
    context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 1024)
    return min(config.seq_length or context, context)


def _loop(config: TrainConfig, model: torch.nn.Module, stage: Any, total_steps: int,
          autocast: Callable, amp_dtype: torch.dtype | None, device: torch.device, progress: bool) -> list[dict]:
    """``total_steps`` optimizer steps; the stage's metrics every eval_interval steps and at the end."""
    from tempo.train.trainer import _progress_bar, get_lr, make_optimizer

    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    forward = torch.compile(model) if config.use_compile else model
    bar, loss_ema, history = _progress_bar(total_steps, 0, progress), None, []
    for step in range(total_steps):
        lr = get_lr(step, config, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for micro in range(config.grad_accumulation_steps):
            batch_rows = batch_indices(step * config.grad_accumulation_steps + micro, len(stage.examples),
                                       config.batch_size, config.seed)
            with autocast():
                loss = stage.loss(forward, batch_rows) / config.grad_accumulation_steps
            scaler.scale(loss).backward()
            step_loss += float(loss.detach())
        if config.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        loss_ema = step_loss if loss_ema is None else 0.9 * loss_ema + 0.1 * step_loss
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_ema:.3f}", lr=f"{lr:.2e}", refresh=False)
        if (step + 1) % config.eval_interval == 0 or step + 1 == total_steps:
            with autocast():
                measured = stage.measure(model, config.batch_size)
            history.append({"step": step + 1, "train_loss": round(loss_ema, 4), **measured, "lr": lr})
            log.info("step %d/%d: %s", step + 1, total_steps, ", ".join(f"{k} {v}" for k, v in history[-1].items()))
    if bar is not None:
        bar.close()
    return history


def save_stage_model(model: torch.nn.Module, tokenizer: Any, config: TrainConfig, summary: dict[str, Any]) -> None:
    """``save_pretrained`` (safetensors) + tokenizer + training config + summary + model card in output_dir."""
    import yaml

    out = config.path("output_dir")
    out.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    (out / "training_summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    write_stage_card(out / "README.md", config, summary)
    log.info("saved %s", out)
