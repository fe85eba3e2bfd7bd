"""The Explore tab in a real headless Chromium: click a candidate, see the branch appear beside its parent
(aligned where they part), branch it again, open it as the main result; press Find forks and see the chart; open
the layer view and see its heatmap; screenshots under the test's folder."""
import json
from pathlib import Path

import pytest

from helpers import CHROMIUM, serving

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (tests/run.sh installs it)")]

PROMPT = "the cat sat on the"


@pytest.fixture(scope="module")
def served(long_model_dir):
    with serving(long_model_dir) as served:
        yield served


def generate(page, url):
    page.goto(url)
    page.wait_for_selector("#generate")
    page.fill("#prompt textarea", PROMPT)
    page.locator("#ctl-selection_threshold input[type=range]").fill("0.05")
    page.fill("#ctl-max_tokens input[type=number]", "10")
    page.keyboard.press("Enter")
    page.click("#generate")
    page.wait_for_selector("#status:has-text('steps')", timeout=60_000)


def test_click_a_candidate_and_the_branch_appears_beside_its_parent(served, browser, tmp_path):
    engine, server = served
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    generate(page, server.url)
    page.get_by_role("tab", name="Explore").click()
    page.get_by_role("tab", name="Branches").click()
    page.wait_for_selector("#explore-branch-title:has-text('Main result')", timeout=30_000)
    candidates = page.locator("#explore-branch .token.highlighted")  # the candidates of parallel sets
    assert candidates.count() >= 2
    target = candidates.nth(candidates.count() - 1)
    token_text = target.inner_text().strip()
    target.click()
    page.wait_for_selector("#explore-status:has-text('✔ #1')", timeout=60_000)
    page.wait_for_selector("#explore-branch-title:has-text('from #0')")
    page.screenshot(path=str(tmp_path / "explore_branch.png"), full_page=True)
    parent_box = page.locator("#explore-parent").bounding_box()
    branch_box = page.locator("#explore-branch").bounding_box()
    assert abs(parent_box["y"] - branch_box["y"]) < 5 and branch_box["x"] > parent_box["x"] + parent_box["width"] / 2
    # aligned at the step where they part: the same shared steps, then the branch's token first in the branch
    assert PROMPT in page.inner_text("#explore-parent")
    chosen = page.locator("#explore-branch .token.highlighted").all_inner_texts()
    assert token_text in "".join(chosen)
    # the tree lists both nodes, each with its text and summary
    page.wait_for_selector(".explore-node-summary:has-text('from #0 at step')")
    assert page.locator(".explore-node-text").count() == 2
    # branch the branch: a click in its tree text
    page.locator(".explore-node-text").nth(1).locator(".token.highlighted").nth(2).click()
    page.wait_for_selector("#explore-status:has-text('✔ #2')", timeout=60_000)
    page.wait_for_selector(".explore-node-summary:has-text('from #1 at step')")
    page.screenshot(path=str(tmp_path / "explore_tree.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download tree JSON").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert [n["parent"] for n in saved["nodes"]] == [None, 0, 1]
    # open the newest branch as the main result
    page.click("#explore-open")
    page.get_by_role("tab", name="JSON").click()
    page.wait_for_selector("text=parent")
    page.screenshot(path=str(tmp_path / "explore_opened.png"), full_page=True)
    assert (tmp_path / "explore_branch.png").stat().st_size > 10_000
    assert not errors, errors
    page.close()


def test_find_forks_and_the_layer_view_of_the_main_result(served, browser, tmp_path):
    engine, server = served
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    generate(page, server.url)
    page.get_by_role("tab", name="Explore").click()
    page.get_by_role("tab", name="Forks").click()
    page.fill("#forks-samples input", "2")
    page.fill("#forks-horizon input", "3")
    page.click("#find-forks")
    page.wait_for_selector("#forks-status:has-text('continuations')", timeout=180_000)
    page.wait_for_selector("#forks-chart img, #forks-chart svg, #forks-chart canvas", timeout=30_000)
    assert PROMPT in page.inner_text("#forks-spans")
    page.screenshot(path=str(tmp_path / "explore_forks.png"), full_page=True)
    page.get_by_role("tab", name="Layer view").click()
    page.fill("#lens-step input", "2")
    page.click("#lens-button")
    page.wait_for_selector("#lens-status:has-text('from layer')", timeout=60_000)
    page.wait_for_selector("#lens-heatmap img, #lens-heatmap svg, #lens-heatmap canvas", timeout=30_000)
    page.screenshot(path=str(tmp_path / "explore_layers.png"), full_page=True)
    assert (tmp_path / "explore_layers.png").stat().st_size > 10_000
    assert not errors, errors
    page.close()
