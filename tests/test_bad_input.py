"""Bad input gets one clear error naming the field and the allowed range: Python API and CLI."""
import json

import pytest

from tempo.errors import ModelLoadError, RequestError
from tempo.models.loading import load_model
from tempo.request import build_request
from helpers import run_cli

BAD = [
    ({"prompt": ""}, "prompt", "non-empty"),
    ({"prompt": "   "}, "prompt", "non-empty"),
    ({"selection_threshold": 1.5}, "selection_threshold", "[0.0, 1.0]"),
    ({"selection_threshold": -0.1}, "selection_threshold", "[0.0, 1.0]"),
    ({"max_tokens": 0}, "max_tokens", "[1, 1024]"),
    ({"max_tokens": 5000}, "max_tokens", "[1, 1024]"),
    ({"next_logits_mode": "average"}, "next_logits_mode", "mixture, top, last"),
    ({"temperature": -1}, "temperature", "[0.0, 100.0]"),
    ({"top_p": 0.0}, "top_p", "(0, 1]"),
    ({"max_parallel_tokens": 0}, "max_parallel_tokens", "[1, 256]"),
    ({"mode": "beam"}, "mode", "tempo, default"),
    ({"selection_schedule": "cosine"}, "selection_schedule", "constant, bezier, relu"),
    ({"top_k": "many"}, "top_k", "must be a number"),
    ({"nonsense": 1}, "nonsense", "unknown setting"),
]


@pytest.mark.parametrize("fields,field,allowed", BAD)
def test_python_api_names_the_field_and_range(engines, fields, field, allowed):
    fields = dict(fields)
    prompt = fields.pop("prompt", "the cat")
    with pytest.raises(RequestError) as info:
        engines["llama"].generate(prompt, **fields)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"{field}:") and allowed in message and "\n" not in message


def test_limit_comes_from_settings(monkeypatch):
    from tempo.settings.loader import load_settings

    monkeypatch.setenv("TEMPO_GENERATION__MAX_TOKENS_LIMIT", "50")
    monkeypatch.setenv("TEMPO_GENERATION__MAX_TOKENS", "20")
    settings = load_settings()
    assert build_request("x", settings, max_tokens=50).max_tokens == 50
    with pytest.raises(RequestError, match=r"max_tokens: must be an integer in \[1, 50\], got 51"):
        build_request("x", settings, max_tokens=51)


def test_missing_and_broken_model_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="could not load model '/no/such/model': no such folder"):
        load_model("/no/such/model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as info:
        load_model(str(broken))
    assert str(broken) in str(info.value) and "\n" not in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_model(str(empty), local_files_only=True)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("args,field", [
    (["--prompt", "the cat", "--selection-threshold", "2"], "selection_threshold"),
    (["--prompt", "", "--max-tokens", "3"], "prompt"),
    (["--prompt", "the cat", "--max-tokens", "0"], "max_tokens"),
    (["--prompt", "the cat", "--max-tokens", "100000"], "max_tokens"),
])
def test_cli_bad_request_is_one_line_and_nonzero(tiny_model_dir, args, field):
    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:") and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_bad_choice_and_bad_model(tmp_path):
    done = run_cli("generate", "--prompt", "x", "--next-logits-mode", "average")
    assert done.returncode == 2 and "invalid choice: 'average'" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("generate", "--prompt", "x", "--model", str(tmp_path / "missing"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: could not load model '{tmp_path / 'missing'}': no such folder"


@pytest.mark.subprocess
def test_cli_bad_setting_in_environment():
    done = run_cli("generate", "--prompt", "x", env={"TEMPO_GENERATION__TOP_P": "3"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: invalid setting: generation.top_p must be in [0.0, 1.0], got 3"


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_json_batch_from_prompts_file(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the cat sat\n\na big red dog\n")
    done = run_cli("generate", "--model", str(tiny_model_dir["qwen2"]), "--prompts-file", str(prompts), "--json",
               "--max-tokens", "5", "--selection-threshold", "0.05", "--temperature", "1.0")
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["prompt"] for r in results] == ["the cat sat", "a big red dog"]
    assert all(len(r["steps"]) == 5 and r["settings"]["selection_threshold"] == 0.05 for r in results)
    assert any(len(s["candidates"]) > 1 for r in results for s in r["steps"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_text_output_and_default_mode(tiny_model_dir):
    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", "the cat sat", "--max-tokens", "6",
               "--selection-threshold", "0.05")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("the cat sat") and "[" in done.stdout and "\033[" not in done.stdout
    done = run_cli("generate", "--model", str(tiny_model_dir["llama"]), "--prompt", "the cat sat", "--max-tokens", "6",
               "--default-mode", "--seed", "3", "--json")
    result = json.loads(done.stdout)
    assert result["mode"] == "default" and all(len(s["candidates"]) == 1 for s in result["steps"])
