"""Where a TEMPO step's time goes: cProfile shares by part of the step, and torch.profiler's top operators.

    python benchmarks/profile_step.py --shape tiny --threshold 0.1
    python benchmarks/profile_step.py --shape smollm2-135m --threshold 0.6 --steps 24 --torch

Shares are of the decode loop (``Batch.step`` over every step), after a warm-up run. cProfile's own
overhead inflates the Python-heavy parts a little; read the shares, not the milliseconds.
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES, build, prompt_for  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402

ENGINE = ("batch.py", "layout.py", "sampling.py", "adapter.py", "attention.py")
"""Calls of torch functions counted only from these files (not the model's own torch.cat, say)."""

PARTS = [
    # (label, file fragment, function name): cumulative time of the function, summed over its calls
    ("model forward (the model's own work)", "adapter.py", "forward"),
    ("step mask (layout.step_mask)", "layout.py", "step_mask"),
    ("distribution (penalty, softmax, mixture, top-k/top-p)", "sampling.py", "distribution"),
    ("  softmax", "sampling.py", "temperature_softmax"),
    ("  mixture (combine)", "sampling.py", "combine"),
    ("  top-k / top-p", "sampling.py", "top_k_top_p"),
    ("  greedy argmax (fast path)", "sampling.py", "greedy"),
    ("set sizes (sampling.set_sizes)", "sampling.py", "set_sizes"),
    ("mixture weights (sampling.mode_weights)", "sampling.py", "mode_weights"),
    ("attention capture context", "attention.py", "capture"),
    ("host syncs: .tolist()", "~", "<method 'tolist' of 'torch._C.TensorBase' objects>"),
    ("host syncs: .item()", "~", "<method 'item' of 'torch._C.TensorBase' objects>"),
    ("torch.cat (cache/visibility growth, step tensors)", "~", "<built-in method torch.cat>"),
    ("torch.tensor (step tensors from Python lists)", "~", "<built-in method torch.tensor>"),
    ("rows leave / trim (Batch._leave)", "batch.py", "_leave"),
    ("on_step callbacks / set records", "row.py", "__init__"),
]


def part_times(stats: pstats.Stats) -> tuple[float, dict[str, float]]:
    """Total decode-loop time and the cumulative time of each part of ``PARTS``."""
    total = prefill = 0.0
    found = {label: 0.0 for label, _, _ in PARTS}
    for (file, _, name), (_, _, _, cumulative, callers) in stats.stats.items():
        if file.endswith("batch.py") and name == "step":
            total += cumulative
        for label, fragment, func in PARTS:
            if fragment == "~" and file == "~" and name.startswith(func):  # a torch function: the engine's calls
                found[label] += sum(edge[3] for caller, edge in callers.items() if caller[0].endswith(ENGINE))
            elif fragment != "~" and fragment in file and name == func:
                found[label] += cumulative
        if file.endswith("prefill.py") and name == "prefill":
            prefill = cumulative
    found[PARTS[0][0]] -= prefill  # the decode loop's forwards, not the prompt's
    return total, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny", choices=["tiny", *SHAPES])
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--torch", action="store_true", help="also torch.profiler's top operators")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    loaded = build(args.shape, args.device, "float32" if args.device == "cpu" else "bfloat16")
    engine = Tempo(loaded)  # no settings: no prompt cache
    prompt = prompt_for(loaded)
    requests = [engine.request(prompt + (f" w{i + 3}" if i else ""), selection_threshold=args.threshold,
                               max_tokens=args.steps, min_steps=args.steps, top_k=0, top_p=1.0, temperature=1.0)
                for i in range(args.batch)]
    engine.run(requests)  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    results = engine.run(requests)
    profiler.disable()
    sizes = [len(s.candidates) for r in results for s in r.steps]
    total, found = part_times(pstats.Stats(profiler))
    print(f"\n{args.shape}, threshold {args.threshold}, batch {args.batch}, {args.steps} steps, "
          f"mean set {sum(sizes) / len(sizes):.2f}; decode loop {1000 * total / args.steps:.1f} ms a step "
          f"(under cProfile)\n")
    print("| part of a step | share |\n|---|---|")
    for label, _, _ in PARTS:
        if found[label] > 0:
            print(f"| {label} | {100 * found[label] / total:.1f} % |")
    if args.torch:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
        with profile(activities=activities) as prof:
            engine.run(requests)
        key = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=18))


if __name__ == "__main__":
    main()
