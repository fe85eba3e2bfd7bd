"""The app against a real server on loopback: gradio_client endpoints, batching, cancel, REST."""
import concurrent.futures

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tempo.serve.rest import ApiConfig, Server, create_app
from tempo.settings.loader import load_settings
from tempo.result import GenerationResult
from helpers import alone, record_jobs, same, serving

pytestmark = [pytest.mark.server, pytest.mark.slow]  # every test here talks to a real server on loopback

SET = {"selection_threshold": 0.05, "max_tokens": 10, "min_steps": 10}


@pytest.fixture(scope="module")
def served(long_model_dir):
    """One engine, scheduler and server for the module (a fresh scheduler: its counters are ours)."""
    settings = load_settings(overrides={"app.stream_interval": 0.0})  # every step streams: the test sees the text grow
    with serving(long_model_dir, settings) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    client = Client(served[1].url, verbose=False)
    yield client
    client.close()


def test_generate_streams_growing_results_and_ends_with_a_parallel_set(served, client):
    engine, _ = served
    job = client.submit("the cat sat on the", SET, api_name="/generate")
    final = job.result(timeout=60)
    streamed = job.outputs()
    assert final["stop_reason"] == "max_tokens" and "[" in final["text"] and "/" in final["text"]
    same(GenerationResult.from_dict(final), alone(engine, "the cat sat on the", **SET))
    partial = streamed[:-1]
    done = [o["steps_done"] for o in partial]
    assert len(partial) >= 2 and done == sorted(done) and done[0] < done[-1] <= len(final["steps"])
    assert all(o["stop_reason"] == "running" and final["text"].startswith(o["text"]) for o in partial)
    assert len(partial[0]["text"]) < len(partial[-1]["text"])


def test_generate_batch_answers_each_input(served, client):
    engine, _ = served
    prompts = ["the cat sat on the", "a big red dog", "bird"]
    jobs = [client.submit(p, SET, api_name="/generate_batch") for p in prompts]
    bad = client.submit("the cat", {"top_p": 3.0}, api_name="/generate_batch")
    for prompt, job in zip(prompts, jobs):
        result = job.result(timeout=60)
        assert result["prompt"] == prompt
        same(GenerationResult.from_dict(result), alone(engine, prompt, **SET))
    assert bad.result(timeout=60) == {"error": "top_p: must be in [0.0, 1.0], got 3.0", "field": "top_p"}


@pytest.mark.parametrize("prompt, fields, field", [
    ("", {}, "prompt"),
    ("the cat", {"selection_threshold": 2.0}, "selection_threshold"),
    ("the cat", {"max_tokens": 5000}, "max_tokens"),
    ("the cat", {"no_such_setting": 1}, "no_such_setting"),
])
def test_bad_input_names_the_field_and_the_next_request_succeeds(client, prompt, fields, field):
    with pytest.raises(AppError) as caught:
        client.predict(prompt, fields, api_name="/generate")
    assert str(caught.value).startswith(f"{field}:"), str(caught.value)
    assert client.predict("the cat", {"max_tokens": 3}, api_name="/generate")["stop_reason"] in ("max_tokens", "eos")


def test_eight_concurrent_users_are_batched(served, client):
    engine, server = served
    counters = server.app.state.scheduler.counters
    steps, rows = counters.steps_run, counters.rows_stepped
    prompts = ["the cat sat on the", "a big red dog", "bird", "the sun", "a quick fox", "the moon was",
               "the blue tree", "a small house"]
    fields = {**SET, "max_tokens": 24, "min_steps": 24}
    jobs = [client.submit(p, fields, api_name="/generate") for p in prompts]
    results = [job.result(timeout=120) for job in jobs]
    for prompt, result in zip(prompts, results):
        same(GenerationResult.from_dict(result), alone(engine, prompt, **fields))
    mean = (counters.rows_stepped - rows) / (counters.steps_run - steps)
    assert mean > 1, f"mean batch size {mean}"
    health = httpx.get(server.url + "health").json()
    assert health["mean_batch_size"] > 1 and health["batches_run"] >= 1


def test_cancelling_one_of_two_jobs_leaves_the_other_identical(served, client, monkeypatch):
    engine, server = served
    scheduler = server.app.state.scheduler
    cancelled_before = scheduler.counters.requests_cancelled
    recorder = record_jobs(monkeypatch, scheduler)
    fields = {**SET, "max_tokens": 80, "min_steps": 80}
    other_user = Client(server.url, verbose=False)  # Gradio's cancel stops every job of a session's endpoint
    keep = client.submit("the cat sat on the", fields, api_name="/generate")
    drop = other_user.submit("a big red dog", {**fields, "max_tokens": 400, "min_steps": 400}, api_name="/generate")
    dropped = recorder.job("a big red dog", timeout=30)
    dropped.wait_for("step", timeout=30)  # it runs in the batch with the other
    drop.cancel()
    result = keep.result(timeout=120)
    same(GenerationResult.from_dict(result), alone(engine, "the cat sat on the", **fields))
    assert dropped.wait_for("done", timeout=10) == "cancelled", dropped.result and dropped.result.stop_reason
    assert scheduler.counters.requests_cancelled == cancelled_before + 1


def test_compare_and_model_info(served, client):
    engine, _ = served
    both = client.predict("the cat sat on the", SET, api_name="/compare")
    assert set(both) >= {"tempo", "default"}
    assert all(len(s["candidates"]) == 1 for s in both["default"]["steps"])
    same(GenerationResult.from_dict(both["tempo"]), alone(engine, "the cat sat on the", **SET))
    info = client.predict(api_name="/model_info")
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["parameters"] > 0
    assert "queue" in info


def test_rest_health_generate_and_422(served):
    engine, server = served
    health = httpx.get(server.url + "health").json()
    assert health["model_loaded"] is True and health["device"] == "cpu"
    assert {"queue_depth", "batches_run", "mean_batch_size"} <= set(health)
    answer = httpx.post(server.url + "generate", json={"prompt": "the cat sat on the", **SET}, timeout=60)
    assert answer.status_code == 200
    same(GenerationResult.from_dict(answer.json()), alone(engine, "the cat sat on the", **SET))
    for body, field in (({"prompt": "the cat", "selection_threshold": 2.0}, "selection_threshold"),
                        ({"prompt": "the cat", "top_k": "many"}, "top_k"),
                        ({"prompt": "the cat", "bogus": 1}, "bogus"),
                        ({"max_tokens": 3}, "prompt")):
        bad = httpx.post(server.url + "generate", json=body)
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
    broken = httpx.post(server.url + "generate", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert httpx.get(server.url + "docs").status_code == 200
    assert httpx.get(server.url + "openapi.json").json()["paths"].keys() >= {"/health", "/generate"}


def test_rest_rate_limit_answers_429_and_docs_can_be_off(served):
    engine, server = served
    config = ApiConfig(rate_limit=3, enable_docs=False, max_concurrent_requests=1)
    limited = Server(create_app(engine, engine.settings, scheduler=server.app.state.scheduler, config=config)).start()
    try:
        codes = [httpx.get(limited.url + "health").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        answer = httpx.get(limited.url + "health")
        assert "rate_limit" in answer.json()["detail"] and int(answer.headers["retry-after"]) >= 1
        assert httpx.get(limited.url + "docs").status_code == 404
    finally:
        limited.close()


def test_rest_max_concurrent_requests_answers_503(served, monkeypatch):
    engine, server = served
    recorder = record_jobs(monkeypatch, server.app.state.scheduler)
    config = ApiConfig(rate_limit=0, max_concurrent_requests=1)
    limited = Server(create_app(engine, engine.settings, scheduler=server.app.state.scheduler, config=config)).start()
    try:
        body = {"prompt": "the cat", **SET, "max_tokens": 150, "min_steps": 150}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, limited.url + "generate", json=body, timeout=60)
            recorder.job("the cat", timeout=30).wait_for("running", timeout=30)  # the first is being served
            second = httpx.post(limited.url + "generate", json=body, timeout=60)
            assert first.result().status_code == 200
        assert second.status_code == 503 and "max_concurrent_requests" in second.json()["detail"]
    finally:
        limited.close()


def test_pruning_and_mcts_fields_work_through_the_api(served, client):
    engine, _ = served
    pruning = {**SET, "use_retroactive_pruning": True, "attention_threshold": 0.2, "max_tokens": 12, "min_steps": 12}
    result = client.predict("the cat sat on the", pruning, api_name="/generate")
    assert result["settings"]["use_retroactive_pruning"] is True
    assert any(c["attention"] is not None for s in result["steps"] for c in s["candidates"])
    same(GenerationResult.from_dict(result), alone(engine, "the cat sat on the", **pruning))
    search = {"mode": "mcts", "max_tokens": 4, "min_steps": 4, "mcts_simulations": 2, "mcts_depth": 2}
    result = client.predict("the cat", search, api_name="/generate")
    assert result["mode"] == "mcts" and len(result["steps"]) == 4


def test_a_rest_client_that_goes_away_leaves_the_batch(served, monkeypatch):
    _, server = served
    counters = server.app.state.scheduler.counters
    cancelled = counters.requests_cancelled
    recorder = record_jobs(monkeypatch, server.app.state.scheduler)
    body = {"prompt": "the cat", **SET, "max_tokens": 400, "min_steps": 400}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "generate", json=body, timeout=0.5)  # the client hangs up
    assert recorder.job("the cat", timeout=20).wait_for("done", timeout=20) == "cancelled"
    assert counters.requests_cancelled == cancelled + 1
