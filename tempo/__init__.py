"""TEMPO: threshold-enabled multipath parallel output — see where a language model hesitates."""
from tempo.errors import ModelLoadError, RequestError, SettingsError, TempoError
from tempo.generation import Tempo, generate, generate_batch
from tempo.request import GenerationRequest, build_request
from tempo.result import Candidate, GenerationResult, Step

__all__ = [
    "Candidate", "GenerationRequest", "GenerationResult", "ModelLoadError", "RequestError", "SettingsError",
    "Step", "Tempo", "TempoError", "build_request", "generate", "generate_batch",
]
