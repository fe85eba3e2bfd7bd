"""Loading a causal LM and its tokenizer, from a hub id or a local path."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tempo.settings.loader import PROJECT_ROOT
from tempo.errors import ModelLoadError
from tempo.models.placement import Placement, execution_device, placement_arguments, weight_bytes

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    model_id: str
    device: torch.device
    """Where the model takes its inputs (a placed model's first accelerator, else the CPU)."""
    dtype: torch.dtype
    placement: Placement = Placement()
    load_s: float = 0.0
    """Seconds the tokenizer and the model took to load (the metrics' tempo_model_load_seconds)."""

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def info(self) -> dict[str, Any]:
        return {"id": self.model_id, "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}

    def weights(self) -> dict[str, Any]:
        """How the weights are held: the placement settings, the device map transformers chose, and the
        bytes in memory and offloaded (``/health``, ``info --loaded``)."""
        device_map = getattr(self.model, "hf_device_map", None)
        return {**self.placement.describe(), "placed": {k: str(v) for k, v in device_map.items()} if device_map
                else None, "weight_bytes": weight_bytes(self.model)}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: cuda > mps > cpu. Anything else is taken as given (``cpu``, ``cuda:1``).
    The choice and its reason are logged at INFO ("Using CPU (model.device = auto: CUDA not available)")."""
    if name in ("auto", "", None):
        if torch.cuda.is_available():
            device, reason = torch.device("cuda"), "model.device = auto: CUDA available"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device, reason = torch.device("mps"), "model.device = auto: CUDA not available"
        else:
            device, reason = torch.device("cpu"), "model.device = auto: CUDA not available, MPS not available"
        log.info("Using %s (%s)", describe_device(device), reason)
        return device
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelLoadError(f"model.device must be auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"model.device is {name!r} but no CUDA device is available")
    log.info("Using %s (model.device = %s)", describe_device(device), name)
    return device


def describe_device(device: torch.device) -> str:
    """``CUDA device 0 (NVIDIA H100 80GB HBM3)``, ``MPS device`` or ``CPU``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA device {index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "MPS device"
    return "CPU" if device.type == "cpu" else str(device)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: float16 on an accelerator, float32 on the CPU."""
    if name in ("auto", "", None):
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in DTYPES:
        raise ModelLoadError(f"model.torch_dtype must be auto, {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def resolve_model_path(model_id: str) -> str:
    """A relative path that exists under the project root (``assets/models/...``) is made absolute."""
    candidate = Path(model_id).expanduser()
    if not candidate.is_absolute() and not candidate.exists() and (PROJECT_ROOT / candidate).exists():
        return str(PROJECT_ROOT / candidate)
    return str(candidate) if candidate.exists() else model_id


def load_model(
    model_id: str,
    device: str = "auto",
    torch_dtype: str = "auto",
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    revision: str = "",
    cache_dir: str = "",
    use_fast_tokenizer: bool = True,
    placement: Placement = Placement(),
) -> LoadedModel:
    """Load model and tokenizer; a missing or broken model raises ModelLoadError (one line).

    ``placement``: a device map (accelerate: GPUs, CPU, disk), tensor parallelism or quantized weights
    (tempo/models/placement.py); without one the model goes to ``device`` whole."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(model_id)
    if model_id.startswith(("/", "./", "../", "~")) and not Path(path).exists():
        raise ModelLoadError(f"could not load model {model_id!r}: no such folder")
    target = resolve_device(device)
    dtype = resolve_dtype(torch_dtype, target)
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
    if revision:
        common["revision"] = revision
    if cache_dir:
        common["cache_dir"] = str(Path(cache_dir).expanduser())
    placed = placement_arguments(placement, target)
    if placement.quantization and not placed.get("device_map") and not placement.tp_plan:
        placed["device_map"] = {"": str(target)}  # quantize on the target, not on the CPU and then move
    log.debug("loading %s from %s as %s (%s, %s)", model_id, path, dtype, common, placement.describe())
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=use_fast_tokenizer, **common)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa", **common,
                                                     **placed)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError, AssertionError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not load model {model_id!r}: {reason}") from None
    if "device_map" not in placed and not placement.tp_plan:
        model.to(target)
    model.eval()
    target = execution_device(model, target)
    config = model.config.get_text_config()
    log.debug("%s: %s, %d layers, %d heads, vocabulary %d, tokenizer %s", model_id, config.model_type,
              config.num_hidden_layers, config.num_attention_heads, config.vocab_size, type(tokenizer).__name__)
    log.info("loaded %s on %s (%s, %.1fM parameters%s)", model_id, target, dtype,
             sum(p.numel() for p in model.parameters()) / 1e6,
             "".join(f", {k} {v}" for k, v in placement.describe().items() if v))
    return LoadedModel(model=model, tokenizer=tokenizer, model_id=model_id, device=target, dtype=dtype,
                       placement=placement, load_s=time.perf_counter() - started)


def load_from_settings(settings: Any, model_id: str | None = None) -> LoadedModel:
    """Load the model of the ``model`` section; ``model_id`` overrides it."""
    section = settings.model
    return load_model(
        model_id or section.model_id, device=section.device, torch_dtype=section.torch_dtype,
        trust_remote_code=section.trust_remote_code, local_files_only=section.local_files_only,
        revision=section.revision, cache_dir=section.cache_dir, use_fast_tokenizer=section.use_fast_tokenizer,
        placement=Placement(device_map=section.device_map, max_memory=section.max_memory,
                            offload_folder=section.offload_folder, quantization=section.quantization,
                            tp_plan=section.tp_plan),
    )
