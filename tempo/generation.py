"""The Python API: a ``Tempo`` object owns a loaded model and turns requests into results.

    >>> import tempo
    >>> result = tempo.generate("def read_config(path):", max_tokens=20)
    >>> print(result.text)

Every other interface (CLI, Gradio, REST) goes through ``Tempo.run``.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

from tempo.config import default_settings
from tempo.engine.adapter import ModelAdapter
from tempo.engine.row import build_result
from tempo.engine.tempo import Batch, StepCallback
from tempo.model import LoadedModel, load_from_settings
from tempo.request import GenerationRequest, build_request
from tempo.result import GenerationResult

log = logging.getLogger(__name__)


def special_ids(loaded: LoadedModel, settings: Any) -> tuple[list[int], int]:
    """EOS ids and the pad id: the settings' override (>= 0), else the model's generation config / tokenizer."""
    section = settings.generation if settings is not None else {}
    eos_override = int(section.get("eos_token_id", -1))
    pad_override = int(section.get("pad_token_id", -1))
    if eos_override >= 0:
        eos = [eos_override]
    else:
        configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
        if configured is None:
            configured = loaded.tokenizer.eos_token_id
        eos = [] if configured is None else ([configured] if isinstance(configured, int) else list(configured))
    if pad_override >= 0:
        pad = pad_override
    elif loaded.tokenizer.pad_token_id is not None:
        pad = loaded.tokenizer.pad_token_id
    else:
        pad = eos[0] if eos else 0
    return eos, pad


class Tempo:
    """A model plus settings; thread-safe: one generation batch runs at a time."""

    def __init__(self, loaded: LoadedModel, settings: Any = None):
        self.loaded = loaded
        self.settings = settings
        self.adapter = ModelAdapter(loaded.model)
        self.eos_ids, self.pad_id = special_ids(loaded, settings)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any = None, model_id: str | None = None) -> "Tempo":
        settings = settings or default_settings()
        return cls(load_from_settings(settings, model_id=model_id), settings)

    def request(self, prompt: str, **overrides: Any) -> GenerationRequest:
        """A validated request: overrides > settings > code defaults."""
        return build_request(prompt, self.settings, **overrides)

    def run(self, requests: list[GenerationRequest], on_step: StepCallback | None = None) -> list[GenerationResult]:
        """Generate every request in one batch; results in the order of ``requests``."""
        if not requests:
            return []
        with self._lock:
            rows = Batch(self.adapter, self.loaded.tokenizer, self.eos_ids, self.pad_id, on_step).run(requests)
        info = self.loaded.info()
        return [build_result(row, self.loaded.tokenizer, info) for row in rows]

    def generate(self, prompt: str, **settings: Any) -> GenerationResult:
        return self.run([self.request(prompt, **settings)])[0]

    def generate_batch(self, prompts: Iterable[str], **settings: Any) -> list[GenerationResult]:
        return self.run([self.request(p, **settings) for p in prompts])


_default: Tempo | None = None
_default_lock = threading.Lock()


def default_tempo() -> Tempo:
    """The process-wide engine on the settings' model, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Tempo.from_settings()
        return _default


def generate(prompt: str, **settings: Any) -> GenerationResult:
    """Generate with the default model; keyword arguments override the settings."""
    return default_tempo().generate(prompt, **settings)


def generate_batch(prompts: Iterable[str], **settings: Any) -> list[GenerationResult]:
    """Generate several prompts as one batch with the default model."""
    return default_tempo().generate_batch(prompts, **settings)
