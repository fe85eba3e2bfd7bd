"""Oversized input over a real server on loopback: refused with 413 / 422 naming the limit, never a 500, and the
server answers afterwards (api.max_body_bytes, generation.max_prompt_tokens, the model's context)."""
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tempo.engine.runner import Tempo
from tempo.models.loading import load_model
from tempo.serve.rest import Server, create_app
from tempo.settings.loader import load_settings
from test_limits import words

pytestmark = [pytest.mark.server, pytest.mark.slow]

MAX_PROMPT_TOKENS = 200
FIVE_MB = "the " * 1_310_720  # 5 MiB of prompt


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    settings = load_settings(overrides={"generation.max_prompt_tokens": MAX_PROMPT_TOKENS})
    engine = Tempo(load_model(str(tiny_model_dir["llama"])), settings)
    server = Server(create_app(engine, settings), host="127.0.0.1").start()
    yield server
    server.close()


def healthy(server) -> None:
    assert httpx.get(server.url + "health", timeout=30).json()["status"] == "ok"


def test_a_5_mb_body_answers_413_naming_the_limit_and_the_server_stays_up(served):
    response = httpx.post(served.url + "generate", json={"prompt": FIVE_MB}, timeout=60)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "api.max_body_bytes" in detail and "1048576" in detail and "prompt" in detail
    healthy(served)


def test_a_streamed_body_without_length_is_counted(served):
    body = b'{"prompt": "' + FIVE_MB.encode() + b'"}'
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # chunked: no Content-Length
    response = httpx.post(served.url + "generate", content=chunks, headers={"content-type": "application/json"},
                          timeout=60)
    assert response.status_code == 413 and "api.max_body_bytes" in response.json()["detail"]
    healthy(served)


def test_a_body_within_the_limit_passes(served):
    response = httpx.post(served.url + "generate", json={"prompt": "the cat", "max_tokens": 2}, timeout=60)
    assert response.status_code == 200 and response.json()["prompt_truncated"] == 0


def test_a_prompt_over_max_prompt_tokens_answers_422_naming_prompt(served):
    response = httpx.post(served.url + "generate", json={"prompt": words(300)}, timeout=60)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "prompt"
    assert f"more than the {MAX_PROMPT_TOKENS} allowed" in response.json()["detail"]
    healthy(served)


def test_a_prompt_over_the_context_answers_422_naming_the_context_and_the_counts(served):
    response = httpx.post(served.url + "generate", json={"prompt": words(150), "max_tokens": 150}, timeout=60)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "prompt" and "151 prompt tokens + 150 (max_tokens) = 301" in body["detail"]
    assert "context of 256" in body["detail"]
    truncated = httpx.post(served.url + "generate", json={"prompt": words(150), "max_tokens": 150, "min_steps": 150,
                                                          "truncate_prompt": "left"}, timeout=120)
    assert truncated.status_code == 200 and truncated.json()["prompt_truncated"] == 301 - 256


def test_gradio_client_gets_a_clear_error(served):
    client = Client(served.url, verbose=False)
    try:
        for prompt in (words(300), FIVE_MB):
            with pytest.raises(AppError) as caught:
                client.predict(prompt, {}, api_name="/generate")
            assert str(caught.value).startswith("prompt: has ") and f"{MAX_PROMPT_TOKENS} allowed" in str(caught.value)
        assert client.predict("the cat", {"max_tokens": 2}, api_name="/generate")["stop_reason"] in ("eos", "max_tokens")
    finally:
        client.close()


def test_the_cli_says_it_in_one_line(tiny_model_dir):
    from helpers import run_cli

    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", words(300), "--max-tokens", "5")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: prompt: 301 prompt tokens + 5 (max_tokens) = 306 positions exceed the model's "
                           "context of 256"), last
