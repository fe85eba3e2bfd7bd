"""Forks (TEMPO_SPEC section 12, after Bigelow et al., "Forking Paths in Neural Text Generation", ICLR 2025).

For each step whose set holds two or more candidates and each candidate ``c``: draw ``samples`` continuations
of at most ``horizon`` tokens after the prompt, the clean path before the step, then ``c``. A continuation's
**outcome** is the first group of ``outcome_pattern`` (the whole match when the pattern has no group) when given
and matched, else its text. The **fork score** of a step is the probability-weighted mean, over the candidates
other than the top one, of ``TV(P_top, P_c)``; a step scoring at least ``fork_threshold`` is a **fork**.

Here: the pure math (:func:`outcome`, :func:`total_variation`, :func:`fork_score`), the rollout plan
(:func:`plan_rollouts`: ordinary default-mode requests whose first sets are forced, ``forced_sets``) and the
report built from the rollouts' results (:func:`report`). Who runs the plan batches it: ``Tempo.forks`` (chunks
of ``app.max_batch_size``) or the scheduler (``tempo.serve.explore_api``).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from tempo.errors import RequestError
from tempo.forks_request import ForksRequest, compile_pattern
from tempo.request import GenerationRequest, build_request
from tempo.result import GenerationResult, Step

log = logging.getLogger(__name__)


# --- the math ---------------------------------------------------------------------------------------------------

def outcome(text: str, pattern: re.Pattern | None) -> str:
    """The outcome of a continuation: the pattern's first group (its whole match when it has no group) when the
    pattern is given and found in ``text`` (``re.search``), else ``text`` itself. A group that did not take
    part in the match counts as unmatched."""
    if pattern is not None:
        found = pattern.search(text)
        if found is not None:
            value = found.group(1) if pattern.groups else found.group(0)
            if value is not None:
                return value
    return text


def distribution(counts: Mapping[str, int]) -> dict[str, float]:
    """Counts -> the empirical distribution (empty counts: empty)."""
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """``TV(p, q) = 1/2 sum_o |p(o) - q(o)|`` over the outcomes of either, in [0, 1]."""
    return 0.5 * sum(abs(p.get(o, 0.0) - q.get(o, 0.0)) for o in set(p) | set(q))


def fork_score(probabilities: Sequence[float], outcomes: Sequence[Mapping[str, int]]) -> float:
    """The fork score of one step: candidates in set order (the top one first), their selection probabilities
    and outcome counts. The mean over the others of ``TV(P_top, P_c)``, weighted by their probabilities
    renormalised over the others (equal weights when those are all 0)."""
    if len(probabilities) < 2:
        return 0.0
    top = distribution(outcomes[0])
    others = list(zip(probabilities[1:], outcomes[1:]))
    mass = sum(p for p, _ in others)
    weights = [p / mass for p, _ in others] if mass > 0 else [1 / len(others)] * len(others)
    score = sum(w * total_variation(top, distribution(counts)) for w, (_, counts) in zip(weights, others))
    return min(1.0, max(0.0, score))


# --- the rollouts -----------------------------------------------------------------------------------------------

def forked_steps(result: GenerationResult) -> list[Step]:
    """The steps a forks analysis looks at: sets of two or more candidates, kept or pruned (a removed step is
    out of the text and of the clean path)."""
    return [step for step in result.steps if sum(c.status != "removed" for c in step.candidates) >= 2]


def clean_path(result: GenerationResult, before: int) -> list[int]:
    """The token ids of the clean path before step ``before``: the first kept candidate of each earlier step."""
    return [step.kept[0].token_id for step in result.steps[:before] if step.kept]


@dataclass(frozen=True)
class Rollout:
    """One continuation to draw: after the clean path before ``step``, candidate ``candidate`` (its index in the
    set), with seed ``seed + sample``; ``copies``: how many samples it stands for (a greedy rollout is drawn
    once for all ``samples``)."""

    step: int
    candidate: int
    sample: int
    forced: int
    """How many leading sets of the rollout are forced (the path and the candidate)."""
    copies: int = 1


@dataclass
class ForksPlan:
    """The rollouts of one analysis and their requests, in the same order."""

    result: GenerationResult
    options: ForksRequest
    rollouts: list[Rollout] = field(default_factory=list)
    requests: list[GenerationRequest] = field(default_factory=list)


def request_of(result: GenerationResult, settings: Any = None, **overrides: Any) -> GenerationRequest:
    """The request a result was generated from (its ``settings``), with ``overrides``; validated."""
    names = set(GenerationRequest.field_names()) - {"prompt"}
    fields = {k: v for k, v in result.settings.items() if k in names}
    return build_request(result.prompt, settings, **(fields | overrides))


def plan_rollouts(result: GenerationResult, options: ForksRequest, settings: Any = None) -> ForksPlan:
    """Every rollout of the analysis as an ordinary default-mode request: its first sets forced to the clean path
    and the candidate (``forced_sets``), ``max_tokens`` = those sets + ``horizon``, ``min_steps`` 0, the
    request's top-k / top-p / repetition penalty, ``rollout_temperature`` (default the request's) and seed
    ``seed + j``. At temperature 0 every sample would be the same: one rollout stands for all of them."""
    base = request_of(result, settings)
    temperature = base.temperature if options.rollout_temperature is None else options.rollout_temperature
    draws = 1 if temperature == 0 else options.samples
    plan = ForksPlan(result, options)
    for step in forked_steps(result):
        path = clean_path(result, step.step)
        for index, candidate in enumerate(step.candidates):
            if candidate.status == "removed":
                continue
            forced = [[t] for t in path] + [[candidate.token_id]]
            for j in range(draws):
                plan.rollouts.append(Rollout(step.step, index, j, len(forced), options.samples if draws == 1 else 1))
                plan.requests.append(base_rollout(base, forced, options.horizon, temperature, base.seed + j, settings))
    log.debug("forks: %d steps with sets, %d rollouts of at most %d tokens at temperature %g",
              len(forked_steps(result)), len(plan.requests), options.horizon, temperature)
    return plan


def base_rollout(base: GenerationRequest, forced: list[list[int]], horizon: int, temperature: float, seed: int,
                 settings: Any) -> GenerationRequest:
    fields = base.to_dict() | {"mode": "default", "temperature": temperature, "seed": seed, "min_steps": 0,
                               "max_tokens": len(forced) + horizon, "use_retroactive_pruning": False,
                               "forced_sets": forced}
    prompt = fields.pop("prompt")
    try:
        return build_request(prompt, settings, **fields)
    except RequestError as exc:
        if exc.field != "max_tokens":
            raise
        raise RequestError("horizon", f"a rollout after step {len(forced) - 1} needs {len(forced)} + {horizon} "
                                      f"steps, over the limit ({exc})") from None


def continuation(rollout: GenerationResult, forced: int) -> str:
    """The text a rollout drew after its forced sets (its clean path from there, EOS not shown)."""
    return "".join(step.kept[0].text for step in rollout.steps[forced:] if step.kept)


# --- the report -------------------------------------------------------------------------------------------------

@dataclass
class ForkCandidate:
    token_id: int
    text: str
    probability: float
    outcomes: dict[str, int]


@dataclass
class ForkStep:
    step: int
    score: float
    fork: bool
    candidates: list[ForkCandidate]


@dataclass
class ForksResult:
    """``{"result": <the generation>, "forks": [{"step", "score", "fork", "candidates": [...]}], "options"}``."""

    result: GenerationResult
    forks: list[ForkStep]
    options: ForksRequest

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result.to_dict(), "forks": [asdict(f) for f in self.forks],
                "options": self.options.to_dict()}


def report(plan: ForksPlan, rollouts: Sequence[GenerationResult]) -> ForksResult:
    """The analysis from the plan's rollouts (their results, in the plan's order)."""
    pattern = compile_pattern(plan.options.outcome_pattern)
    counts: dict[tuple[int, int], Counter] = {}
    for spec, drawn in zip(plan.rollouts, rollouts, strict=True):
        counts.setdefault((spec.step, spec.candidate), Counter())[outcome(continuation(drawn, spec.forced),
                                                                          pattern)] += spec.copies
    forks = []
    for step in forked_steps(plan.result):
        candidates = [ForkCandidate(c.token_id, c.text, c.probability, dict(counts[(step.step, i)]))
                      for i, c in enumerate(step.candidates) if c.status != "removed"]
        score = fork_score([c.probability for c in candidates], [c.outcomes for c in candidates])
        forks.append(ForkStep(step.step, score, score >= plan.options.fork_threshold, candidates))
    return ForksResult(plan.result, forks, plan.options)
