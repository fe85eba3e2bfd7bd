"""Prometheus metrics (``api.enable_metrics``, ``api.metrics_port``): the text parses with prometheus_client's own
parser and its counters move with the requests a real server answers."""
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tempo.serve.metrics import batch_histogram
from tempo.serve.rest import free_port
from tempo.settings.loader import load_settings
from helpers import serving

pytestmark = pytest.mark.usefixtures("clean_tempo_env")


def scrape(url: str) -> dict:
    """``{(sample name, sorted labels): value}`` of a scrape, parsed by prometheus_client."""
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_batch_size_histogram_counts_steps_at_or_below_each_bound():
    assert batch_histogram({1: 3, 3: 2, 9: 1}, (1, 2, 4, 8)) == [("1.0", 3), ("2.0", 3), ("4.0", 5), ("8.0", 5),
                                                                  ("+Inf", 6)]


@pytest.mark.server
@pytest.mark.slow
def test_metrics_parse_and_move_with_requests(tiny_model_dir):
    settings = load_settings(overrides={"api.enable_metrics": True})
    with serving(tiny_model_dir["llama"], settings) as (engine, server):
        metrics = server.url + "metrics"
        before = scrape(metrics)
        assert value(before, "tempo_queue_depth") == 0 and value(before, "tempo_model_load_seconds",
                                                                  model=engine.loaded.model_id) > 0
        body = {"prompt": "the cat sat", "max_tokens": 5, "min_steps": 5, "temperature": 0}
        for _ in range(2):  # the second prefill comes from the prompt cache
            assert httpx.post(server.url + "generate", json=body, timeout=60).status_code == 200
        completion = httpx.post(server.url + "v1/completions", json={**body, "prompt": "a big dog"}, timeout=60)
        assert completion.status_code == 200
        assert httpx.post(server.url + "v1/completions", json={"prompt": "a", "top_p": 7}).status_code == 400
        after = scrape(metrics)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tempo_http_requests_total", route="/generate", method="POST", status="200") == 2
    assert moved("tempo_http_requests_total", route="/v1/completions", method="POST", status="200") == 1
    assert moved("tempo_http_requests_total", route="/v1/completions", method="POST", status="400") == 1
    assert moved("tempo_http_request_duration_seconds_count", route="/generate", method="POST") == 2
    assert moved("tempo_http_request_duration_seconds_sum", route="/generate", method="POST") > 0
    assert moved("tempo_row_steps_total") == 15 and moved("tempo_steps_total") >= 5
    assert moved("tempo_batch_size_count") == moved("tempo_steps_total")
    assert moved("tempo_batch_size_sum") == moved("tempo_row_steps_total")
    assert moved("tempo_generations_total", outcome="done") == 3
    assert moved("tempo_prompt_cache_hits_total") == 1 and moved("tempo_prompt_cache_misses_total") == 2
    info = dict(next(labels for (name, labels), v in after.items() if name == "tempo_model_info"))
    assert info == {"model": engine.loaded.model_id, "device": "cpu", "dtype": "float32"}


@pytest.mark.server
@pytest.mark.slow
def test_a_metrics_port_of_their_own_and_none_when_off(tiny_model_dir):
    port = free_port()
    settings = load_settings(overrides={"api.enable_metrics": True, "api.metrics_port": port})
    with serving(tiny_model_dir["llama"], settings) as (_, server):
        assert httpx.post(server.url + "generate", json={"prompt": "the", "max_tokens": 2}, timeout=60).status_code == 200
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "tempo_http_requests_total", route="/generate", method="POST", status="200") == 1
        assert httpx.get(server.url + "metrics").status_code == 404  # not on the app's own port
    with pytest.raises(httpx.ConnectError):  # stopped with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    with serving(tiny_model_dir["llama"], load_settings()) as (_, server):  # off by default
        assert httpx.get(server.url + "metrics").status_code == 404
