"""Whether a model fits before it is loaded: the memory estimate of ``info`` (tempo/models/info) held against the
memory available on the device it would load on.

    fit = check_fit("HuggingFaceTB/SmolLM2-360M-Instruct", settings, torch.device("cpu"))
    fit.needed_bytes, fit.available_bytes, fit.fits, fit.message()

What a model needs: its weights (parameters x bytes of the dtype it loads in, or of ``model.quantization``) plus the KV cache of one sequence
at the context it may use (``generation.max_context``, else the model's ``max_position_embeddings``) -- the
least it takes to serve one request. What is available: the CUDA device's free memory (``torch.cuda.mem_get_info``)
or, on the CPU, the host's available memory (``MemAvailable`` of /proc/meminfo, else psutil when installed);
``app.model_memory_limit_mb`` caps it (an operator's bound, and the tests' way to make memory small). The model
being served still occupies its memory while the new one loads, so the free figure already counts it. With
``model.device_map`` or ``model.tp_plan`` the layers spread over devices within ``model.max_memory``: no check.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tempo.errors import TempoError
from tempo.models.info import human, inspect_model

log = logging.getLogger(__name__)

MEMINFO = Path("/proc/meminfo")


class ModelTooLarge(TempoError):
    """A model whose memory estimate exceeds the memory available on its device."""

    def __init__(self, fit: "Fit"):
        super().__init__(fit.message())
        self.fit = fit


@dataclass(frozen=True)
class Fit:
    """A model's memory estimate against the memory available for it (bytes)."""

    model_id: str
    device: str
    dtype: str
    weights_bytes: int
    kv_bytes: int
    positions: int
    available_bytes: int | None
    """None: the available memory could not be read (the check is skipped)."""
    available_source: str

    @property
    def needed_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.needed_bytes <= self.available_bytes

    def message(self) -> str:
        """One line with the figures: what the model needs, of what, and what is available where."""
        available = "unknown" if self.available_bytes is None else human(self.available_bytes)
        verdict = "fits" if self.fits else "does not fit"
        return (f"model {self.model_id!r} {verdict}: it needs {human(self.needed_bytes)} ({self.dtype} weights "
                f"{human(self.weights_bytes)} + KV cache {human(self.kv_bytes)} for one {self.positions}-position "
                f"sequence), {available} available on {self.device} ({self.available_source})")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "needed_bytes": self.needed_bytes, "fits": self.fits}


def host_available_bytes() -> tuple[int | None, str]:
    """The host's available memory: /proc/meminfo's MemAvailable, else psutil's, else unknown."""
    if MEMINFO.is_file():
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable of /proc/meminfo"
    try:
        import psutil
    except ImportError:
        return None, "no /proc/meminfo and no psutil"
    return int(psutil.virtual_memory().available), "psutil available memory"


def available_bytes(device: torch.device, limit_mb: float = 0.0) -> tuple[int | None, str]:
    """Memory a new model may take on ``device``, and where the figure comes from; ``limit_mb`` > 0 caps it."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            free, _total = torch.cuda.mem_get_info(index)
            found, source = int(free), f"free memory of CUDA device {index}"
        except RuntimeError as exc:  # no CUDA context here (a ZeroGPU Space outside spaces.GPU)
            found, source = None, f"free memory of CUDA device {index} unreadable: {exc}"
    elif device.type == "cpu":
        found, source = host_available_bytes()
    else:  # MPS shares the host's memory
        found, source = host_available_bytes()
    if limit_mb > 0:
        limit = int(limit_mb * 1024 * 1024)
        if found is None or limit < found:
            return limit, f"app.model_memory_limit_mb = {limit_mb:g}"
    return found, source


def estimate(model_id: str, settings: Any, dtype: torch.dtype) -> tuple[dict[str, Any], int]:
    """``info``'s memory estimate of ``model_id`` in ``dtype`` at the context a request may use; and that
    context. Raises ``ModelInspectionError`` (naming the model) when its config cannot be read."""
    section = settings.model
    load = {"trust_remote_code": section.trust_remote_code, "local_files_only": section.local_files_only,
            "revision": section.revision, "cache_dir": section.cache_dir, "quantization": section.quantization}
    info = inspect_model(model_id, dtype=str(dtype).replace("torch.", ""), parallel_tokens=1, **load)
    positions = info["memory"]["max_seq_len"]
    limit = settings.generation.max_context
    if limit and limit < positions:
        info = inspect_model(model_id, dtype=str(dtype).replace("torch.", ""), max_seq_len=limit, parallel_tokens=1,
                             **load)
        positions = limit
    return info, positions


def check_fit(model_id: str, settings: Any, device: torch.device, dtype: torch.dtype) -> Fit:
    """The estimate against the available memory; raises ``ModelTooLarge`` (with the figures) when it does not
    fit, ``ModelInspectionError`` when the model's config cannot be read."""
    info, positions = estimate(model_id, settings, dtype)
    memory = info["memory"]
    if settings.model.device_map or settings.model.tp_plan:  # spread over devices: accelerate / torchrun place it
        available, source = None, "model.device_map / model.tp_plan place the layers within model.max_memory"
    else:
        available, source = available_bytes(device, settings.app.model_memory_limit_mb)
    fit = Fit(model_id=model_id, device=str(device), dtype=info["dtype"],
              weights_bytes=int(memory["weights_bytes"]), kv_bytes=int(memory["kv_bytes_at_max_seq_len"]),
              positions=int(positions), available_bytes=available, available_source=source)
    log.info("%s", fit.message())
    if not fit.fits:
        raise ModelTooLarge(fit)
    return fit
