"""The one result type every interface returns (TEMPO_SPEC section 8)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

KEPT, PRUNED, REMOVED = "kept", "pruned", "removed"


@dataclass
class Candidate:
    token_id: int
    text: str
    probability: float
    status: str = KEPT
    pruned_at_step: int | None = None
    attention: float | None = None
    """The attention value that decided this candidate's fate (pruning only)."""
    visits: int | None = None
    """MCTS only: how often the search visited this child."""
    value: float | None = None
    """MCTS only: the child's mean value Q (mean log-probability of its simulations)."""
    coherence: float | None = None
    """Strategy pruning: the top probability of this candidate's own next-token row; None when coherence did
    not run on its set."""


@dataclass
class Step:
    step: int
    position: int
    selection_threshold: float
    attention_threshold: float | None = None
    unattended: bool = False
    candidates: list[Candidate] = field(default_factory=list)
    strategy: str | None = None
    """Strategy pruning: the strategy that refined this set (``coherence`` / ``diversity``); None when none ran."""

    @property
    def kept(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status == KEPT]


def pruned_by(step: Step, candidate: Candidate) -> str | None:
    """Why a candidate is no longer kept: the strategy that refined its set (it was dropped at its own step,
    TEMPO_SPEC section 10), else ``attention`` (retroactive pruning, decided by a later step's queries); None
    while kept."""
    if candidate.status == KEPT:
        return None
    if candidate.pruned_at_step == step.step and step.strategy is not None:
        return step.strategy
    return "attention"


@dataclass
class Timing:
    prefill_s: float = 0.0
    decode_s: float = 0.0
    pruning_s: float = 0.0
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    """Logical steps per second of prefill + decode."""


@dataclass
class ModelInfo:
    id: str
    device: str
    dtype: str


@dataclass
class GenerationResult:
    prompt: str
    mode: str
    text: str
    clean_text: str
    steps: list[Step]
    settings: dict[str, Any]
    timing: Timing
    model: ModelInfo
    stop_reason: str = "max_tokens"
    """``eos`` or ``max_tokens``."""
    prompt_truncated: int = 0
    """Prompt tokens dropped from the left to fit the model's context (``truncate_prompt = "left"``); 0: none."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationResult":
        steps = [
            Step(**{**s, "candidates": [Candidate(**c) for c in s["candidates"]]}) for s in data["steps"]
        ]
        return cls(
            **{
                **data,
                "steps": steps,
                "timing": Timing(**data["timing"]),
                "model": ModelInfo(**data["model"]),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "GenerationResult":
        return cls.from_dict(json.loads(text))
