"""The forks and layer views in a real headless Chromium, inside a small Blocks of this test holding a real result in
a ``gr.State``: press Find forks, see the progress end in the chart, the fork steps and the outcomes; open the layer
view of a step, see its heatmap; download both; screenshots in the test's folder."""
import json
from pathlib import Path

import pytest

from helpers import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow, pytest.mark.usefixtures("clean_tempo_env"),
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (tests/run.sh installs it)")]

PROMPT = "the cat sat on the"


@pytest.fixture(scope="module")
def views(tiny_model_dir):
    import gradio as gr

    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from tempo.serve.endpoints import Endpoints
    from tempo.serve.rest import free_port
    from tempo.serve.scheduler import Scheduler
    from tempo.settings.loader import load_settings
    from tempo.ui import forks_view, lens_view

    settings = load_settings(overrides={"app.stream_interval": 0.0})
    engine = Tempo(load_model(str(tiny_model_dir["llama"])), settings)
    result = engine.generate(PROMPT, max_tokens=5, min_steps=5, temperature=1.0, selection_threshold=0.06,
                             max_parallel_tokens=3, top_k=0, top_p=1.0)
    scheduler = Scheduler(engine, max_batch_size=settings.app.max_batch_size)
    api = Endpoints(scheduler, settings)
    with gr.Blocks() as demo:
        current = gr.State(result.to_dict())
        with gr.Tab("Forks"):
            forks_view.build(api, current)
        with gr.Tab("Layers"):
            lens_view.build(api, current)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", result
    finally:
        demo.close()
        scheduler.close()


def test_find_forks_then_the_layer_view(views, browser, tmp_path):
    url, result = views
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("#find-forks")
    page.fill("#forks-samples input", "3")
    page.fill("#forks-horizon input", "4")
    page.click("#find-forks")
    page.wait_for_selector("#forks-status:has-text('Rollouts')", timeout=60_000)  # progress while they run
    page.wait_for_selector("#forks-status:has-text('continuations')", timeout=120_000)
    status = page.inner_text("#forks-status")
    sets = sum(len(s.candidates) >= 2 for s in result.steps)
    assert f"{sets} steps with sets" in status
    page.wait_for_selector("#forks-chart img, #forks-chart svg, #forks-chart canvas", timeout=30_000)
    assert "the cat sat on the" in page.inner_text("#forks-spans")
    table = page.inner_text("#forks-table")
    assert "outcome" in table and "count" in table
    with page.expect_download() as download:
        page.click("#forks-json")
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["result"]["prompt"] == PROMPT and len(saved["forks"]) == sets
    assert all(sum(c["outcomes"].values()) == 3 for f in saved["forks"] for c in f["candidates"])
    with page.expect_download() as download:
        page.click("#forks-csv")
    assert Path(download.value.path()).read_text().startswith("step,score,fork,rank,token_id,text,probability")
    page.screenshot(path=str(tmp_path / "tempo_forks.png"), full_page=True)

    page.get_by_role("tab", name="Layers").click()
    page.fill("#lens-step input", "2")
    page.click("#lens-button")
    page.wait_for_selector("#lens-status:has-text('from layer')", timeout=60_000)
    page.wait_for_selector("#lens-heatmap img, #lens-heatmap svg, #lens-heatmap canvas", timeout=30_000)
    assert page.inner_text("#lens-status").count("after") == len(result.steps[1].kept)
    with page.expect_download() as download:
        page.click("#lens-csv")
    assert Path(download.value.path()).read_text().startswith("context_token_id,context_text,exit_layer,layer")
    shot = tmp_path / "tempo_layers.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and (tmp_path / "tempo_forks.png").stat().st_size > 10_000
    assert not errors, errors
    page.close()
