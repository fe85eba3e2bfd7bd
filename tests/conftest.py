import os

import pytest

from helpers import save_tiny

MODEL_KINDS = ["llama", "qwen2"]


@pytest.fixture(autouse=True)
def tempo_logger_restored():
    """A test that configures logging (the CLI's main does) leaves the ``tempo`` logger as it found it (its
    handlers, level and propagation, and the levels of the per-module debug loggers), so later tests' caplog
    still sees its records."""
    import logging

    from tempo.settings.logs import MODULE_LOGGERS

    logger = logging.getLogger("tempo")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    names = {name for loggers in MODULE_LOGGERS.values() for name in loggers}
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, module_level in levels.items():
        logging.getLogger(name).setLevel(module_level)
    for handler in logger.handlers[:]:
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def clean_tempo_env(monkeypatch):
    """No ``TEMPO_*`` variable of the caller's shell leaks into the test (modules that read the settings use it
    with ``pytestmark = pytest.mark.usefixtures("clean_tempo_env")``)."""
    for name in list(os.environ):
        if name.startswith("TEMPO_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folders with a tiny random Llama and Qwen2 (saved with save_pretrained) and their tokenizer."""
    root = tmp_path_factory.mktemp("models")
    return {kind: save_tiny(root / kind, kind) for kind in MODEL_KINDS}


@pytest.fixture(scope="session")
def long_model_dir(tmp_path_factory):
    """The tiny Llama with a 4,096-position context: server tests cancel runs longer than 256 steps."""
    return save_tiny(tmp_path_factory.mktemp("long") / "llama", "llama", positions=4096)


@pytest.fixture(scope="session")
def engines(tiny_model_dir):
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    from transformers import PreTrainedTokenizerFast

    engines = {}
    for kind, path in tiny_model_dir.items():
        loaded = load_model(str(path))
        # transformers 5 gives a folder whose config says qwen2 its Qwen2 BPE tokenizer whatever the folder
        # holds, which garbles the tests' word-level one ("the cat sat on the" -> 3 ids); the engine is
        # what these tests are about, so the Qwen2 model gets the folder's own tokenizer.
        loaded.tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
        engines[kind] = Tempo(loaded)
    return engines


@pytest.fixture(params=MODEL_KINDS)
def engine(request, engines):
    return engines[request.param]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the browser tests (the distribution's, never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    from helpers import CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()
