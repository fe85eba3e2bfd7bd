"""The interfaces did not change: results, CLI options, REST routes and gradio_client endpoints equal the
golden files made before the house was rebuilt (tests/golden/make_golden.py, issue 12)."""
import json
from pathlib import Path

import pytest

import make_golden  # tests/golden is on pytest's pythonpath (pyproject.toml)

GOLDEN = Path(__file__).parent / "golden"


def stored(name: str):
    return json.loads((GOLDEN / f"{name}.json").read_text())


def test_result_json_of_seeded_requests_is_unchanged():
    now = make_golden.results()
    before = stored("results")
    assert set(now) == set(before)
    for name in before:
        assert now[name] == before[name], name


def test_cli_options_are_unchanged():
    assert make_golden.cli_flags() == stored("cli")


@pytest.mark.slow
@pytest.mark.server
def test_rest_routes_body_and_gradio_endpoints_are_unchanged():
    from gradio_client import Client

    from tempo import Tempo
    from tempo.models import load_model
    from tempo.serve.rest import Server, create_app
    from tempo.settings import load_settings

    settings = load_settings()
    app = create_app(Tempo(load_model(str(make_golden.BUNDLED)), settings), settings)
    assert make_golden.rest_routes(app) == stored("rest")
    server = Server(app).start()
    try:
        client = Client(server.url, verbose=False)
        assert make_golden.gradio_endpoints(client) == stored("gradio")
        client.close()
    finally:
        server.close()
