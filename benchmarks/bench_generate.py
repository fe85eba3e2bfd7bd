"""Generation speed: Hugging Face generate() against TEMPO, and TEMPO's parallel step against its greedy step.

    python benchmarks/bench_generate.py                               # the shipped tiny model, CPU
    python benchmarks/bench_generate.py --shape smollm2-135m           # random weights, SmolLM2-135M's shape
    python benchmarks/bench_generate.py --shape qwen2.5-0.5b --device cuda --batches 1,8,32
    python benchmarks/bench_generate.py --quick                       # a sanity run (16 steps)

In one run (issue 17), each as the median of ``--runs`` rounds with the spread (min–max) of the rounds:

- greedy-equivalent TEMPO (threshold 0.6) against HF ``generate(do_sample=False)``, at every batch size;
- the threshold-0.1 step against the greedy-equivalent step (one row);
- a batch of 8 (the largest batch of ``--batches`` up to 8) at 0.1 against one row at 0.1 (throughput).

A round runs every configuration once, in an order that rotates from round to round, so a busy
machine's swings fall on both sides of each ratio. Each ratio is given twice: from decode timing (TEMPO:
the results' ``timing.decode_s``; HF: ``generate`` of n tokens minus ``generate`` of 1, the prefill and
first token) and from wall time (the whole call, prefill included). EOS is suppressed on both sides
(``min_new_tokens`` / ``min_steps``) so both run the same number of steps; the prompt cache is off.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES, build  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402

log = logging.getLogger("bench")

TINY_PROMPTS = ["def read_config(path):", "def load_json(path):", "def parse_args(argv):", "def write_file(path):",
                "def open_socket(port):", "def split_lines(text):", "def count_words(text):", "def make_dirs(path):"]


def prompts_for(loaded, batch: int) -> list[str]:
    """``batch`` distinct prompts: code for the shipped model, 12 words of equal length for a random one."""
    if loaded.model_id.startswith("random "):
        return [" ".join(f"w{100 + 37 * i + 11 * b}" for i in range(12)) for b in range(batch)]
    return [TINY_PROMPTS[b % len(TINY_PROMPTS)] for b in range(batch)]


class Bench:
    """The runs of one model: HF generate and TEMPO, each returning (decode seconds, wall seconds, steps)."""

    def __init__(self, loaded, tokens: int):
        self.loaded, self.n = loaded, tokens
        self.engine = Tempo(loaded)  # no settings: no prompt cache, the declared defaults
        self.cuda = loaded.device.type == "cuda"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def hf_inputs(self, batch: int):
        tok, pad = self.loaded.tokenizer, self.engine.pad_id
        ids = [tok(p)["input_ids"] for p in prompts_for(self.loaded, batch)]
        width = max(len(i) for i in ids)
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids], device=self.loaded.device)
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=self.loaded.device)
        return input_ids, mask

    def hf(self, batch: int) -> tuple[float, float, int]:
        input_ids, mask = self.hf_inputs(batch)
        times = []
        for n in (self.n, 1):
            self._sync()
            start = time.perf_counter()
            with torch.inference_mode():
                self.loaded.model.generate(input_ids, attention_mask=mask, do_sample=False, max_new_tokens=n,
                                           min_new_tokens=n, pad_token_id=self.engine.pad_id,
                                           eos_token_id=self.engine.eos_ids)
            self._sync()
            times.append(time.perf_counter() - start)
        return times[0] - times[1], times[0], batch * (self.n - 1)

    def tempo(self, batch: int, threshold: float, pruning: bool = False) -> tuple[float, float, int]:
        requests = [self.engine.request(p, selection_threshold=threshold, max_tokens=self.n, min_steps=self.n,
                                        top_k=0, top_p=1.0, temperature=1.0, use_retroactive_pruning=pruning)
                    for p in prompts_for(self.loaded, batch)]
        self._sync()
        start = time.perf_counter()
        results = self.engine.run(requests)
        self._sync()
        wall = time.perf_counter() - start
        self.sizes = [len(s.candidates) for r in results for s in r.steps]
        decode = max(r.timing.decode_s for r in results)
        return decode, wall, sum(len(r.steps) for r in results)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}× ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny", choices=["tiny", *SHAPES])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="", help="float32 / bfloat16 / float16 (default: float32 on the "
                        "CPU, bfloat16 on CUDA)")
    parser.add_argument("--tokens", type=int, default=64, help="steps a run")
    parser.add_argument("--runs", type=int, default=7, help="alternating rounds (at least 5)")
    parser.add_argument("--batches", default="1,8", help="batch sizes for the HF comparison")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="16 steps, 5 rounds: a sanity run")
    parser.add_argument("--pruning", action="store_true", help="also threshold 0.1 with retroactive pruning "
                        "(every layer read) against 0.1 without")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        args.tokens, args.runs = 16, 5
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    loaded = build(args.shape, args.device, dtype)
    bench = Bench(loaded, args.tokens)
    batches = [int(b) for b in args.batches.split(",")]
    many = max([b for b in batches if b <= 8] or [1])
    configs = {f"hf b{b}": (bench.hf, (b,)) for b in batches}
    configs |= {f"tempo 0.6 b{b}": (bench.tempo, (b, 0.6)) for b in batches}
    configs |= {"tempo 0.1 b1": (bench.tempo, (1, 0.1)), f"tempo 0.1 b{many}": (bench.tempo, (many, 0.1))}
    if args.pruning:
        configs["tempo 0.1 pruning b1"] = (bench.tempo, (1, 0.1, True))
    names = list(configs)
    sizes: list[int] = []
    times: dict[str, list[tuple[float, float, int]]] = {name: [] for name in names}
    for r in range(args.runs + 1):  # round 0 warms up
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn, fargs = configs[name]
            out = fn(*fargs)
            if r:
                times[name].append(out)
                if name == "tempo 0.1 b1":
                    sizes += bench.sizes

    def ratios(num: str, den: str, which: int, per_step: bool = False) -> list[float]:
        """Per round: time of ``num`` / time of ``den`` (per step with ``per_step``)."""
        out = []
        for a, b in zip(times[num], times[den]):
            out.append((a[which] / a[2]) / (b[which] / b[2]) if per_step else a[which] / b[which])
        return out

    rows = []
    for b in batches:
        rows.append((f"greedy-equivalent TEMPO / HF generate() tokens/s, batch {b}",
                     ratios(f"hf b{b}", f"tempo 0.6 b{b}", 0), ratios(f"hf b{b}", f"tempo 0.6 b{b}", 1),
                     "≥ 1.0× (CPU, tiny); ≥ 0.9× (GPU)"))
    rows.append(("threshold-0.1 step / greedy-equivalent step (time), batch 1",
                 ratios("tempo 0.1 b1", "tempo 0.6 b1", 0, True), ratios("tempo 0.1 b1", "tempo 0.6 b1", 1, True),
                 "≤ 1.1×"))
    if many > 1:
        # throughput: (steps / time) of the batch over (steps / time) of one row = one row's time per step / batch's
        rows.append((f"batch of {many} / one row, steps/s at threshold 0.1",
                     ratios("tempo 0.1 b1", f"tempo 0.1 b{many}", 0, True),
                     ratios("tempo 0.1 b1", f"tempo 0.1 b{many}", 1, True), "≥ 5×"))
    if args.pruning:
        rows.append(("threshold 0.1 with retroactive pruning / without (time), batch 1",
                     ratios("tempo 0.1 pruning b1", "tempo 0.1 b1", 0, True),
                     ratios("tempo 0.1 pruning b1", "tempo 0.1 b1", 1, True), "≤ 1.5×"))
    hardware = (torch.cuda.get_device_name(0) if loaded.device.type == "cuda"
                else f"CPU, {torch.get_num_threads()} threads")
    log.info("\n%s (%.1fM parameters, %s), %s; %d steps a run, median of %d alternating rounds (min–max); "
             "mean set at 0.1: %.2f tokens", loaded.model_id, loaded.parameters / 1e6, dtype, hardware, args.tokens,
             args.runs, sum(sizes) / max(1, len(sizes)))
    log.info("\n| ratio | from decode timing | from wall time | target |\n|---|---|---|---|")
    for label, decode, wall, target in rows:
        log.info("| %s | %s | %s | %s |", label, spread(decode), spread(wall), target)
    log.info("\n| run | median decode s | median wall s | steps a run |\n|---|---|---|---|")
    for name in names:
        log.info("| %s | %.4f | %.4f | %d |", name, statistics.median(t[0] for t in times[name]),
                 statistics.median(t[1] for t in times[name]), times[name][0][2])
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": loaded.model_id, "dtype": dtype, "hardware": hardware, "tokens": args.tokens,
            "runs": args.runs, "mean_set": sum(sizes) / max(1, len(sizes)),
            "ratios": {label: {"decode": decode, "wall": wall} for label, decode, wall, _ in rows},
            "times": times}, indent=1))


if __name__ == "__main__":
    main()
