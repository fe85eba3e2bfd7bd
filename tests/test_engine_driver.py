"""One engine driver (issue 12): every interface reaches the engine through ``Tempo``; one step builder
makes streamed steps and results; one sampling chain serves the batch and the tree search; ``Job`` and
the schedulers have a public surface."""
import inspect
import re
import sys
import threading
from pathlib import Path

import pytest
import torch

from tempo.engine import sampling
from tempo.engine.row import Row, SetRecord, build_result, stream_steps
from tempo.engine.runner import COMPARE_MODES, Tempo
from tempo.errors import RequestError
from tempo.request import build_request
from tempo.serve.jobs import Job, JobQueue
from tempo.serve.scheduler import Scheduler

TEMPO = Path(__file__).resolve().parent.parent / "tempo"


def source(relative: str) -> str:
    return (TEMPO / relative).read_text()


def streamed_steps(job: Job) -> dict:
    """The last version of every step the worker pushed in ``step`` updates (not the end update)."""
    steps = {}
    for update in job.stream():
        if update.state == "step":
            steps.update({step.step: step for step in update.steps})
    return steps


@pytest.fixture
def scheduler(engines):
    s = Scheduler(engines["llama"], max_batch_size=16)
    yield s
    s.close()


# --- one step builder ------------------------------------------------------------------------------

class ContextTokenizer:
    """Decodes each id as its number, after a space unless it follows token 7: a token's text depends
    on the token before it, as with SentencePiece."""

    def decode(self, ids):
        return "".join(("" if prev == 7 else " ") + str(t) for prev, t in zip([None] + list(ids), ids))


def test_streamed_steps_and_the_result_decode_after_the_same_context():
    """An MCTS set whose appended (most visited, first) child is not the highest prior: the stream and the
    result both decode the next step after the appended child."""
    request = build_request("x", None, mode="mcts", max_tokens=3)
    row = Row(0, request, [1, 2])
    records = [SetRecord([5, 7], [0.3, 0.6], 0.1, visits=[6, 2], values=[-1.0, -2.0]),
               SetRecord([9], [0.9], 0.1, visits=[8], values=[-0.5]),
               SetRecord([7, 4], [0.5, 0.4], 0.1, visits=[5, 3], values=[-0.7, -0.9])]
    tokenizer, streamed = ContextTokenizer(), {}
    for record in records:
        row.sets.append(record)
        streamed.update({step.step: step for step in stream_steps(row, tokenizer)})
    result = build_result(row, tokenizer, {"id": "t", "device": "cpu", "dtype": "float32"})
    assert [streamed[s] for s in sorted(streamed)] == result.steps
    assert result.steps[1].candidates[0].text == " 9"  # after 5, the appended child; not "9" (after 7)
    assert result.clean_text == " 5 9 7"


def test_a_tree_search_streams_the_steps_of_its_result(engines, scheduler):
    engine = engines["llama"]
    job = scheduler.submit(engine.request("the cat", mode="mcts", max_tokens=6, min_steps=6, mcts_simulations=4,
                                          mcts_depth=2, mcts_expand=4, temperature=1.0, selection_threshold=0.0))
    streamed = streamed_steps(job)
    result = job.result
    assert len(result.steps) == 6 and [streamed[s] for s in sorted(streamed)] == result.steps
    assert all(c.visits is not None and c.value is not None for s in result.steps for c in s.candidates)
    assert job.steps == result.steps


def test_a_pruning_request_streams_the_steps_of_its_result(engines, scheduler):
    engine = engines["llama"]
    request = engine.request("the cat sat on the", selection_threshold=0.02, max_tokens=10, min_steps=10,
                             use_retroactive_pruning=True, attention_threshold=0.2)
    job = scheduler.submit(request)
    streamed = streamed_steps(job)
    result = job.result
    assert len(result.steps) == 10 and [streamed[s] for s in sorted(streamed)] == result.steps
    assert any(c.status != "kept" for s in result.steps for c in s.candidates)  # pruning changed some steps
    assert result.to_dict()["steps"] == engine.run([request])[0].to_dict()["steps"]


# --- one engine driver -----------------------------------------------------------------------------

def test_the_scheduler_reaches_the_engine_only_through_tempo():
    for name in ("serve/scheduler.py", "serve/zerogpu.py"):
        text = source(name)
        for private in (".adapter", "loaded.tokenizer", "eos_ids", "pad_id", "Batch(", "MctsSearch",
                        "build_result", "token_text", "record_step", "._push", "._finish", "._context", "._texts"):
            assert private not in text, f"{name} uses {private}"
    dry_run = inspect.getsource(__import__("tempo.cli.generate", fromlist=["dry_run_summary"]).dry_run_summary)
    assert ".adapter" not in dry_run and "engine.check(" in dry_run


def test_no_module_reaches_into_a_job():
    for path in TEMPO.rglob("*.py"):
        if path.name == "jobs.py":
            continue
        assert not re.search(r"\bjob\._\w", path.read_text()), f"{path} uses a job's private part"


class PublicTempo:
    """Only ``Tempo``'s public surface for the scheduler: anything else raises AttributeError."""

    SURFACE = ("request", "run", "new_batch", "stream_steps", "result", "check")

    def __init__(self, engine: Tempo):
        self._engine = engine

    def __getattr__(self, name):
        if name not in self.SURFACE:
            raise AttributeError(f"the scheduler used Tempo.{name}, which is not its public surface")
        return getattr(self._engine, name)


def test_a_scheduler_over_the_public_surface_alone_matches_tempo_run(engines):
    engine = engines["llama"]
    scheduler = Scheduler(PublicTempo(engine), max_batch_size=4)
    try:
        requests = [engine.request("the cat sat on the", selection_threshold=0.05, max_tokens=6, min_steps=6),
                    engine.request("a dog", mode="mcts", max_tokens=3, min_steps=3, mcts_simulations=2, mcts_depth=1),
                    engine.request("the bird", mode="default", max_tokens=5, min_steps=5)]
        jobs = scheduler.submit_many(requests)
        results = [job.wait(120) for job in jobs]
    finally:
        scheduler.close()
    for result, alone in zip(results, engine.run(requests)):
        assert [[c.token_id for c in s.candidates] for s in result.steps] == \
            [[c.token_id for c in s.candidates] for s in alone.steps]
        assert result.text == alone.text and result.mode == alone.mode


def test_tempo_checks_the_rules_of_its_model(engines):
    engine = engines["llama"]
    layers = engine.adapter.num_layers
    engine.check(engine.request("x", use_retroactive_pruning=True, num_layers_to_use=layers))
    with pytest.raises(RequestError, match="num_layers_to_use"):
        engine.check(engine.request("x", use_retroactive_pruning=True, num_layers_to_use=layers + 1))


def test_a_new_batch_is_an_empty_batch_that_steps_to_the_result_of_run(engines):
    engine = engines["llama"]
    request = engine.request("the cat sat on the", selection_threshold=0.05, max_tokens=5, min_steps=5)
    seen = []
    batch = engine.new_batch(on_step=lambda row: seen.append(len(row.sets)))
    assert batch.rows == [] and batch.prompt_cache is engine.prompt_cache
    batch.add([request])
    while batch.rows:
        batch.step()
    assert seen == [1, 2, 3, 4, 5]
    assert engine.result(batch.finished[0]).text == engine.run([request])[0].text


def test_compare_modes_are_defined_once():
    from tempo.serve.endpoints import compare_variants

    assert compare_variants() == COMPARE_MODES
    for path in TEMPO.rglob("*.py"):
        if path.name != "runner.py":
            assert '"tempo_pruning"' not in path.read_text(), f"{path} names compare's modes again"


def test_bracket_and_clean_text_are_formatted_in_one_place():
    render = source("ui/render.py")
    assert '"/".join' not in render and "kept[0].text" not in render
    assert "gradio" not in source("engine/output.py") and "pandas" not in source("engine/output.py")


# --- one sampling chain -----------------------------------------------------------------------------

def test_the_sampling_chain_applies_its_steps_in_order():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 12)  # [B, K, V]
    seen = torch.rand(2, 12) > 0.5
    requests = [build_request("x", None, temperature=0.7, top_k=5, top_p=0.9, repetition_penalty=1.3),
                build_request("x", None, temperature=1.0, top_k=0, top_p=0.8, repetition_penalty=1.0)]
    settings = sampling.RowSettings.of(requests, [3, 4], "cpu")
    weights = torch.tensor([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])
    got = sampling.distribution(logits, settings, [True, False], [3], seen, weights)
    by_hand = sampling.suppress_tokens(logits, [True, False], [3])
    by_hand = sampling.repetition_penalty(by_hand, seen, torch.tensor([1.3, 1.0]))
    by_hand = sampling.combine(sampling.temperature_softmax(by_hand, torch.tensor([0.7, 1.0])), weights)
    want = sampling.top_k_top_p(by_hand, torch.tensor([5, 0]), torch.tensor([0.9, 0.8]), torch.tensor([3, 4]))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert float(got[0][0, (got[1][0] == 3).nonzero()].sum()) == 0.0  # EOS suppressed in the early row


def test_the_batch_and_the_tree_search_share_the_sampling_chain(engines, monkeypatch):
    engine = engines["llama"]
    calls = []
    original = sampling.distribution

    def spy(logits, settings, *args, **kwargs):
        calls.append(sys._getframe(1).f_code.co_name)
        return original(logits, settings, *args, **kwargs)

    monkeypatch.setattr(sampling, "distribution", spy)
    engine.run([engine.request("the cat", max_tokens=2, min_steps=2),
                engine.request("the cat", mode="mcts", max_tokens=2, min_steps=2, mcts_simulations=2, mcts_depth=1)])
    assert {"next_sets", "_distribution"} <= set(calls)
    for name in ("batch.py", "mcts.py"):
        text = source(f"engine/{name}")
        for step in ("suppress_tokens", "repetition_penalty", "temperature_softmax", "top_k_top_p"):
            assert f"sampling.{step}" not in text, f"engine/{name} writes the chain again ({step})"


# --- Job and the schedulers' shared surface -----------------------------------------------------------

class Idle(JobQueue):
    """A queue that never runs anything: the test drives its jobs by hand."""

    def submit_many(self, requests):
        return self.new_jobs(requests)

    def cancel(self, job):
        pass

    def queue_position(self, job):
        return 0

    queue_depth = property(lambda self: 0)
    running = property(lambda self: 0)

    def close(self, timeout=5.0):
        pass


def test_wait_for_blocks_until_the_job_reaches_a_state():
    job = Idle(None).submit(build_request("x", None))
    assert job.wait_for("queued", timeout=0) == "queued"
    with pytest.raises(TimeoutError, match="running"):
        job.wait_for("running", timeout=0.01)
    reached = []
    waiter = threading.Thread(target=lambda: reached.append(job.wait_for("step", timeout=30)))
    waiter.start()
    job.started()
    job.stepped([])
    waiter.join(30)
    assert reached == ["step"] and job.state == "step"
    job.finish(error=RuntimeError("boom"))
    assert job.wait_for("running", timeout=0) == "error" and job.wait_for("done", timeout=0) == "error"
    assert job.done
    with pytest.raises(ValueError, match="state"):
        job.wait_for("finished")


def test_wait_for_on_a_scheduled_job(engines, scheduler):
    engine = engines["llama"]
    job = scheduler.submit(engine.request("the cat", selection_threshold=0.05, max_tokens=4, min_steps=4))
    assert job.wait_for("running", timeout=60) in ("running", "step", "done")
    assert job.wait_for("done", timeout=60) == "done" and job.done and len(job.result.steps) == 4


def test_both_schedulers_share_one_surface(engines):
    from tempo.serve.zerogpu import DirectScheduler, make_scheduler

    assert not issubclass(DirectScheduler, Scheduler) and issubclass(DirectScheduler, JobQueue)
    assert issubclass(Scheduler, JobQueue)
    assert inspect.signature(make_scheduler).return_annotation in (JobQueue, "JobQueue")
    direct = DirectScheduler(engines["llama"], gpu=lambda fn: fn, max_batch_size=4)
    job = direct.submit(engines["llama"].request("the cat", max_tokens=3, min_steps=3))
    assert job.done and job.state == "done" and job.queue_position is None
    assert direct.stats()["requests_done"] == 1 and direct.stats()["queue_depth"] == 0
