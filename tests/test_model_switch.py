"""Switching the model at run time (REST POST /model, tempo/serve/switch.py) against a real server on loopback:
refused when off (403) or without the admin token (401); a missing or too large model refused naming it while
the old model keeps serving; a good one serves the next request (tokens equal its greedy HF generate()); a
request running during a switch finishes on the old model unchanged, one past the switch's timeout is cancelled
saying why, and requests queued meanwhile run on the new model."""
import threading
import time

import httpx
import pytest
import torch

from tempo.errors import RequestCancelled
from tempo.models.loading import load_model
from tempo.engine.runner import Tempo
from tempo.result import GenerationResult
from tempo.settings import load_settings
from helpers import alone, record_jobs, same, save_tiny, serving

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.usefixtures("clean_tempo_env")]

TOKEN = "s3cret-admin-token-for-the-test"
GREEDY = {"mode": "default", "temperature": 0.0, "max_tokens": 12, "min_steps": 12}
LONG = {"mode": "default", "temperature": 0.0, "max_tokens": 1000, "min_steps": 1000}
"""Long enough that the switch begins while it runs (1,000 steps; the switch loads a 0.1M-parameter model)."""


@pytest.fixture(scope="module")
def new_model_dir(tmp_path_factory):
    """Another tiny Llama (other weights, same tokenizer): the model switched to."""
    return save_tiny(tmp_path_factory.mktemp("switch") / "new", "llama", seed=1, positions=4096)


def settings(**overrides):
    return load_settings(overrides={"app.stream_interval": 0.0, **overrides})


def switch(server, model_id, token: str | None = TOKEN, timeout: float = 120):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(server.url + "model", json={"model_id": str(model_id)}, headers=headers, timeout=timeout)


def generate(server, prompt="the cat sat on the", fields=GREEDY, timeout: float = 120):
    answer = httpx.post(server.url + "generate", json={"prompt": prompt, **fields}, timeout=timeout)
    assert answer.status_code == 200, answer.text
    return GenerationResult.from_dict(answer.json())


def hf_greedy(engine, prompt, n):
    """The model's own greedy continuation (Hugging Face generate(), EOS suppressed for n tokens)."""
    model, tokenizer = engine.loaded.model, engine.loaded.tokenizer
    ids = tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=n, min_new_tokens=n, eos_token_id=engine.eos_ids,
                             pad_token_id=engine.pad_id)
    return out[0, len(ids):].tolist()


def test_switching_off_is_refused_naming_the_setting(long_model_dir, new_model_dir):
    with serving(long_model_dir, settings()) as (engine, server):
        refused = switch(server, new_model_dir)
        assert refused.status_code == 403 and "app.allow_model_switch" in refused.json()["detail"]
        assert httpx.get(server.url + "health").json()["model"] == str(long_model_dir)
        assert generate(server).model.id == str(long_model_dir)


def test_the_admin_token_is_required_then_a_good_model_serves_the_next_request(long_model_dir, new_model_dir,
                                                                              monkeypatch, caplog):
    monkeypatch.setenv("TEMPO_API__ADMIN_TOKEN", TOKEN)  # the environment's spelling of the secret
    with serving(long_model_dir, settings(**{"app.allow_model_switch": True})) as (engine, server):
        assert server.app.state.switcher.settings.api.admin_token == TOKEN
        for token in (None, "wrong"):
            refused = switch(server, new_model_dir, token=token)
            assert refused.status_code == 401 and "api.admin_token" in refused.json()["detail"], refused.text
            assert refused.headers["www-authenticate"] == "Bearer"
        before = generate(server)
        assert before.model.id == str(long_model_dir)

        with caplog.at_level("DEBUG", logger="tempo"):
            answer = switch(server, new_model_dir)
        assert answer.status_code == 200, answer.text
        outcome = answer.json()
        assert outcome["model"] == str(new_model_dir) and outcome["previous"] == str(long_model_dir)
        assert outcome["cancelled"] == 0 and outcome["memory"]["fits"]
        health = httpx.get(server.url + "health").json()
        assert health["model"] == str(new_model_dir) and health["fallback"] is None
        assert TOKEN not in httpx.get(server.url + "health").text and TOKEN not in caplog.text
        from tempo.cli.config import effective
        from tempo.settings import read_settings

        assert effective(read_settings())["api.admin_token"] == {"value": "****",
                                                                 "source": "environment TEMPO_API__ADMIN_TOKEN"}

        after = generate(server)
        reference = Tempo(load_model(str(new_model_dir)))
        assert after.model.id == str(new_model_dir)
        assert [s.candidates[0].token_id for s in after.steps] == hf_greedy(reference, "the cat sat on the", 12)
        assert [s.candidates[0].token_id for s in after.steps] != [s.candidates[0].token_id for s in before.steps]


def test_a_missing_model_is_refused_naming_it_and_the_old_model_keeps_serving(long_model_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # the hub unreachable, without retries
    missing = tmp_path / "no-such-model"
    with serving(long_model_dir, settings(**{"app.allow_model_switch": True})) as (engine, server):
        for model_id in (str(missing), "nobody/no-such-model-on-the-hub"):
            refused = switch(server, model_id, token=None)  # no token set: none needed
            assert refused.status_code == 422, refused.text
            body = refused.json()
            assert body["model_id"] == model_id and repr(model_id) in body["detail"]
            assert "keeps serving" in body["detail"]
        assert httpx.get(server.url + "health").json()["model"] == str(long_model_dir)
        same(generate(server), alone(engine, "the cat sat on the", **GREEDY))


def test_a_model_too_big_for_the_memory_is_refused_with_the_figures(long_model_dir, new_model_dir):
    limit_mb = 0.1
    with serving(long_model_dir, settings(**{"app.allow_model_switch": True, "app.model_memory_limit_mb": limit_mb})
                 ) as (engine, server):
        refused = switch(server, new_model_dir, token=None)
        assert refused.status_code == 422, refused.text
        body, memory = refused.json(), refused.json()["memory"]
        new = load_model(str(new_model_dir)).model
        config = new.config
        head_dim = config.hidden_size // config.num_attention_heads
        kv_per_position = config.num_hidden_layers * config.num_key_value_heads * 2 * head_dim * 4  # float32
        assert memory["weights_bytes"] == sum(p.numel() for p in new.parameters()) * 4
        assert memory["kv_bytes"] == kv_per_position * config.max_position_embeddings
        assert memory["available_bytes"] == int(limit_mb * 1024 * 1024) and not memory["fits"]
        assert memory["needed_bytes"] > memory["available_bytes"]
        assert "does not fit" in body["detail"] and "102.40 KiB available" in body["detail"]
        assert "app.model_memory_limit_mb" in body["detail"] and repr(str(new_model_dir)) in body["detail"]
        assert httpx.get(server.url + "health").json()["model"] == str(long_model_dir)
        same(generate(server), alone(engine, "the cat sat on the", **GREEDY))


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)


def test_a_request_running_during_a_switch_is_not_corrupted_and_queued_ones_run_on_the_new_model(
        long_model_dir, new_model_dir, monkeypatch):
    with serving(long_model_dir, settings(**{"app.allow_model_switch": True})) as (engine, server):
        scheduler = server.app.state.scheduler
        recorder = record_jobs(monkeypatch, scheduler)
        answers = {}
        running = threading.Thread(target=lambda: answers.update(old=generate(server, "a big red dog", LONG)))
        running.start()
        job = recorder.job("a big red dog", timeout=30)
        job.wait_for("step", timeout=30)
        switching = threading.Thread(target=lambda: answers.update(switch=switch(server, new_model_dir, None)))
        switching.start()
        wait_until(lambda: scheduler.switching)
        assert not job.done  # the switch waits for it
        queued = threading.Thread(target=lambda: answers.update(new=generate(server)))
        queued.start()
        waiting = recorder.job("the cat sat on the", timeout=30)
        for thread in (running, switching, queued):
            thread.join(300)
        assert answers["switch"].status_code == 200 and answers["switch"].json()["cancelled"] == 0
        assert waiting.state == "done" and len(answers["old"].steps) == 1000
        same(answers["old"], alone(engine, "a big red dog", **LONG))  # as if no switch had happened
        reference = Tempo(load_model(str(new_model_dir)), engine.settings)
        assert answers["new"].model.id == str(new_model_dir)
        same(answers["new"], alone(reference, "the cat sat on the", **GREEDY))


def test_a_request_still_running_past_the_switch_timeout_is_cancelled_saying_why(long_model_dir, new_model_dir,
                                                                                  monkeypatch):
    overrides = {"app.allow_model_switch": True, "app.model_switch_timeout": 0.2}
    with serving(long_model_dir, settings(**overrides)) as (engine, server):
        recorder = record_jobs(monkeypatch, server.app.state.scheduler)
        answers = {}
        running = threading.Thread(target=lambda: answers.update(old=httpx.post(
            server.url + "generate", json={"prompt": "a big red dog", **LONG}, timeout=120)))
        running.start()
        job = recorder.job("a big red dog", timeout=30)
        job.wait_for("step", timeout=30)
        outcome = switch(server, new_model_dir, None)
        running.join(120)
        assert outcome.status_code == 200 and outcome.json()["cancelled"] == 1
        assert isinstance(job.error, RequestCancelled) and job.state == "error"
        cancelled = answers["old"]
        assert cancelled.status_code == 503, cancelled.text
        detail = cancelled.json()["detail"]
        assert "switched" in detail and str(new_model_dir) in detail and "app.model_switch_timeout = 0.2 s" in detail
        assert generate(server).model.id == str(new_model_dir)


def test_zerogpu_direct_runs_switch_between_runs_too(long_model_dir, new_model_dir):
    """A ZeroGPU Space generates in the caller's thread (DirectScheduler): a switch waits for the runs in flight
    (new submits wait for it), and past its timeout stops them saying why."""
    from tempo.serve.zerogpu import DirectScheduler

    started = threading.Event()

    def gpu(fn):  # what spaces.GPU would wrap; tells the test when a run has begun
        def wrapped(*args):
            started.set()
            return fn(*args)
        return wrapped

    settings_ = settings()
    old, new = (Tempo(load_model(str(path)), settings_) for path in (long_model_dir, new_model_dir))
    direct = DirectScheduler(old, gpu)
    jobs, swaps = {}, {}
    running = threading.Thread(target=lambda: jobs.update(old=direct.submit(old.request("a big red dog", **LONG))))
    running.start()
    started.wait(30)
    switching = threading.Thread(target=lambda: swaps.update(first=direct.swap(new, 300, "a test switch")))
    switching.start()
    wait_until(lambda: direct.switching)
    queued = threading.Thread(target=lambda: jobs.update(new=direct.submit(new.request("the cat sat on the",
                                                                                        **GREEDY))))
    queued.start()
    for thread in (running, switching, queued):
        thread.join(300)
    assert swaps["first"] == 0
    same(jobs["old"].result, alone(old, "a big red dog", **LONG))
    assert jobs["new"].result.model.id == str(new_model_dir)
    same(jobs["new"].result, alone(new, "the cat sat on the", **GREEDY))

    started.clear()
    running = threading.Thread(target=lambda: jobs.update(cut=direct.submit(new.request("a big red dog", **LONG))))
    running.start()
    started.wait(30)
    assert direct.swap(old, 0.2, "a second test switch") == 1
    running.join(60)
    assert isinstance(jobs["cut"].error, RequestCancelled) and "a second test switch" in str(jobs["cut"].error)
    assert direct.submit(old.request("the cat sat on the", **GREEDY)).result.model.id == str(long_model_dir)
