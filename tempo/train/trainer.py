"""The training loop: ``train`` drives a ``Run`` (prepare, loop of steps, evaluations and checkpoints, finish)
over small helpers (``get_lr``, ``estimate_loss``, ``save_checkpoint``).

A checkpoint carries the model and optimizer state, the model keys of the
config, the step, the best validation loss and the time spent, so ``resume``
continues where the run stopped and sees the same batches it would have seen.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tempo.train.card import write_model_card
from tempo.train.config import FINETUNE_STAGES, TrainConfig, TrainConfigError, TrainDataError
from tempo.train.data import PreparedData, batch_indices, epochs_to_steps, load_prepared
from tempo.train.modeling import architecture, build_model, count_parameters, enable_activation_checkpointing

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "last.pt"


def get_lr(step: int, config: TrainConfig, total_steps: int) -> float:
    """Linear warmup from 0 to learning_rate over warmup_steps, then cosine or linear decay to
    learning_rate * min_lr_ratio at total_steps (constant: no decay)."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / (config.warmup_steps + 1)
    if config.lr_decay == "constant" or total_steps <= config.warmup_steps:
        return peak
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = peak * config.min_lr_ratio
    if config.lr_decay == "linear":
        return peak - (peak - floor) * progress
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainConfigError(f"device is {name!r} but no CUDA device is available")
    return torch.device(name)


def autocast_context(config: TrainConfig, device: torch.device) -> tuple[Callable[[], Any], torch.dtype | None]:
    """The autocast context factory for use_amp and its dtype (None: full precision)."""
    if not config.use_amp:
        return contextlib.nullcontext, None
    dtype = torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        dtype = torch.float16
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), dtype


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95), eps=1e-8)


def to_batch(array: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array[rows], dtype=np.int64)).to(device)  # [B, L]


def eval_rows(num_sequences: int, limit: int | None) -> np.ndarray:
    """``limit`` rows spread evenly over the set (all rows when ``limit`` is None or larger): the files are
    stored in order, so the first rows alone would measure only the first few files."""
    if limit is None or limit >= num_sequences:
        return np.arange(num_sequences)
    return np.unique(np.linspace(0, num_sequences - 1, limit).round().astype(np.int64))


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, data: np.ndarray, config: TrainConfig, device: torch.device,
                  autocast: Callable[[], Any], limit: int | None = None) -> float:
    """Mean token loss over ``eval_rows(len(data), limit)`` (the same rows every time)."""
    was_training = model.training
    model.eval()
    rows = eval_rows(len(data), limit)
    total, count = 0.0, 0
    for start in range(0, len(rows), config.batch_size):
        chunk = rows[start:start + config.batch_size]
        ids = to_batch(data, chunk, device)  # [b, L]
        with autocast():
            total += float(model(input_ids=ids, labels=ids).loss) * len(chunk)
        count += len(chunk)
    model.train(was_training)
    return total / count


@dataclass
class TrainState:
    step: int = 0
    best_val_loss: float = float("inf")
    val_loss: float | None = None
    train_loss: float | None = None
    elapsed_s: float = 0.0
    tokens_seen: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
                    state: TrainState, vocab_size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "model_config": config.model_dict(),
                "vocab_size": vocab_size, "state": state.__dict__}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def check_resumable(checkpoint: dict[str, Any], config: TrainConfig) -> None:
    """The model keys must match: a resumed run cannot change the architecture."""
    differ = {k: (v, getattr(config, k)) for k, v in checkpoint["model_config"].items() if getattr(config, k) != v}
    if differ:
        detail = ", ".join(f"{k}: checkpoint {a!r}, config {b!r}" for k, (a, b) in differ.items())
        raise TrainConfigError(f"cannot resume: the checkpoint's model differs ({detail})")


def initial_model(config: TrainConfig, vocab_size: int, ids: dict[str, int],
                  checkpoint: dict[str, Any] | None) -> torch.nn.Module:
    """init_from's model or a fresh one; then the checkpoint's weights when resuming."""
    if config.init_from:
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(config.init_from, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainConfigError(f"init_from: cannot load a model from {config.init_from!r}: {reason}") from None
        if model.config.vocab_size < vocab_size:
            raise TrainDataError(f"init_from {config.init_from} has {model.config.vocab_size} tokens, the prepared "
                                 f"data {vocab_size}; prepare the data with that model's tokenizer")
        found = (model.config.model_type, model.config.hidden_size, model.config.num_hidden_layers,
                 model.config.num_attention_heads)
        wanted = (architecture(config), config.d_model, config.n_layers, config.n_heads)
        if found != wanted:
            raise TrainConfigError(f"init_from {config.init_from} is {found} (type, d_model, n_layers, n_heads) but "
                                   f"the config says {wanted}; set model_size or the model keys to match")
    else:
        model = build_model(config, checkpoint["vocab_size"] if checkpoint else vocab_size, ids)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
    return model


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train, save the model to output_dir, return the run's summary (also in the model card)."""
    if config.stage in FINETUNE_STAGES:  # tools, rlhf: fine-tune init_from on a JSONL file
        from tempo.train.finetune import finetune

        return finetune(config, progress)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    data = load_prepared(config)
    vocab_size = len(data.tokenizer)
    ids = {"pad": data.tokenizer.pad_token_id, "bos": data.tokenizer.bos_token_id, "eos": data.tokenizer.eos_token_id}
    total_steps = epochs_to_steps(len(data.train), config)
    checkpoint_path = config.path("checkpoint_dir") / CHECKPOINT_FILE
    state, checkpoint = resume_state(config, checkpoint_path)
    run = Run(config, data, device, total_steps, checkpoint_path, state, vocab_size)
    run.prepare(ids, checkpoint)
    log.info("%s (%s), %.2fM parameters, %d steps of %d tokens, device %s, %d threads", config.model_name,
             architecture(config), run.n_params / 1e6, total_steps, run.tokens_per_step, device,
             torch.get_num_threads())
    run.loop(progress)
    summary = run.finish()
    save_model(run.model, data, config, summary)
    return summary


def resume_state(config: TrainConfig, checkpoint_path: Path) -> tuple[TrainState, dict[str, Any] | None]:
    """The state and checkpoint to continue from (``resume`` with a checkpoint), else a fresh state."""
    if config.resume and checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path)
        check_resumable(checkpoint, config)
        state = TrainState(**checkpoint["state"])
        log.info("resuming from %s at step %d", checkpoint_path, state.step)
        return state, checkpoint
    if config.resume:
        log.warning("resume: no checkpoint at %s, starting from step 0", checkpoint_path)
    return TrainState(), None


class Run:
    """One call of ``train``: the model, its optimizer and the clocks, stepped until ``total_steps``."""

    def __init__(self, config: TrainConfig, data: PreparedData, device: torch.device, total_steps: int,
                 checkpoint_path: Path, state: TrainState, vocab_size: int):
        self.config, self.data, self.device, self.total_steps = config, data, device, total_steps
        self.checkpoint_path, self.state, self.vocab_size = checkpoint_path, state, vocab_size
        self.tokens_per_step = config.batch_size * config.grad_accumulation_steps * data.train.shape[1]
        self.banked_s, self.run_start, self.run_start_step = state.elapsed_s, time.time(), state.step
        self.run_tokens, self.eval_s = 0, 0.0  # tokens/s counts training time only, not validation

    def prepare(self, ids: dict[str, int], checkpoint: dict[str, Any] | None) -> None:
        """The model on its device, the optimizer (with the checkpoint's state), compile and mixed precision."""
        config = self.config
        model = self.model = initial_model(config, self.vocab_size, ids, checkpoint)
        model.to(self.device).train()
        if config.gradient_checkpointing:
            enable_activation_checkpointing(model)
        self.optimizer = make_optimizer(model, config)
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.forward = torch.compile(model) if config.use_compile else model
        self.autocast, amp_dtype = autocast_context(config, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype is torch.float16)
        self.n_params = count_parameters(model)

    def loop(self, progress: bool) -> None:
        config, state = self.config, self.state
        bar = _progress_bar(self.total_steps, state.step, progress)
        self.run_start = time.time()  # the clock starts with the steps, not with building the model
        loss_ema = state.train_loss
        while state.step < self.total_steps:
            lr = get_lr(state.step, config, self.total_steps)
            step_loss = self.step(lr)
            self.run_tokens += self.tokens_per_step
            loss_ema = step_loss if loss_ema is None else 0.9 * loss_ema + 0.1 * step_loss
            state.train_loss = loss_ema
            tok_s = self.run_tokens / max(time.time() - self.run_start - self.eval_s, 1e-9)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_ema:.3f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:.0f}", refresh=False)
            last = state.step == self.total_steps
            if state.step % config.eval_interval == 0 or last:
                self.evaluate(loss_ema, lr, tok_s)
            if state.step % config.checkpoint_interval == 0 or last:
                state.elapsed_s = self.banked_s + time.time() - self.run_start
                save_checkpoint(self.checkpoint_path, self.model, self.optimizer, config, state, self.vocab_size)
        if bar is not None:
            bar.close()

    def step(self, lr: float) -> float:
        """One optimizer step of ``grad_accumulation_steps`` micro-batches at learning rate ``lr``; its loss."""
        config, state, optimizer = self.config, self.state, self.optimizer
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for micro in range(config.grad_accumulation_steps):
            rows = batch_indices(state.step * config.grad_accumulation_steps + micro, len(self.data.train),
                                 config.batch_size, config.seed)
            batch = to_batch(self.data.train, rows, self.device)  # [B, L]
            with self.autocast():
                loss = self.forward(input_ids=batch, labels=batch).loss / config.grad_accumulation_steps
            self.scaler.scale(loss).backward()
            step_loss += float(loss.detach())
        if config.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.tokens_seen += self.tokens_per_step
        return step_loss

    def evaluate(self, loss_ema: float, lr: float, tok_s: float) -> None:
        """The sampled validation loss, recorded in the history (its time is not training time)."""
        config, state = self.config, self.state
        eval_start = time.time()
        state.val_loss = estimate_loss(self.model, self.data.val, config, self.device, self.autocast,
                                       limit=config.eval_batches * config.batch_size)
        self.eval_s += time.time() - eval_start
        state.best_val_loss = min(state.best_val_loss, state.val_loss)
        state.history.append({"step": state.step, "train_loss": round(loss_ema, 4),
                              "val_loss": round(state.val_loss, 4), "lr": lr, "tokens_per_s": round(tok_s)})
        log.info("step %d/%d: train loss %.4f, val loss %.4f, lr %.2e, %.0f tokens/s", state.step, self.total_steps,
                 loss_ema, state.val_loss, lr, tok_s)

    def finish(self) -> dict[str, Any]:
        """The run's summary, with the validation loss over every validation sequence."""
        state, data, config = self.state, self.data, self.config
        state.elapsed_s = self.banked_s + time.time() - self.run_start
        train_s = time.time() - self.run_start - self.eval_s
        # The reported loss covers every validation sequence, like the unigram baseline it is compared with.
        full_val_loss = estimate_loss(self.model, data.val, config, self.device, self.autocast)
        log.info("validation loss over all %d validation sequences: %.4f", len(data.val), full_val_loss)
        return {
            "steps": state.step,
            "tokens_seen": state.tokens_seen,
            "train_seconds": round(state.elapsed_s, 1),
            "tokens_per_s": round(self.run_tokens / max(train_s, 1e-9)) if self.run_tokens else None,
            "resumed_from_step": self.run_start_step or None,
            "train_loss": None if state.train_loss is None else round(state.train_loss, 4),
            "val_loss": round(full_val_loss, 4),
            "val_sequences": len(data.val),
            "best_val_loss": None if math.isinf(state.best_val_loss) else round(state.best_val_loss, 4),
            "unigram_val_loss": data.meta.get("unigram_val_loss"),
            "parameters": self.n_params,
            "architecture": architecture(config),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "history": state.history,
        }


def save_model(model: torch.nn.Module, data: PreparedData, config: TrainConfig, summary: dict[str, Any]) -> Path:
    """``save_pretrained`` (safetensors) + tokenizer + training config + model card in output_dir."""
    import yaml

    out = config.path("output_dir")
    out.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True
    model.generation_config.bos_token_id = data.tokenizer.bos_token_id
    model.generation_config.eos_token_id = data.tokenizer.eos_token_id
    model.generation_config.pad_token_id = data.tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    data.tokenizer.model_max_length = model.config.max_position_embeddings
    data.tokenizer.save_pretrained(out)
    (out / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    (out / "training_summary.json").write_text(json.dumps({**summary, "data": _data_summary(data.meta)}, indent=1),
                                               encoding="utf-8")
    write_model_card(out / "README.md", config, summary, data.meta)
    log.info("saved %s", out)
    return out


def _data_summary(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("train_files", "val_files")} | {
        "train_file_count": len(meta.get("train_files", [])), "val_file_count": len(meta.get("val_files", []))}


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=1.0)
