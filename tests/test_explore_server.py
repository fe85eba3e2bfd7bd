"""The layer view and forks through a real server on loopback: REST ``POST /lens`` / ``POST /forks`` and the
``gradio_client`` endpoints ``/lens`` / ``/forks`` answer what the Python API answers; every rollout of a call is
submitted to the scheduler at once; bad values are 422s (errors) naming the field."""
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tempo.settings.loader import load_settings
from helpers import serving

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.usefixtures("clean_tempo_env")]

PROMPT = "the cat sat on the"
SETS = {"max_tokens": 4, "min_steps": 4, "temperature": 1.0, "selection_threshold": 0.06, "max_parallel_tokens": 3,
        "top_k": 0, "top_p": 1.0}


@pytest.fixture(scope="module")
def served(long_model_dir):
    settings = load_settings(overrides={"app.stream_interval": 0.0})
    with serving(long_model_dir, settings) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    client = Client(served[1].url, verbose=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def parent(served):
    return served[0].generate(PROMPT, **SETS)


def test_lens_rest_and_client_equal_the_python_api(served, client, parent):
    engine, server = served
    by_prompt = httpx.post(server.url + "lens", json={"prompt": PROMPT, "top_k": 3}, timeout=60)
    assert by_prompt.status_code == 200
    assert by_prompt.json() == engine.lens(PROMPT, top_k=3).to_dict()
    step = len(parent.steps) - 1
    expected = engine.lens(result=parent, step=step, top_k=3).to_dict()
    assert httpx.post(server.url + "lens", json={"result": parent.to_dict(), "step": step, "top_k": 3},
                      timeout=60).json() == expected
    assert client.predict(None, parent.to_dict(), step, 3, api_name="/lens") == expected
    bad = httpx.post(server.url + "lens", json={"prompt": PROMPT, "top_k": 0}, timeout=60)
    assert bad.status_code == 422 and bad.json()["field"] == "top_k"
    bad = httpx.post(server.url + "lens", json={"result": parent.to_dict(), "step": 99}, timeout=60)
    assert bad.status_code == 422 and bad.json()["field"] == "step"


def test_forks_rest_equals_the_python_api_and_submits_every_rollout_at_once(served, parent, monkeypatch):
    engine, server = served
    scheduler = server.app.state.scheduler
    calls = []
    submit_many = scheduler.submit_many

    def recording(requests):
        calls.append(len(requests))
        return submit_many(requests)

    monkeypatch.setattr(scheduler, "submit_many", recording)
    options = {"samples": 3, "horizon": 3, "rollout_temperature": 0.0}
    answer = httpx.post(server.url + "forks", json={"result": parent.to_dict(), **options}, timeout=120)
    assert answer.status_code == 200, answer.text
    expected = engine.forks(parent, **options).to_dict()
    assert _same_forks(answer.json(), expected)
    rollouts = sum(len(f["candidates"]) for f in expected["forks"])  # greedy: one rollout per candidate
    assert calls == [rollouts]
    # from a prompt and request fields: the generation, then its forks
    answer = httpx.post(server.url + "forks", json={"prompt": PROMPT, **SETS, **options}, timeout=120).json()
    assert answer["result"]["prompt"] == PROMPT and len(answer["forks"]) == len(expected["forks"])


def _same_forks(got: dict, expected: dict) -> bool:
    """Steps, scores, fork marks, candidates and outcomes equal (probabilities within batching noise)."""
    for a, b in zip(got["forks"], expected["forks"], strict=True):
        assert (a["step"], a["fork"], a["score"]) == (b["step"], b["fork"], pytest.approx(b["score"]))
        assert [(c["token_id"], c["outcomes"]) for c in a["candidates"]] == \
               [(c["token_id"], c["outcomes"]) for c in b["candidates"]]
    return True


@pytest.mark.parametrize("values, field", [({"samples": 0}, "samples"), ({"horizon": 65}, "horizon"),
                                           ({"outcome_pattern": "(x"}, "outcome_pattern")])
def test_forks_rest_refuses_bad_values_naming_the_field(served, parent, values, field):
    answer = httpx.post(served[1].url + "forks", json={"result": parent.to_dict(), **values}, timeout=60)
    assert answer.status_code == 422 and answer.json()["field"] == field
    assert answer.json()["detail"].startswith(f"{field}: ")


def test_forks_client_streams_progress_then_the_analysis(served, client, parent):
    job = client.submit(None, None, {"samples": 2, "horizon": 2, "rollout_temperature": 1.0}, parent.to_dict(),
                        api_name="/forks")
    final = job.result(timeout=120)
    progress = [o for o in job.outputs()[:-1] if o.get("stop_reason") == "running"]
    total = sum(2 * len(f["candidates"]) for f in final["forks"])
    assert progress and all(p["rollouts_total"] == total for p in progress)
    done = [p["rollouts_done"] for p in progress]
    assert done == sorted(done) and done[-1] <= total
    assert all(sum(c["outcomes"].values()) == 2 for f in final["forks"] for c in f["candidates"])
    with pytest.raises(AppError, match="samples: "):
        client.predict(None, None, {"samples": 0}, parent.to_dict(), api_name="/forks")
