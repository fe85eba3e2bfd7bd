"""The ``space`` profile serves a small real model from the hub, and the bundled model when the hub cannot be
reached: app.py then starts on the fallback and says so in /health and in the page's banner."""
import os
import subprocess
import sys
import time

import httpx
import pytest

from tempo.errors import ModelLoadError
from tempo.models.fallback import banner_text, load_with_fallback
from tempo.serve.rest import free_port
from tempo.settings import load_settings
from tempo.settings.schema import BUNDLED_MODEL
from helpers import ROOT
from test_space import front_matter

pytestmark = pytest.mark.usefixtures("clean_tempo_env")

HUB_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"


def test_the_space_profile_wants_the_hub_model_and_falls_back_to_the_bundled_one(monkeypatch):
    monkeypatch.setenv("TEMPO_PROFILE", "space")
    settings = load_settings()
    assert settings.model.model_id == HUB_MODEL and settings.model.fallback_model_id == BUNDLED_MODEL
    assert settings.app.allow_model_switch is False  # a public Space: nobody swaps the model under the others
    assert HUB_MODEL in front_matter()["models"]
    assert settings.app.models[0]["id"] == BUNDLED_MODEL  # the picker lists the bundled model first
    assert HUB_MODEL in [m["id"] for m in settings.app.models]


def test_no_fallback_means_the_load_error_is_raised(tmp_path):
    settings = load_settings(overrides={"model.model_id": str(tmp_path / "missing")})
    with pytest.raises(ModelLoadError, match="missing"):
        load_with_fallback(settings)
    loaded, fallback = load_with_fallback(load_settings())  # the model loads: no fallback involved
    assert fallback is None and loaded.model_id == BUNDLED_MODEL
    assert banner_text(None) == ""


def banner_value(config: dict) -> str:
    """The value of the page's fallback banner in Gradio's page config (what a browser renders first)."""
    for component in config["components"]:
        if component.get("props", {}).get("elem_id") == "fallback-banner":
            return component["props"]["value"]
    raise AssertionError("no fallback banner in the page's config")


@pytest.mark.subprocess
@pytest.mark.server
@pytest.mark.slow
def test_the_space_app_starts_on_the_fallback_when_the_hub_is_unreachable_and_says_so():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPO_", "HF_", "SPACE"))}
    env.update({"TEMPO_PROFILE": "space", "HF_HUB_OFFLINE": "1",  # the hub cannot be reached
                "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONPATH": str(ROOT)})
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert app.poll() is None, app.stdout.read()
            try:
                health = httpx.get(url + "health", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "app.py did not answer /health"
                time.sleep(0.5)
        assert health["model"] == BUNDLED_MODEL
        fallback = health["fallback"]
        assert fallback["wanted"] == HUB_MODEL and fallback["serving"] == BUNDLED_MODEL
        assert HUB_MODEL in fallback["reason"] and "could not load" in fallback["reason"]
        banner = banner_value(httpx.get(url + "config", timeout=30).json())
        assert "fallback" in banner and HUB_MODEL in banner and BUNDLED_MODEL in banner
        answer = httpx.post(url + "generate", json={"prompt": "def f(x):", "max_tokens": 4}, timeout=120)
        assert answer.status_code == 200 and answer.json()["model"]["id"] == BUNDLED_MODEL
    finally:
        app.terminate()
        output = app.communicate(timeout=30)[0]
    assert "serving the fallback model" in output and "model.fallback_model_id" in output
