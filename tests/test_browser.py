"""The page in a real headless Chromium (Playwright): slider, Generate, a parallel set on screen, a screenshot."""
import json
from pathlib import Path

import pytest

from helpers import CHROMIUM, serving

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (tests/run.sh installs it)")]


@pytest.fixture(scope="module")
def server(long_model_dir):
    with serving(long_model_dir) as (_, server):
        yield server


def test_slider_generate_and_a_parallel_set_on_the_page(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#generate")
    page.fill("#prompt textarea", "the cat sat on the")
    page.locator("#ctl-selection_threshold input[type=range]").fill("0.05")  # moves the slider
    assert page.locator("#ctl-selection_threshold input[type=number]").input_value() == "0.05"
    page.fill("#ctl-max_tokens input[type=number]", "12")
    page.keyboard.press("Enter")
    page.click("#generate")
    page.wait_for_selector("#status:has-text('steps')", timeout=60_000)
    spans = page.inner_text("#spans")
    assert "the cat sat on the" in spans and "[" in spans and "/" in spans
    bracketed = page.input_value("#bracketed textarea")
    assert bracketed.startswith("the cat sat on the") and "[" in bracketed
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["prompt"] == "the cat sat on the" and saved["settings"]["selection_threshold"] == 0.05
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert Path(download.value.path()).read_text().startswith("step,position,rank,token_id,text,probability")
    page.get_by_role("tab", name="JSON").click()
    page.wait_for_selector("text=selection_threshold")
    page.get_by_role("tab", name="Output").click()
    shot = tmp_path / "tempo_app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not errors, errors
    page.close()


def test_stop_cancels_the_running_generation(server, browser):
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#generate")
    counters = server.app.state.scheduler.counters
    cancelled = counters.requests_cancelled
    page.fill("#prompt textarea", "a big red dog")
    page.fill("#ctl-max_tokens input[type=number]", "1000")
    page.keyboard.press("Enter")
    page.get_by_text("Sampling", exact=True).click()  # open the accordion
    page.fill("#ctl-min_steps input[type=number]", "1000")
    page.keyboard.press("Enter")
    page.click("#generate")
    page.wait_for_selector("#status:has-text('▶ step')", timeout=60_000)  # running, not finished
    page.click("#stop")
    for _ in range(200):
        if counters.requests_cancelled > cancelled:
            break
        page.wait_for_timeout(100)
    stats = server.app.state.scheduler.stats()
    assert counters.requests_cancelled == cancelled + 1, (stats, page.inner_text("#status"))
    assert stats["running"] == 0, stats
    page.wait_for_selector("#status:has-text('Stopped')")
    page.close()
