"""A parallel set holding a newline, in a real headless Chromium: on one line, with its mark (↵)."""
from pathlib import Path

import pytest

from helpers import CHROMIUM, serving

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "models" / "tempo-tiny-code"
pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow, pytest.mark.usefixtures("clean_tempo_env"),
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (tests/run.sh installs it)")]

PROMPT, SETTINGS = "import os", {"selection_threshold": 0.05, "max_tokens": 3}
"""The bundled code model's first step after this prompt is the set ["\\n", "."] (seeded: the same every run)."""


@pytest.fixture(scope="module")
def served():
    with serving(BUNDLED) as served:
        yield served


@pytest.fixture(scope="module")
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield page
    page.close()


def line_boxes(page, selector_text: str) -> list[dict]:
    """The line boxes (client rects) of the innermost element of #spans whose text holds ``selector_text``."""
    return page.evaluate("""(needle) => {
        const all = [...document.querySelectorAll('#spans *')].filter(e => e.textContent.includes(needle));
        const inner = all.filter(e => ![...e.children].some(c => c.textContent.includes(needle)));
        return [...inner[0].getClientRects()].map(r => ({top: r.top, height: r.height, width: r.width}));
    }""", selector_text)


def test_a_newline_in_a_set_is_marked_and_stays_on_one_line(served, page, tmp_path):
    engine, server = served
    expected = engine.generate(PROMPT, **SETTINGS)
    assert [c.text for c in expected.steps[0].kept] == ["\n", "."]  # the set this test is about (raw in the JSON)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#generate")
    page.fill("#prompt textarea", PROMPT)
    page.locator("#ctl-selection_threshold input[type=range]").fill(str(SETTINGS["selection_threshold"]))
    page.fill("#ctl-max_tokens input[type=number]", str(SETTINGS["max_tokens"]))
    page.keyboard.press("Tab")
    page.click("#generate")
    page.wait_for_selector("#status:has-text('steps')", timeout=60_000)
    assert "[↵/.]" in page.inner_text("#spans")
    boxes = line_boxes(page, "[↵/.]")
    assert len(boxes) == 1 and boxes[0]["width"] > 0, boxes  # one line box: the set is not broken across lines
    assert page.input_value("#bracketed textarea").startswith(PROMPT + "[↵/.]")
    shot = tmp_path / "newline_set.png"
    page.locator("#spans").screenshot(path=str(shot))
    assert shot.stat().st_size > 1_000
    assert not errors, errors
