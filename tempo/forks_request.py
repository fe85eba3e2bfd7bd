"""The parameters of a forks analysis (TEMPO_SPEC section 12), declared once beside the request's.

``ForksRequest`` declares each parameter with :func:`tempo.fields.declare`, so its validation (errors naming the
field), the ``forks`` command's flags (``tempo.cli.explore``), the REST body of ``POST /forks`` and the
``gradio_client`` ``/forks`` options are generated from the same declaration as the request's fields are.
The upper bound of ``horizon`` is the setting ``generation.max_fork_horizon``.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from tempo.errors import RequestError
from tempo.fields import declare, fields_of, shown

HORIZON_SETTING = "generation.max_fork_horizon"
MAX_FORK_HORIZON = 64
"""The bound of ``horizon`` when no settings are given (the setting's default)."""
MAX_SAMPLES = 256


def _forks(default: Any, **spec: Any) -> Any:
    return declare(default, section="", group="Forks", **spec)


@dataclass(frozen=True)
class ForksRequest:
    """How a result's forks are looked for: rollouts per candidate, their length and temperature, what an outcome
    is and where a fork starts."""

    samples: int = _forks(8, lo=1, hi=MAX_SAMPLES, label="Samples", help="rollouts per candidate",
                          doc="continuations drawn per candidate (seeds seed + j, j = 0 ... samples - 1)")
    horizon: int = _forks(16, lo=1, hi_setting=HORIZON_SETTING, label="Horizon", help=f"tokens per rollout at most (<= {HORIZON_SETTING})",
                          doc=f"tokens of each continuation at most (it ends earlier at EOS); at most the setting "
                              f"`{HORIZON_SETTING}`")
    rollout_temperature: float = _forks(None, lo=0.0, hi=100.0, label="Rollout temperature",
                                        help="temperature of the rollouts (default: the request's; 0 = greedy)",
                                        doc="the rollouts' temperature; unset: the request's; 0: one greedy "
                                            "continuation per candidate")
    outcome_pattern: str = _forks("", label="Outcome pattern",
                                  help="a regex: a continuation's outcome is its first group (or whole match)",
                                  doc="a regular expression searched in each continuation: its first group (the "
                                      "whole match when it has none) is the outcome; unmatched or empty pattern: "
                                      "the continuation's text")
    fork_threshold: float = _forks(0.5, lo=0.0, hi=1.0, label="Fork threshold",
                                   help="a step whose fork score reaches this is a fork, in [0, 1]",
                                   doc="a step whose fork score is at least this is a fork")

    def validate(self, max_fork_horizon: int = MAX_FORK_HORIZON) -> "ForksRequest":
        """Raise ``RequestError`` naming the first bad parameter; return self."""
        for spec in FORKS_FIELDS.values():
            value = getattr(self, spec.name)
            if value is None and spec.default is None:  # unset: taken from the request
                continue
            if spec.name == "horizon":
                spec = dataclasses.replace(spec, hi=max_fork_horizon, hi_setting="")  # the setting's value
            spec.check(value)
        compile_pattern(self.outcome_pattern)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FORKS_FIELDS = fields_of(ForksRequest)
"""Each forks parameter's declaration, in declaration order."""


def compile_pattern(pattern: str) -> re.Pattern | None:
    """The compiled ``outcome_pattern`` (None when empty), or ``RequestError`` naming it."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RequestError("outcome_pattern", f"not a valid regular expression ({exc}): {shown(pattern)}") from None


def build_forks(settings: Any = None, **values: Any) -> ForksRequest:
    """A validated ``ForksRequest``: ``values`` (``None`` = not given) over the code defaults; the horizon's
    bound from ``settings.generation.max_fork_horizon`` when settings are given. Unknown names are refused."""
    unknown = sorted(set(values) - set(FORKS_FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"unknown forks parameter; known are {', '.join(FORKS_FIELDS)}")
    given = {name: _coerce(name, value) for name, value in values.items() if value is not None}
    limit = settings.generation.max_fork_horizon if settings is not None else MAX_FORK_HORIZON
    return ForksRequest(**given).validate(max_fork_horizon=limit)


def _coerce(name: str, value: Any) -> Any:
    """JSON / form values of the right kind (3.0 for an int, "0.5" for a float); the rest as given."""
    kind = FORKS_FIELDS[name].type
    try:
        if kind is int and isinstance(value, (float, str)) and not isinstance(value, bool):
            number = float(value)
            return int(number) if number.is_integer() else value
        if kind is float and isinstance(value, str):
            return float(value)
    except ValueError:
        raise RequestError(name, f"must be a number ({kind.__name__}), got {shown(value)}") from None
    return value
