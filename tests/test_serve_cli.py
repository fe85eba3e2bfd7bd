"""``python -m tempo serve``: the app that app.py serves, with the flags over the settings."""
import os
import subprocess
import sys

import httpx
import pytest

from tempo.cli.main import build_parser
from tempo.cli.serve import serve_settings
from tempo.serve.rest import free_port
from tempo.settings.schema import Settings
from test_startup import START_TIMEOUT_S, lines_of, wait_for_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_flags_set_the_model_host_port_and_device():
    args = build_parser().parse_args(["serve", "--model", "some/model", "--host", "0.0.0.0", "--port", "8123",
                                      "--cpu"])
    settings = serve_settings(args, Settings.defaults())
    assert (settings.model.model_id, settings.api.host, settings.api.port, settings.model.device) == (
        "some/model", "0.0.0.0", 8123, "cpu")
    unchanged = serve_settings(build_parser().parse_args(["serve"]), Settings.defaults())
    assert unchanged == Settings.defaults()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--port", "70000"])


@pytest.mark.subprocess
@pytest.mark.server
@pytest.mark.slow
def test_python_m_tempo_serve_answers_health_and_the_openai_routes():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPO_", "GRADIO_", "SPACE_"))}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", GRADIO_SERVER_PORT="1")  # the flag wins over the variable
    process = subprocess.Popen([sys.executable, "-m", "tempo", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--cpu"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        url, model, seen = wait_for_url(lines_of(process), START_TIMEOUT_S)
        assert url == f"http://127.0.0.1:{port}/", seen
        health = httpx.get(url + "health", timeout=30).json()
        assert health["model_loaded"] is True and health["device"] == "cpu" and "tempo-tiny-code" in health["model"]
        models = httpx.get(url + "v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == [health["model"]]
    finally:
        process.terminate()
        process.wait(timeout=30)
