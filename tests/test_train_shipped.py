"""The shipped model: the app's default, small, loads offline fast, writes Python, hesitates at 0.1."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tempo.settings.loader import PROJECT_ROOT, load_settings
from tempo.models.loading import resolve_model_path

SHIPPED = PROJECT_ROOT / "assets" / "models" / "tempo-tiny-code"

LOAD_SCRIPT = """
import json, time
import torch, transformers  # imported before the clock starts: we time the model load
from transformers import AutoModelForCausalLM, LlamaForCausalLM, PreTrainedTokenizerFast
from tempo.models.loading import load_model
start = time.perf_counter()
loaded = load_model("assets/models/tempo-tiny-code", device="cpu")
print(json.dumps({"seconds": time.perf_counter() - start, "class": type(loaded.model).__name__}))
"""


def test_default_settings_point_to_the_shipped_model():
    model_id = load_settings().model.model_id
    assert model_id == "assets/models/tempo-tiny-code"
    assert Path(resolve_model_path(model_id)).resolve() == SHIPPED.resolve()


def test_shipped_model_is_small_and_complete():
    names = {p.name for p in SHIPPED.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "training_config.yaml"} <= names
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) <= 30 * 1024 * 1024


def test_shipped_model_beats_the_unigram_baseline():
    summary = json.loads((SHIPPED / "training_summary.json").read_text())
    assert summary["val_loss"] < summary["unigram_val_loss"] - 2.0
    assert summary["threads"] == 1 and summary["train_seconds"] < 60 * 60
    card = (SHIPPED / "README.md").read_text()
    assert f"{summary['val_loss']:.4f}" in card and f"{summary['unigram_val_loss']:.4f}" in card


@pytest.mark.slow
@pytest.mark.subprocess
def test_shipped_model_loads_offline_in_under_5_seconds():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["class"] == "LlamaForCausalLM"
    assert report["seconds"] < 5.0


@pytest.fixture(scope="module")
def shipped_engine():
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    return Tempo(load_model(str(SHIPPED), device="cpu"))


def test_shipped_model_writes_python_and_shows_parallel_sets(shipped_engine):
    result = shipped_engine.generate("def read_config(path):", max_tokens=40, selection_threshold=0.1)
    assert sum(len(step.kept) > 1 for step in result.steps) >= 2  # hesitates: parallel sets at 0.1
    greedy = shipped_engine.generate("def read_config(path):", mode="default", temperature=0.0, max_tokens=40)
    body = greedy.clean_text
    assert "\n    " in body  # an indented function body
    assert any(word in body for word in ("return", "open(", "with ", "if ", "self", "path"))
    lines = ("def read_config(path):" + body).splitlines()
    # some prefix of the greedy text is valid Python (generation stops mid-line)
    assert any(_parses("\n".join(lines[:n])) for n in range(2, len(lines) + 1))


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True
