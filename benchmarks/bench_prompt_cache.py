"""Prompt cache: time to first step for a long prompt, with and without the cache, in one run on one model.

    python benchmarks/bench_prompt_cache.py --threads 1
    python benchmarks/bench_prompt_cache.py --prompt-tokens 1000 --repeats 5 --device cuda

The shipped model has 256 positions, so the script builds a random Llama (d_model 256, 4 layers,
vocab 8192, 2048 positions) and a word-level tokenizer whose words are its token ids; the prompt is
``--prompt-tokens`` random words. Time to first step = ``Batch.add`` (the prefill, or the prompt
cache's copy) + the first ``Batch.step`` (step 0's set chosen and run through the model): what a
user waits before the first set shows. Three ways, each the median of --repeats after a warm-up:
no prompt cache; with the cache but a miss (the prefill plus storing the entry); a hit. Also checks
that a whole generation with a hit gives the uncached result and counts the forwards.
"""
from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import random_llama  # noqa: E402
from tempo.engine.prompt_cache import PromptCache  # noqa: E402
from tempo.engine.batch import Batch  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402
from tempo.models.loading import load_model  # noqa: E402

log = logging.getLogger("bench")
VOCAB = 8192  # random_llama's


def first_step(engine: Tempo, request, cache: PromptCache | None) -> float:
    """Seconds from ``Batch.add`` to the end of the first ``Batch.step``."""
    if engine.adapter.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    batch = Batch(engine.adapter, engine.loaded.tokenizer, engine.eos_ids, engine.pad_id, prompt_cache=cache)
    batch.add([request])
    batch.step()
    if engine.adapter.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_of(repeats: int, fn) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16, help="steps of the whole-generation equality check")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    positions = max(2048, args.prompt_tokens + args.steps + 8)
    log.info("building a random Llama 256x4 with %d positions", positions)
    loaded = load_model(random_llama(Path(tempfile.mkdtemp()) / "random-llama", positions), device=args.device)
    engine = Tempo(loaded)  # no settings: no prompt cache of its own; the runs below pass theirs
    # words the saved tokenizer reads as one token each, so the prompt is exactly --prompt-tokens long
    candidates = [f"w{i}" for i in range(3, VOCAB)]
    single = [w for w, ids in zip(candidates, loaded.tokenizer(candidates)["input_ids"]) if len(ids) == 1]
    prompt = " ".join(random.Random(0).choices(single, k=args.prompt_tokens))
    request = engine.request(prompt, selection_threshold=0.1, max_tokens=args.steps, min_steps=args.steps,
                             top_k=0, top_p=1.0, temperature=1.0)
    n_prompt = len(loaded.tokenizer(prompt)["input_ids"])

    cache = PromptCache(size=16)

    def miss() -> float:
        cache.clear()
        return first_step(engine, request, cache)

    t_off = median_of(args.repeats, lambda: first_step(engine, request, None))
    t_miss = median_of(args.repeats, miss)
    t_hit = median_of(args.repeats, lambda: first_step(engine, request, cache))

    # A whole generation with a hit against one without the cache: the same result, one forward fewer.
    reference_engine, cached_engine = Tempo(loaded), Tempo(loaded)
    cached_engine.prompt_cache = cache
    calls = cached_engine.adapter.forward_calls
    hit_result = cached_engine.run([request])[0]
    hit_calls = cached_engine.adapter.forward_calls - calls
    calls = reference_engine.adapter.forward_calls
    reference = reference_engine.run([request])[0]
    reference_calls = reference_engine.adapter.forward_calls - calls
    same_ids = [[c.token_id for c in s.candidates] for s in hit_result.steps] == \
        [[c.token_id for c in s.candidates] for s in reference.steps]
    max_dp = max(abs(a.probability - b.probability) for s, t in zip(hit_result.steps, reference.steps)
                 for a, b in zip(s.candidates, t.candidates))
    entry = cache.stats()

    hardware = f"{torch.get_num_threads()} threads, {loaded.device}, {loaded.dtype}"
    print(f"model: random Llama 256x4 (d_model 256, 4 layers, 4 heads, vocab {VOCAB}, {positions} positions, "
          f"{loaded.parameters / 1e6:.1f}M parameters); prompt {n_prompt} tokens; {hardware}; "
          f"median of {args.repeats} after a warm-up")
    print(f"{'time to first step (prefill + step 0)':<40}{'seconds':>10}{'ratio to off':>14}")
    for name, t in (("prompt cache off", t_off), ("prompt cache on, miss (prefill + store)", t_miss),
                    ("prompt cache on, hit", t_hit)):
        print(f"{name:<40}{t:>10.4f}{t / t_off:>13.3f}x")
    print(f"speed-up of a hit over no cache: {t_off / t_hit:.1f}x; one entry holds {entry['bytes'] / 2 ** 20:.1f} MiB")
    print(f"whole generation of {len(reference.steps)} steps: forwards {hit_calls} with a hit, {reference_calls} without; "
          f"same candidate ids {same_ids}; max |probability difference| {max_dp:.1e}")


if __name__ == "__main__":
    main()
