"""The CPU matrix products of a step with M slots: ``h @ W^T`` (what ``nn.Linear`` runs) against ``(W @ h^T)^T``.

    python benchmarks/bench_linear.py --threads 1

Shapes of SmolLM2-135M: the output head (49,152 x 576) and an MLP projection (1,536 x 576). Medians of
alternating repeats, milliseconds. docs/performance.md explains why the engine applies the head itself.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = {"head 49152x576": torch.randn(49152, 576), "mlp 1536x576": torch.randn(1536, 576)}
    kernels = {"h @ W^T (nn.Linear)": lambda h, w: torch.nn.functional.linear(h, w),
               "(W @ h^T)^T": lambda h, w: torch.matmul(w, h.T).T.contiguous()}
    times: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.repeats):
        for m in (1, 2, 3, 5, 8):
            h = torch.randn(m, 576)
            for wname, w in weights.items():
                for kname, kernel in kernels.items():
                    start = time.perf_counter()
                    kernel(h, w)
                    times.setdefault((wname, kname, m), []).append(time.perf_counter() - start)
    print(f"{torch.get_num_threads()} threads; median ms of {args.repeats}\n")
    print("| matrix | kernel | M=1 | M=2 | M=3 | M=5 | M=8 |\n|---|---|---|---|---|---|---|")
    for wname in weights:
        for kname in kernels:
            cells = " | ".join(f"{1000 * statistics.median(times[(wname, kname, m)]):.2f}" for m in (1, 2, 3, 5, 8))
            print(f"| {wname} | {kname} | {cells} |")


if __name__ == "__main__":
    main()
