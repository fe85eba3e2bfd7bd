"""``python -m tempo lens`` and ``python -m tempo forks`` in a child process: the JSON equals the Python API's,
``--from RESULT.json --step S`` reads a result, bad values end with one line naming the field (exit 2)."""
import json

import pytest

from helpers import run_cli

pytestmark = [pytest.mark.subprocess, pytest.mark.slow, pytest.mark.usefixtures("clean_tempo_env")]

PROMPT = "the cat sat on the"


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model

    return Tempo(load_model(str(tiny_model_dir["llama"])))


def test_lens_json_of_a_prompt_and_of_a_step(tiny_model_dir, llama, tmp_path):
    model = str(tiny_model_dir["llama"])
    done = run_cli("lens", "--model", model, "--prompt", PROMPT, "--top-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view == json.loads(json.dumps(llama.lens(PROMPT, top_k=3).to_dict()))
    assert [layer["layer"] for layer in view["layers"]] == [1, 2] and 1 <= view["exit_layer"] <= 2
    assert set(view["layers"][0]["top"][0]) == {"token_id", "text", "probability"}
    result = llama.generate(PROMPT, max_tokens=4, temperature=1.0, selection_threshold=0.06, min_steps=4, seed=1)
    path = tmp_path / "result.json"
    path.write_text(result.to_json())
    done = run_cli("lens", "--model", model, "--from", str(path), "--step", "2", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert [c["token_id"] for c in view["candidates"]] == [c.token_id for c in result.steps[1].kept]
    assert view == json.loads(json.dumps(llama.lens(result=result, step=2).to_dict()))


def test_forks_json(tiny_model_dir, llama):
    model = str(tiny_model_dir["llama"])
    fields = ["--max-tokens", "4", "--min-steps", "4", "--temperature", "1.0", "--threshold", "0.06",
              "--max-parallel-tokens", "3", "--top-k", "0", "--top-p", "1.0"]
    done = run_cli("forks", "--model", model, "--prompt", PROMPT, *fields, "--samples", "2", "--horizon", "3",
                   "--rollout-temperature", "0", "--outcome-pattern", r"\b(the|a)\b", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found) == {"result", "forks", "options"}
    expected = llama.forks(llama.request(PROMPT, max_tokens=4, min_steps=4, temperature=1.0, selection_threshold=0.06,
                                         max_parallel_tokens=3, top_k=0, top_p=1.0),
                           samples=2, horizon=3, rollout_temperature=0.0, outcome_pattern=r"\b(the|a)\b").to_dict()
    assert found["result"]["text"] == expected["result"]["text"]
    assert [(f["step"], f["fork"], [c["outcomes"] for c in f["candidates"]]) for f in found["forks"]] == \
           [(f["step"], f["fork"], [c["outcomes"] for c in f["candidates"]]) for f in expected["forks"]]
    for fork in found["forks"]:
        assert set(fork) == {"step", "score", "fork", "candidates"}
        assert all(set(c) == {"token_id", "text", "probability", "outcomes"} for c in fork["candidates"])


@pytest.mark.parametrize("flags, field", [(["--samples", "0"], "samples"), (["--horizon", "65"], "horizon"),
                                          (["--outcome-pattern", "(x"], "outcome_pattern")])
def test_forks_bad_values_name_the_field(tiny_model_dir, flags, field):
    done = run_cli("forks", "--model", str(tiny_model_dir["llama"]), "--prompt", PROMPT, *flags, "--json")
    last = done.stderr.strip().splitlines()[-1]  # torch's import may warn on the lines before
    assert done.returncode == 2 and last.startswith(f"error: {field}: ") and done.stdout == ""
