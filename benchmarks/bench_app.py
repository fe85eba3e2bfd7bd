"""The app under load: 1, 4, 8 and 16 concurrent gradio_client users on loopback.

    python benchmarks/bench_app.py                    # the settings' model
    python benchmarks/bench_app.py --random-llama     # a random Llama of the shipped model's size
    python benchmarks/bench_app.py --model PATH_OR_ID --users 1 4 8 16 --requests 4 --tokens 32

Starts the real server (REST + Gradio, the scheduler behind it) on a free loopback
port; each user is a ``gradio_client.Client`` (its own session, in one client process
apart from the server's) that sends
``--requests`` requests to ``/generate`` one after the other. Reports requests/s,
p50 / p95 latency and the scheduler's mean batch size per level, after a warm-up.
EOS is suppressed (``min_steps``) so every request runs ``--tokens`` steps.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import random_llama  # noqa: E402
from tempo.serve.rest import Server, create_app  # noqa: E402
from tempo.settings.loader import load_settings  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402
from tempo.models.loading import load_model  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def users_run(url: str, users: int, requests: int, fields: dict, prompts: list[str]) -> tuple[float, list[float]]:
    """``users`` clients at once, each sending ``requests`` requests in a row: (wall seconds, latencies)."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(users)]
    latencies: list[float] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(users + 1)

    def user(i: int) -> None:
        start_gate.wait()
        for r in range(requests):
            t = time.perf_counter()
            result = clients[i].predict(prompts[(i + r) % len(prompts)], fields, api_name="/generate")
            assert len(result["steps"]) == fields["max_tokens"], result["stop_reason"]
            with lock:
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    start_gate.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    for client in clients:
        client.close()
    return wall, latencies


def _client_process(args: tuple, out) -> None:
    out.put(users_run(*args))


def level(url: str, users: int, requests: int, fields: dict, prompts: list[str], counters) -> dict:
    """One load level. The clients run in a process of their own, as real users would: in the
    server's process their threads would compete with it for the interpreter lock."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    steps, rows = counters.steps_run, counters.rows_stepped
    process = ctx.Process(target=_client_process, args=((url, users, requests, fields, prompts), out))
    process.start()
    wall, latencies = out.get(timeout=1800)
    process.join()
    return {"users": users, "requests": len(latencies), "rps": len(latencies) / wall,
            "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95),
            "mean_batch": (counters.rows_stepped - rows) / max(1, counters.steps_run - steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or local path (default: the settings' model)")
    parser.add_argument("--random-llama", action="store_true")
    parser.add_argument("--users", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=4, help="requests per user per level")
    parser.add_argument("--tokens", type=int, default=32, help="steps per request")
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings()
    with tempfile.TemporaryDirectory() as folder:
        model_id = random_llama(Path(folder)) if args.random_llama else (args.model or settings.model.model_id)
        loaded = load_model(model_id, device=settings.model.get("device", "auto"))
        engine = Tempo(loaded, settings)
        server = Server(create_app(engine, settings), host="127.0.0.1").start()
        counters = server.app.state.scheduler.counters
        words = "w3 w17 w42 w99" if args.random_llama else "def read_config(path):"
        prompts = [words, words + " w5" if args.random_llama else "import os", words + " w7" if args.random_llama
                   else "class Stack:"]
        fields = {"selection_threshold": args.threshold, "max_tokens": args.tokens, "min_steps": args.tokens}
        try:
            level(server.url, 2, 1, fields, prompts, counters)  # warm-up
            rows = [level(server.url, n, args.requests, fields, prompts, counters) for n in args.users]
        finally:
            server.close()
    print(f"model {model_id if not args.random_llama else 'random Llama 256x4'} ({loaded.parameters / 1e6:.1f}M "
          f"params) on {loaded.device}, torch threads {torch.get_num_threads()}, {args.tokens} steps a request, "
          f"threshold {args.threshold}, {args.requests} requests per user")
    print("| users | requests | requests/s | p50 latency s | p95 latency s | mean batch size | speed-up |")
    print("|---|---|---|---|---|---|---|")
    base = rows[0]["rps"]
    for r in rows:
        print(f"| {r['users']} | {r['requests']} | {r['rps']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | "
              f"{r['mean_batch']:.2f} | {r['rps'] / base:.2f}x |")


if __name__ == "__main__":
    main()
