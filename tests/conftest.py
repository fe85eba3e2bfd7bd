import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import save_tiny  # noqa: E402

MODEL_KINDS = ["llama", "qwen2"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folders with a tiny random Llama and Qwen2 (saved with save_pretrained) and their tokenizer."""
    root = tmp_path_factory.mktemp("models")
    return {kind: save_tiny(root / kind, kind) for kind in MODEL_KINDS}


@pytest.fixture(scope="session")
def engines(tiny_model_dir):
    from tempo.generation import Tempo
    from tempo.model import load_model

    return {kind: Tempo(load_model(str(path))) for kind, path in tiny_model_dir.items()}


@pytest.fixture(params=MODEL_KINDS)
def engine(request, engines):
    return engines[request.param]
