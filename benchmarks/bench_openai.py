"""The OpenAI route's overhead: ``POST /v1/completions`` against ``POST /generate`` on the same request.

    python benchmarks/bench_openai.py                      # the settings' model, 64 steps, 20 rounds
    python benchmarks/bench_openai.py --random-llama --tokens 64 --rounds 30
    python benchmarks/bench_openai.py --model PATH_OR_ID --stream

Starts the real server (REST + OpenAI routes + Gradio, the scheduler behind it) on a free loopback port; one
client (``httpx``, for both routes) sends the same request to each route in turn, the order swapped every
round so that drift hits both alike, after a warm-up. EOS is suppressed (``min_steps``) so every request runs
``--tokens`` steps; the prompt cache serves both routes alike. Reports the median and mean latency of each
route and the OpenAI route's overhead (target: at most 5 % at 64 steps); ``--stream`` adds the server-sent
events stream of the OpenAI route (time to its ``[DONE]``).
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import random_llama  # noqa: E402
from tempo.engine.runner import Tempo  # noqa: E402
from tempo.models.loading import load_model  # noqa: E402
from tempo.serve.rest import Server, create_app  # noqa: E402
from tempo.settings.loader import load_settings  # noqa: E402


def timed_post(client: httpx.Client, url: str, body: dict, steps: int, stream: bool = False) -> float:
    """Seconds for one request, checked to have run ``steps`` steps."""
    start = time.perf_counter()
    if stream:
        with client.stream("POST", url, json=body) as response:
            text = response.read().decode()
        elapsed = time.perf_counter() - start
        assert response.status_code == 200 and text.rstrip().endswith("data: [DONE]"), text[-300:]
        return elapsed
    response = client.post(url, json=body)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text
    data = response.json()
    result = data.get("tempo", data)
    assert len(result["steps"]) == steps, result["stop_reason"]
    return elapsed


def rounds(base: str, fields: dict, prompt: str, count: int, stream: bool) -> dict[str, list[float]]:
    """``count`` rounds of the routes on the same request, the order swapped every round."""
    routes = {"/generate": (base + "generate", {"prompt": prompt, **fields}, False),
              "/v1/completions": (base + "v1/completions", {"prompt": prompt, **fields}, False)}
    if stream:
        routes["/v1/completions stream"] = (base + "v1/completions", {"prompt": prompt, "stream": True, **fields},
                                            True)
    times: dict[str, list[float]] = {name: [] for name in routes}
    names = list(routes)
    with httpx.Client(timeout=600) as client:
        for r in range(count):
            for name in (names if r % 2 == 0 else names[::-1]):
                url, body, streamed = routes[name]
                times[name].append(timed_post(client, url, body, fields["max_tokens"], streamed))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or local path (default: the settings' model)")
    parser.add_argument("--random-llama", action="store_true", help="a random Llama of the shipped model's size")
    parser.add_argument("--tokens", type=int, default=64, help="steps per request")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--stream", action="store_true", help="also time the OpenAI route's stream")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings(overrides={"api.rate_limit": 0, "generation.max_tokens_limit": max(1024, args.tokens)})
    fields = {"selection_threshold": args.threshold, "max_tokens": args.tokens, "min_steps": args.tokens}
    with tempfile.TemporaryDirectory() as folder:
        model_id = random_llama(Path(folder)) if args.random_llama else (args.model or settings.model.model_id)
        prompt = "w3 w17 w42 w99" if args.random_llama else "def read_config(path):"
        loaded = load_model(model_id, device=settings.model.device)
        server = Server(create_app(Tempo(loaded, settings), settings), host="127.0.0.1").start()
        try:
            rounds(server.url, fields, prompt, 2, args.stream)  # warm-up
            times = rounds(server.url, fields, prompt, args.rounds, args.stream)
        finally:
            server.close()
    print(f"model {'random Llama 256x4' if args.random_llama else model_id} ({loaded.parameters / 1e6:.1f}M params) "
          f"on {loaded.device}, torch threads {torch.get_num_threads()}, {args.tokens} steps a request, threshold "
          f"{args.threshold}, {args.rounds} rounds")
    base = statistics.median(times["/generate"])
    print("| route | median s | mean s | overhead (median) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.4f} | {statistics.mean(values):.4f} | {100 * (median / base - 1):+.1f} % |")


if __name__ == "__main__":
    main()
