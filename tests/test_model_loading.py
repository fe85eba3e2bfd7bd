"""Loading by local path with from_pretrained: device and dtype from settings, clear errors."""
import pytest
import torch

from tempo.errors import ModelLoadError
from tempo.models.loading import load_model, resolve_device, resolve_dtype


def test_loads_local_path_with_dtype(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir["qwen2"]), device="cpu", torch_dtype="bfloat16", local_files_only=True)
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert loaded.info() == {"id": str(tiny_model_dir["qwen2"]), "device": "cpu", "dtype": "bfloat16"}
    assert loaded.parameters > 0 and loaded.tokenizer("the cat")["input_ids"]


def test_device_and_dtype_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in (expected, "mps")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(ModelLoadError, match="model.torch_dtype must be auto, float32, float16, bfloat16"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(ModelLoadError, match="model.device must be"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA device"):
            resolve_device("cuda")


def test_hub_id_offline_fails_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_model("someone/not-cached-model", local_files_only=True)
    assert "someone/not-cached-model" in str(info.value) and "\n" not in str(info.value)
