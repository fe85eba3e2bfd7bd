"""Explore (issue 13): forks' rollouts batched against the same rollouts one request at a time, and a branch's
time to its first new step against the parent's time to reach that step, in one run on one model.

    python benchmarks/bench_explore.py --threads 1
    python benchmarks/bench_explore.py --model assets/models/tempo-tiny-code --samples 8 --horizon 16 --repeats 3

Forks: a 30-step result with at least ``--min-sets`` parallel sets (the selection threshold is lowered from
``--threshold`` until it has them), ``--samples`` rollouts of at most ``--horizon`` tokens per candidate at the
request's temperature. "batched" is ``Tempo.forks`` (every rollout through ``Tempo.run`` in chunks of
``--batch`` rows, as ``app.max_batch_size``); "one at a time" runs the very same rollout requests with one
``Tempo.run`` each. Both give the same outcomes (checked). Branch: the parent's latest set step ``s``, its second
candidate forced there (``forced_sets`` = the parent's first ``s`` sets, then that token: what ``Tempo.branch``
asks for); seconds from the call to step ``s + 1``'s set, for the parent and for the branch, with a warm prompt
cache. Each figure is the median of ``--repeats`` after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tempo.engine.explore import forks  # noqa: E402
from tempo.engine.forks import plan_rollouts, report  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402
from tempo.forks_request import build_forks  # noqa: E402
from tempo.settings.loader import load_settings  # noqa: E402

log = logging.getLogger("bench")
STEPS = 30


def median_of(repeats: int, fn) -> tuple[float, object]:
    value = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def parent_request(engine: Tempo, prompt: str, threshold: float, min_sets: int):
    """A 30-step request whose result has at least ``min_sets`` parallel sets, and that result."""
    while threshold > 0.001:
        request = engine.request(prompt, max_tokens=STEPS, min_steps=STEPS, selection_threshold=threshold,
                                 temperature=1.0, max_parallel_tokens=3, seed=0)
        result = engine.run([request])[0]
        sets = sum(len(s.candidates) >= 2 for s in result.steps)
        if sets >= min_sets:
            return request, result, threshold
        threshold *= 0.7
    raise SystemExit(f"no threshold gives {min_sets} parallel sets in {STEPS} steps on this model")


def time_to_step(engine: Tempo, request, step: int) -> float:
    """Seconds from ``Tempo.run`` to the row's set of ``step``."""
    reached: list[float] = []
    start = time.perf_counter()

    def on_step(row) -> None:
        if len(row.sets) == step + 1 and not reached:
            reached.append(time.perf_counter() - start)

    engine.run([request], on_step=on_step)
    return reached[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: model.model_id of the settings (the shipped tiny model)")
    parser.add_argument("--prompt", default="def read_config(path):")
    parser.add_argument("--threshold", type=float, default=0.1, help="first selection threshold tried")
    parser.add_argument("--min-sets", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16, help="rows per batch (app.max_batch_size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings(overrides={"app.max_batch_size": args.batch, "model.device": args.device,
                                        "logging.enable_file_logging": False})
    engine = Tempo.from_settings(settings, model_id=args.model)
    request, result, threshold = parent_request(engine, args.prompt, args.threshold, args.min_sets)
    options = build_forks(settings, samples=args.samples, horizon=args.horizon)
    plan = plan_rollouts(result, options, settings)
    sets = sum(len(s.candidates) >= 2 for s in result.steps)
    log.info("model %s on %s, %d threads; parent: %d steps, %d parallel sets (threshold %.3g); %d rollouts of at "
             "most %d tokens, batch %d", engine.loaded.model_id, engine.adapter.device, torch.get_num_threads(),
             len(result.steps), sets, threshold, len(plan.requests), args.horizon, args.batch)

    batched_s, batched = median_of(args.repeats, lambda: forks(engine, result, options))
    alone_s, alone = median_of(args.repeats, lambda: report(plan, [engine.run([r])[0] for r in plan.requests]))
    same = [f.candidates for f in batched.forks] == [f.candidates for f in alone.forks]
    log.info("forks: batched %.3f s, one request at a time %.3f s: %.2fx (same outcomes: %s)", batched_s, alone_s,
             alone_s / batched_s, same)

    s = max(st.step for st in result.steps if len(st.candidates) >= 2 and st.step < len(result.steps) - 1)
    forced = [[c.token_id for c in st.candidates] for st in result.steps[:s]] + [[result.steps[s].candidates[1].token_id]]
    branch = engine.request(**{**request.to_dict(), "forced_sets": forced})
    parent_s, _ = median_of(args.repeats, lambda: time_to_step(engine, request, s + 1))
    branch_s, _ = median_of(args.repeats, lambda: time_to_step(engine, branch, s + 1))
    log.info("branch at step %d: first new step (%d) after %.4f s; the parent reached it after %.4f s (%.2fx)",
             s, s + 1, branch_s, parent_s, parent_s / branch_s)
    print(json.dumps({"model": engine.loaded.model_id, "device": str(engine.adapter.device),
                      "threads": torch.get_num_threads(), "parallel_sets": sets, "rollouts": len(plan.requests),
                      "samples": args.samples, "horizon": args.horizon, "batch": args.batch,
                      "forks_batched_s": round(batched_s, 4), "forks_one_at_a_time_s": round(alone_s, 4),
                      "forks_speedup": round(alone_s / batched_s, 2), "same_outcomes": same, "branch_step": s,
                      "branch_first_new_step_s": round(branch_s, 4), "parent_same_step_s": round(parent_s, 4)}))


if __name__ == "__main__":
    main()
