"""The Model tab's picker in a real headless Chromium: a wrong token is refused on the status line, the right one
switches to a model typed in (a local path), and the next generation names the new model."""
import httpx
import pytest

from tempo.settings import load_settings
from helpers import CHROMIUM, save_tiny, serving

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow, pytest.mark.usefixtures("clean_tempo_env"),
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (tests/run.sh installs it)")]

TOKEN = "picker-test-token"


def test_the_picker_switches_the_model_with_the_admin_token(long_model_dir, tmp_path, browser, monkeypatch):
    new_model = save_tiny(tmp_path / "new", "llama", seed=1)
    monkeypatch.setenv("TEMPO_API__ADMIN_TOKEN", TOKEN)
    settings = load_settings(overrides={"app.allow_model_switch": True})
    with serving(long_model_dir, settings) as (_, server):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url)
        page.get_by_role("tab", name="Model").click()
        page.wait_for_selector("#switch-status:has-text('needs the admin token')")
        assert "fallback" not in page.inner_text("#fallback-banner")  # the wanted model is served: no banner
        choice = page.locator("#model-choice input")
        choice.fill(str(new_model))
        choice.press("Enter")
        page.fill("#admin-token input", "wrong")
        page.click("#switch-model")
        page.wait_for_selector("#switch-status:has-text('✘')", timeout=60_000)
        assert "wrong token" in page.inner_text("#switch-status")
        assert httpx.get(server.url + "health").json()["model"] == str(long_model_dir)

        page.fill("#admin-token input", TOKEN)
        page.click("#switch-model")
        page.wait_for_selector("#switch-status:has-text('✔')", timeout=120_000)
        assert str(new_model) in page.inner_text("#switch-status")
        assert "honours TEMPO's masks" in page.inner_text("#layer-types")  # the new model's table, its headers kept
        assert "grouped-query" in page.inner_text("#layer-types")
        assert httpx.get(server.url + "health").json()["model"] == str(new_model)
        answer = httpx.post(server.url + "generate", json={"prompt": "the cat", "max_tokens": 3}, timeout=60)
        assert answer.json()["model"]["id"] == str(new_model)
        assert TOKEN not in page.content()
        assert not errors, errors
        page.close()
