"""TEMPO: threshold-enabled multipath parallel output — see where a language model hesitates.

The value types load at once; the engine (torch, transformers, dynaconf) loads on first use of
``Tempo`` / ``generate`` / ``generate_batch``, so ``import tempo.request`` stays light.
"""
import logging

from tempo.errors import ModelLoadError, RequestError, SettingsError, TempoError
from tempo.request import GenerationRequest, build_request
from tempo.result import Candidate, GenerationResult, Step

__all__ = [
    "Candidate", "GenerationRequest", "GenerationResult", "ModelLoadError", "RequestError", "SettingsError",
    "Step", "Tempo", "TempoError", "build_request", "generate", "generate_batch",
]

QUIET_AT_IMPORT = ("torchao", "torch.utils._pytree")
"""Loggers that warn whenever transformers imports torchao (installed for ``model.quantization``): torchao that
its CUDA-only kernels do not load on a CPU build, torch that torchao registers its enums the old way. Neither
is about the user's model or request, so they speak at ERROR only (set before anything imports them)."""
for _name in QUIET_AT_IMPORT:
    logging.getLogger(_name).setLevel(logging.ERROR)

_ENGINE = ("Tempo", "generate", "generate_batch")


def __getattr__(name: str):
    if name in _ENGINE:
        from tempo.engine import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'tempo' has no attribute {name!r}")
