"""Soak: mixed concurrent users against a real server for a given time; every finished result checked.

    python benchmarks/soak.py --minutes 10                 # the bundled model (assets/models/tempo-tiny-code)
    python benchmarks/soak.py --minutes 1 --model PATH --users 9 --json soak.json

The server (REST + Gradio, the scheduler behind it) runs in a child process on a free loopback port, so its
memory is its own: its resident set size (``VmRSS``) is sampled every ``--sample-every`` seconds. The users are
threads of this process, each with its own ``gradio_client.Client`` or ``httpx.Client``, each sending one
request after another until the time is up:

- UI-like streaming ``/generate`` jobs (gradio_client) and REST ``POST /generate`` (httpx), over a pool of
  request variants: TEMPO with fixed and scheduled thresholds, MCTS, retroactive pruning (fixed and dynamic
  threshold), default mode greedy and seeded sampling (top_k / top_p set, and top_k=0 with top_p=1.0);
- about one gradio request in six is cancelled once it has streamed (``job.cancel()``), and about one REST
  request in six disconnects mid-way (its client gives up and closes): neither is compared.

Every finished result is compared, token ids of every set, with the same request run alone
(``engine.run([request])``) on a second engine in this process (computed once per variant before the load).
Printed at the end: requests done, cancelled, disconnected, failures, mismatches, p50/p95 latency, and the
server's memory at start, after the warm-up and at the end. Exit code 1 on any failure or mismatch.
Only loopback traffic; every loop stops by itself at the deadline (in-flight requests get ``--grace`` more
seconds); the server child exits when this process closes its stdin or at its own deadline.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MODEL = str(ROOT / "assets" / "models" / "tempo-tiny-code")
SERVED = {"api.rate_limit": 0, "api.max_concurrent_requests": 32, "api.request_timeout": 120,
          "app.stream_interval": 0.1, "logging.enable_file_logging": False, "logging.console_logging": False}
"""Overrides of the served settings: all users share 127.0.0.1, so the per-client rate limit and the REST slot
count would refuse the load this soak means to send (those limits have tests of their own)."""
PROMPTS = ["def add(a, b):", "import os\n", "for i in range(", "class Stack:"]


def variants(tokens: int) -> list[tuple[str, dict[str, Any]]]:
    """The pool of (kind, request fields); a variant's prompt is drawn per request from PROMPTS."""
    fixed = {"max_tokens": tokens, "min_steps": tokens}
    return [
        ("tempo", {**fixed, "selection_threshold": 0.05}),
        ("tempo", {**fixed, "selection_threshold": 0.1, "selection_schedule": "bezier",
                   "selection_final_threshold": 0.5}),
        ("tempo", {"max_tokens": tokens, "selection_threshold": 0.2, "next_logits_mode": "top"}),
        ("mcts", {"mode": "mcts", "max_tokens": max(2, tokens // 4), "mcts_simulations": 4, "mcts_depth": 2,
                  "mcts_expand": 3}),
        ("pruning", {**fixed, "selection_threshold": 0.05, "use_retroactive_pruning": True,
                     "attention_threshold": 0.02}),
        ("pruning", {**fixed, "selection_threshold": 0.05, "use_retroactive_pruning": True,
                     "dynamic_threshold": True, "final_threshold": 0.5}),
        ("greedy", {**fixed, "mode": "default", "temperature": 0.0}),
        ("sampling", {**fixed, "mode": "default", "temperature": 0.9, "top_k": 20, "top_p": 0.9, "seed": 7}),
        ("sampling", {**fixed, "mode": "default", "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 11}),
        ("sampling", {**fixed, "mode": "default", "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 12345}),
    ]


# --- the server child -----------------------------------------------------------------------------------------

def serve(model: str, max_seconds: float) -> None:
    """Child process: serve until stdin closes (the parent is done or gone) or ``max_seconds`` pass."""
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from tempo.serve.rest import Server, create_app
    from tempo.settings.loader import load_settings

    settings = load_settings(overrides=SERVED)
    server = Server(create_app(Tempo(load_model(model), settings), settings), host="127.0.0.1").start()
    print(f"READY {server.url}", flush=True)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    closed.wait(max_seconds)
    server.close()


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# --- the load -------------------------------------------------------------------------------------------------

@dataclass
class Tally:
    done: int = 0
    cancelled: int = 0
    disconnected: int = 0
    failures: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.done += 1
            self.latencies.setdefault(kind, []).append(seconds)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


def token_ids(result: dict) -> list[list[int]]:
    return [[c["token_id"] for c in step["candidates"]] for step in result["steps"]]


class User(threading.Thread):
    """One user: ``channel`` "gradio" (streams, sometimes cancels) or "rest" (sometimes disconnects)."""

    def __init__(self, index: int, channel: str, url: str, pool: list, references: dict, tally: Tally,
                 deadline: float, seed: int):
        super().__init__(name=f"user-{index}-{channel}", daemon=True)
        self.index, self.channel, self.url, self.pool = index, channel, url, pool
        self.references, self.tally, self.deadline = references, tally, deadline
        self.rng = random.Random(seed * 1000 + index)

    def run(self) -> None:
        client = None
        if self.channel == "gradio":
            from gradio_client import Client

            client = Client(self.url, verbose=False)
        try:
            n = 0
            while time.monotonic() < self.deadline:
                variant = (self.index + n) % len(self.pool)
                prompt = PROMPTS[(self.index * 7 + n) % len(PROMPTS)]
                n += 1
                abort = self.rng.random() < 1 / 6
                try:
                    if self.channel == "gradio":
                        self.gradio(client, variant, prompt, cancel=abort)
                    else:
                        self.rest(variant, prompt, disconnect=abort)
                except Exception as exc:  # a soak counts every kind of failure and goes on
                    self.tally.fail(f"{self.name} variant {variant} {prompt!r}: {type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                client.close()

    def check(self, variant: int, prompt: str, result: dict, started: float) -> None:
        kind, fields = self.pool[variant]
        self.tally.finished(kind, time.monotonic() - started)
        expected = self.references[(variant, prompt)]
        if token_ids(result) != expected:
            with self.tally.lock:
                self.tally.mismatches.append(f"{self.name} {kind} {fields} {prompt!r}: got {token_ids(result)}, "
                                             f"alone {expected}")

    def gradio(self, client, variant: int, prompt: str, cancel: bool) -> None:
        kind, fields = self.pool[variant]
        started = time.monotonic()
        if cancel:
            fields = {**fields, "max_tokens": fields["max_tokens"] * 4, "min_steps": fields["max_tokens"] * 4}
        job = client.submit(prompt, fields, api_name="/generate")
        if cancel:
            limit = time.monotonic() + 30
            while not job.outputs() and not job.done() and time.monotonic() < limit:
                time.sleep(0.02)
            if not job.done():
                job.cancel()
                with self.tally.lock:
                    self.tally.cancelled += 1
                return
        result = job.result(timeout=180)
        if not cancel:
            self.check(variant, prompt, result, started)
        else:  # finished before it could be cancelled: counted as done, not compared (its length differs)
            self.tally.finished(kind, time.monotonic() - started)

    def rest(self, variant: int, prompt: str, disconnect: bool) -> None:
        import httpx

        kind, fields = self.pool[variant]
        started = time.monotonic()
        if disconnect:
            fields = {**fields, "max_tokens": fields["max_tokens"] * 4, "min_steps": fields["max_tokens"] * 4}
            read = self.rng.uniform(0.05, 0.5)
            with httpx.Client(timeout=httpx.Timeout(10.0, read=read)) as client:
                try:
                    answer = client.post(self.url + "generate", json={"prompt": prompt, **fields})
                except httpx.ReadTimeout:
                    with self.tally.lock:
                        self.tally.disconnected += 1
                    return  # the client closes its connection: the server sees it go
            if answer.status_code != 200:
                raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
            self.tally.finished(kind, time.monotonic() - started)
            return
        with httpx.Client(timeout=180) as client:
            answer = client.post(self.url + "generate", json={"prompt": prompt, **fields})
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
        self.check(variant, prompt, answer.json(), started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def references(model: str, pool: list) -> dict:
    """Each (variant, prompt) run alone on a second engine: token ids of every set."""
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from tempo.settings.loader import load_settings

    settings = load_settings(overrides=SERVED)
    engine = Tempo(load_model(model), settings)
    out = {}
    for v, (_, fields) in enumerate(pool):
        for prompt in PROMPTS:
            out[(v, prompt)] = token_ids(engine.run([engine.request(prompt, **fields)])[0].to_dict())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a local model folder or hub id")
    parser.add_argument("--users", type=int, default=9, help="concurrent users (alternately gradio and REST)")
    parser.add_argument("--tokens", type=int, default=16, help="steps per request (cancelled/disconnected: 4x)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (default: 20%%, <= 60 s)")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between memory samples")
    parser.add_argument("--grace", type=float, default=120.0, help="seconds in-flight requests get after the end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server child
    parser.add_argument("--max-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.model, args.max_seconds)
        return 0

    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, 0.2 * seconds)
    pool = variants(args.tokens)
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--model", args.model,
                              "--max-seconds", str(seconds + args.grace + 600)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        print(f"soak: {args.minutes:g} min, {args.users} users, model {args.model}, {len(pool)} variants x "
              f"{len(PROMPTS)} prompts; references alone ...", flush=True)
        alone = references(args.model, pool)
        line = child.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the server child did not start: {line!r}")
        url = line.split()[1]
        samples: list[tuple[float, float]] = []
        began = time.monotonic()
        samples.append((0.0, rss_mb(child.pid)))
        tally = Tally()
        deadline = began + seconds
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(args.sample_every):
                samples.append((time.monotonic() - began, rss_mb(child.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        users = [User(i, "gradio" if i % 2 == 0 else "rest", url, pool, alone, tally, deadline, args.seed)
                 for i in range(args.users)]
        for user in users:
            user.start()
        for user in users:
            user.join(max(0.0, deadline + args.grace - time.monotonic()))
        stuck = [u.name for u in users if u.is_alive()]
        for name in stuck:
            tally.fail(f"{name}: still waiting {args.grace:g} s after the end")
        import httpx

        health = httpx.get(url + "health", timeout=10)
        stats = health.json() if health.status_code == 200 else {}
        if health.status_code != 200:
            tally.fail(f"GET /health after the load: HTTP {health.status_code}")
        elif stats.get("requests_failed"):
            tally.fail(f"the scheduler counted {stats['requests_failed']} failed requests")
        stop_sampling.set()
        sampler.join(5)
        samples.append((time.monotonic() - began, rss_mb(child.pid)))
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
    return report(args, tally, samples, warmup, stats)


def report(args, tally: Tally, samples: list[tuple[float, float]], warmup: float, stats: dict) -> int:
    every = [s for values in tally.latencies.values() for s in values]
    start = samples[0][1]
    warm = next((mb for t, mb in samples if t >= warmup), samples[-1][1])
    end = samples[-1][1]
    figures = {
        "minutes": args.minutes, "users": args.users, "model": args.model, "tokens": args.tokens,
        "requests_done": tally.done, "cancelled": tally.cancelled, "disconnected": tally.disconnected,
        "failures": len(tally.failures), "mismatches": len(tally.mismatches),
        "p50_s": round(percentile(every, 0.5), 3), "p95_s": round(percentile(every, 0.95), 3),
        "by_kind": {kind: {"n": len(v), "p50_s": round(percentile(v, 0.5), 3), "p95_s": round(percentile(v, 0.95), 3)}
                    for kind, v in sorted(tally.latencies.items())},
        "rss_mb": {"start": round(start, 1), "after_warmup": round(warm, 1), "end": round(end, 1),
                   "max": round(max(mb for _, mb in samples), 1),
                   "series": [(round(t, 1), round(mb, 1)) for t, mb in samples]},
        "growth_after_warmup_pct": round(100 * (end - warm) / warm, 2),
        "server": {k: stats.get(k) for k in ("requests_done", "requests_cancelled", "requests_failed",
                                             "mean_batch_size", "max_batch_size_seen", "queue_depth")},
        "failure_list": tally.failures[:20], "mismatch_list": tally.mismatches[:20],
    }
    print(f"requests done {tally.done} (cancelled {tally.cancelled}, disconnected {tally.disconnected}), "
          f"failures {len(tally.failures)}, mismatches {len(tally.mismatches)}")
    print(f"latency p50 {figures['p50_s']} s, p95 {figures['p95_s']} s; by kind "
          + ", ".join(f"{k} {v['n']} x p50 {v['p50_s']} s p95 {v['p95_s']} s" for k, v in figures["by_kind"].items()))
    print(f"server RSS MiB: start {start:.1f}, after warm-up ({warmup:g} s) {warm:.1f}, end {end:.1f}, "
          f"max {figures['rss_mb']['max']}; growth after warm-up {figures['growth_after_warmup_pct']} %")
    print(f"server counters: {figures['server']}")
    for what in tally.failures[:20]:
        print(f"FAILURE {what}")
    for what in tally.mismatches[:20]:
        print(f"MISMATCH {what}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 1 if tally.failures or tally.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
