"""Branch through a real server on loopback: REST ``POST /branch`` and the ``gradio_client`` endpoint ``/branch``
give ``Tempo.branch``'s result, run in the scheduler's batch beside other users' requests."""
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from helpers import serving, tokens
from tempo.result import GenerationResult
from tempo.settings.loader import load_settings

pytestmark = [pytest.mark.server, pytest.mark.slow]

PROMPT = "the cat sat on the"
SET = {"selection_threshold": 0.05, "max_tokens": 8, "min_steps": 8, "temperature": 1.0}


@pytest.fixture(scope="module")
def served(long_model_dir):
    with serving(long_model_dir, load_settings()) as served:
        yield served


@pytest.fixture(scope="module")
def parent(served):
    return served[0].generate(PROMPT, **SET)


def test_rest_branch_of_a_result_beside_a_running_request(served, parent):
    engine, server = served
    scheduler = server.app.state.scheduler
    busy = scheduler.submit(engine.request("a big red dog ran", max_tokens=400, min_steps=400, temperature=0.0))
    try:
        busy.wait_for("step", timeout=60)
        reply = httpx.post(server.url + "branch", json={"parent": parent.to_dict(), "step": 2, "token_id": 9,
                                                        "overrides": {"max_tokens": 10}}, timeout=120)
        assert not busy.done, "the branch ran while the other request was in the batch"
    finally:
        busy.cancel()
    assert reply.status_code == 200, reply.text
    child = GenerationResult.from_dict(reply.json())
    expected = engine.branch(parent, 2, 9, max_tokens=10)
    assert tokens(child) == tokens(expected) and child.parent == {"prompt": PROMPT, "step": 2, "token_id": 9}
    assert scheduler.counters.max_batch_seen >= 2


def test_rest_branch_of_a_request_generates_the_parent_first(served, parent):
    engine, server = served
    reply = httpx.post(server.url + "branch", json={"request": {"prompt": PROMPT, **SET}, "step": 3, "token_id": 9},
                       timeout=120)
    assert reply.status_code == 200, reply.text
    assert tokens(GenerationResult.from_dict(reply.json())) == tokens(engine.branch(parent, 3, 9))


@pytest.mark.parametrize("body, field", [
    ({"step": 99, "token_id": 9}, "step"),
    ({"step": 1, "token_id": 10**6}, "token_id"),
    ({"step": 1, "token_id": 9, "overrides": {"top_p": 3.0}}, "top_p"),
    ({"step": 1, "token_id": 9, "overrides": {"forced_sets": [[1]]}}, "forced_sets"),
    ({"step": "x", "token_id": 9}, "step"),
    ({"token_id": 9}, "step"),
    ({"step": 1, "token_id": 9, "colour": "red"}, "colour"),
])
def test_rest_refusals_name_the_field(served, parent, body, field):
    reply = httpx.post(served[1].url + "branch", json={"parent": parent.to_dict(), **body}, timeout=60)
    assert reply.status_code == 422 and reply.json()["field"] == field, reply.text


def test_rest_needs_one_parent(served, parent):
    both = {"parent": parent.to_dict(), "request": {"prompt": PROMPT}, "step": 0, "token_id": 9}
    for body in (both, {"step": 0, "token_id": 9}):
        reply = httpx.post(served[1].url + "branch", json=body, timeout=60)
        assert reply.status_code == 422 and reply.json()["field"] == "parent", reply.text


def test_gradio_client_branch(served, parent):
    engine, server = served
    client = Client(server.url, verbose=False)
    try:
        out = client.predict(parent.to_dict(), 4, 9, {"max_tokens": 9}, api_name="/branch")
        assert tokens(GenerationResult.from_dict(out)) == tokens(engine.branch(parent, 4, 9, max_tokens=9))
        assert out["parent"] == {"prompt": PROMPT, "step": 4, "token_id": 9}
        from_request = client.predict({"prompt": PROMPT, **SET}, 0, 9, None, api_name="/branch")
        assert tokens(GenerationResult.from_dict(from_request)) == tokens(engine.branch(parent, 0, 9))
        with pytest.raises(AppError, match="step: must be in"):
            client.predict(parent.to_dict(), 99, 9, None, api_name="/branch")
    finally:
        client.close()
