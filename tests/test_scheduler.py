"""The batch queue: concurrent requests share the batch, each streams its own steps, cancels leave alone."""
import threading

import pytest

from tempo.errors import RequestError
from tempo.serve.scheduler import Scheduler
from helpers import alone, same


@pytest.fixture
def scheduler(engines):
    s = Scheduler(engines["llama"], max_batch_size=16)
    yield s
    s.close()


def test_requests_from_many_threads_share_the_batch_and_match_running_alone(engines, scheduler):
    engine = engines["llama"]
    prompts = ["the cat sat on the", "a big red dog ran to the house and", "bird", "the sun was in the sky"]
    requests = [engine.request(p, selection_threshold=0.05, max_tokens=12, min_steps=12) for p in prompts]
    results = [None] * len(requests)
    go = threading.Barrier(len(requests))

    def user(i):
        go.wait()
        results[i] = scheduler.submit(requests[i]).wait(60)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result, request in zip(results, requests):
        same(result, alone(engine, request))
    stats = scheduler.stats()
    assert stats["requests_done"] == 4 and stats["mean_batch_size"] > 1 and stats["queue_depth"] == 0
    assert any(len(s.kept) > 1 for r in results for s in r.steps)


def test_stream_yields_each_step_once_then_the_result(engines, scheduler):
    request = engines["llama"].request("the cat sat on the", selection_threshold=0.05, max_tokens=6, min_steps=6)
    job = scheduler.submit(request)
    updates = list(job.stream())
    assert updates[0].state == "queued" and updates[-1].state == "done"
    steps = [u.steps[0].step for u in updates if u.state == "step"]
    assert steps == list(range(6))
    assert [s.candidates for s in job.steps] == [s.candidates for s in job.result.steps]


def test_a_cancelled_running_job_leaves_and_the_other_is_unchanged(engines, scheduler):
    engine = engines["llama"]
    keep = engine.request("the cat sat on the", selection_threshold=0.05, max_tokens=20, min_steps=20)
    drop = engine.request("a big red dog", selection_threshold=0.05, max_tokens=20, min_steps=20)
    kept_job, dropped_job = scheduler.submit_many([keep, drop])
    for update in dropped_job.stream():
        if len(dropped_job.steps) >= 3:
            dropped_job.cancel()
            break
    assert dropped_job.wait(30).stop_reason == "cancelled"
    assert len(dropped_job.result.steps) < 20
    same(kept_job.wait(60), alone(engine, keep))
    assert scheduler.stats()["requests_cancelled"] == 1


def test_queue_position_when_the_batch_is_full(engines):
    engine = engines["llama"]
    scheduler = Scheduler(engine, max_batch_size=1)
    try:
        requests = [engine.request(p, selection_threshold=0.05, max_tokens=8, min_steps=8)
                    for p in ("the cat", "a dog", "the bird")]
        first, second, third = scheduler.submit_many(requests)
        assert [third.queue_position, second.queue_position] in ([2, 1], [1, 0])
        third.cancel()  # still queued: it ends at once and never runs
        assert third.done and third.result is None and third.cancelled
        assert second.wait(60).stop_reason == "max_tokens" and first.result.stop_reason == "max_tokens"
        assert scheduler.stats()["max_batch_size_seen"] == 1
    finally:
        scheduler.close()


def test_an_engine_error_fails_only_its_job(engines, scheduler):
    engine = engines["llama"]
    bad = engine.request("the cat", use_retroactive_pruning=True, num_layers_to_use=99, max_tokens=4)
    good = engine.request("the cat", selection_threshold=0.05, max_tokens=4)
    bad_job, good_job = scheduler.submit(bad), scheduler.submit(good)
    with pytest.raises(RequestError, match="num_layers_to_use"):
        bad_job.wait(30)
    assert good_job.wait(30).stop_reason in ("max_tokens", "eos")
    assert scheduler.submit(good).wait(30).text == good_job.result.text  # the worker is still alive


def test_a_tree_search_interleaves_with_the_batch_and_can_be_cancelled(engines, scheduler):
    engine = engines["llama"]
    search = engine.request("the cat", mode="mcts", max_tokens=8, min_steps=8, mcts_simulations=2, mcts_depth=2)
    quick = engine.request("the cat sat on the", selection_threshold=0.05, max_tokens=3, min_steps=3)
    search_job, quick_job = scheduler.submit_many([search, quick])
    quick_job.wait(60)
    assert not search_job.done  # the batch did not wait for the whole search
    same(quick_job.result, alone(engine, quick))
    assert search_job.wait(120).mode == "mcts" and len(search_job.result.steps) == 8
    long_search = scheduler.submit(engine.request("a dog", mode="mcts", max_tokens=50, min_steps=50,
                                                  mcts_simulations=2, mcts_depth=2))
    for _ in long_search.stream():
        if len(long_search.steps) >= 2:
            long_search.cancel()
    assert long_search.cancelled and long_search.result is None and len(long_search.steps) < 50
    assert scheduler.submit(quick).wait(60).text == quick_job.result.text


def test_streamed_tree_search_steps_carry_visits_and_values(engines, scheduler):
    """The stream builds its steps the way the final result does, MCTS visit counts and values included."""
    engine = engines["llama"]
    job = scheduler.submit(engine.request("the cat", mode="mcts", max_tokens=4, min_steps=4, mcts_simulations=3,
                                          mcts_depth=1))
    for _ in job.stream():
        pass
    streamed = [[(c.token_id, c.visits, c.value) for c in s.candidates] for s in job.steps]
    final = [[(c.token_id, c.visits, c.value) for c in s.candidates] for s in job.result.steps]
    assert streamed == final and len(final) == 4
    assert all(visits is not None and visits >= 1 for step in final for _, visits, _ in step)
