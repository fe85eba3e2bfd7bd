"""MCTS speed: steps/s and model forward calls per step at the defaults (10 simulations, depth 5).

    python benchmarks/bench_mcts.py                    # the settings' model
    python benchmarks/bench_mcts.py --random-llama     # a random Llama of the shipped model's size

Target: at most simulations x (depth + 1) forward calls per step, and the prompt prefilled once.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import random_llama  # noqa: E402
from tempo.settings.loader import load_settings  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402
from tempo.models.loading import load_model  # noqa: E402

log = logging.getLogger("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--random-llama", action="store_true")
    parser.add_argument("--prompt", default="def read_config(path):")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings()
    model_id = random_llama(Path(tempfile.mkdtemp()) / "r") if args.random_llama else (
        args.model or settings.model.model_id)
    engine = Tempo(load_model(model_id), settings)
    log.info("model %s, %d threads", "random Llama 256x4" if args.random_llama else model_id,
             torch.get_num_threads())
    for batch in (1, 10):
        measure(engine, engine.request(args.prompt, mode="mcts", max_tokens=args.steps, min_steps=args.steps,
                                       mcts_batch=batch))


def measure(engine: Tempo, request) -> None:
    engine.run([request])  # warm-up
    calls, prefills = [], []
    original = engine.adapter.forward

    def counting(input_ids, position_ids, mask, cache, **options):
        calls.append(1)
        if int(position_ids[0, 0]) == 0:
            prefills.append(1)
        return original(input_ids, position_ids, mask, cache, **options)

    engine.adapter.forward = counting
    start = time.perf_counter()
    result = engine.run([request])[0]
    elapsed = time.perf_counter() - start
    engine.adapter.forward = original
    steps = len(result.steps)
    budget = request.mcts_simulations * (request.mcts_depth + 1)
    log.info("MCTS %d simulations, depth %d, expand %d, batch %2d: %6.2f steps/s; %5.1f forward calls per step "
             "(budget %d); prompt prefilled %d time(s)", request.mcts_simulations, request.mcts_depth,
             request.mcts_expand, request.mcts_batch, steps / elapsed, (len(calls) - len(prefills)) / steps, budget,
             len(prefills))


if __name__ == "__main__":
    main()
